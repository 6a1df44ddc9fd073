"""A stored recording: who may list, play and download it (with Range), deletion by
crypto-shredding, and the operator commands (verify, export, keys rotate)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from people import Browser, People
from support import audit_events, book, hand_clock, invite

from portal.audit import services as audit
from portal.extensions import db
from portal.models import (
    Participant,
    Playback,
    Recording,
    RecordingStatus,
    RecordingTrack,
    utcnow,
)
from portal.recording import archive, playback
from portal.recording.loss import LossLedger
from portal.recording.sealing import consents_json
from portal.recording.store import ChunkWriter


@dataclass
class Stored:
    appointment_id: int
    recording_id: str
    track_ids: list[int]
    media: bytes  # the plaintext WebM of the first track
    guest_token: str


def _webm(path: Path, seconds: int, tone: int) -> bytes:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=15", "-f", "lavfi", "-i",
                    f"sine=frequency={tone}:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libvpx", "-b:v", "200k", "-c:a", "libopus", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture
def stored(app: Flask, people: People, tmp_path: Path) -> Stored:
    """A complete two-track recording of host A's consult, written through the real store."""
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(0), minutes=60)
    guest_id, token = invite(app, appointment_id, "Pat")
    media = [_webm(tmp_path / f"{n}.webm", 2, tone) for n, tone in ((1, 440), (2, 660))]
    with app.app_context():
        host_row = db.session.scalars(db.select(Participant).where(
            Participant.appointment_id == appointment_id, Participant.user_id.is_not(None))).one()
        recording = Recording(id="ab" * 16, appointment_id=appointment_id,
                              requested_by_id=host_row.id, status=RecordingStatus.RECORDING,
                              wording_version="consent-test", started_at=utcnow())
        key = bytes(range(32))
        recording.key_id, recording.wrapped_key = archive.keyring().wrap(key, recording.id)
        db.session.add(recording)
        for n, (participant_id, data) in enumerate(zip((host_row.id, guest_id), media,
                                                       strict=True)):
            track = RecordingTrack(recording_id=recording.id, participant_id=participant_id,
                                   name=f"p{participant_id}-1", mode="passthrough")
            db.session.add(track)
            db.session.flush()
            path = archive.track_path(track)
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = ChunkWriter(path, recording_id=recording.id, track=track.name,
                                 data_key=key)
            for at in range(0, len(data), 10_000):
                writer.write(data[at:at + 10_000])
            summary = writer.close()
            track.details = json.dumps({"file": summary.to_dict(), "offset_ms": n * 500,
                                        "codecs": {"video": "vp8", "audio": "opus"}})
        recording.status = RecordingStatus.COMPLETE
        recording.stopped_at = utcnow()
        archive.seal(recording, consents_json(recording))
        db.session.commit()
        return Stored(appointment_id, recording.id, [t.id for t in recording.tracks],
                      media[0], token)


def _url(s: Stored, n: int = 0) -> str:
    return f"/recordings/{s.recording_id}/tracks/{s.track_ids[n]}"


def test_the_host_plays_with_range_requests(app: Flask, people: People, browser: Browser,
                                            stored: Stored) -> None:
    browser.login(people.host_a)
    page = browser.get(f"/appointments/{stored.appointment_id}/recordings")
    assert page.status_code == 200 and _url(stored) in page.text
    whole = browser.get(_url(stored))
    assert whole.status_code == 200 and whole.data == stored.media
    assert whole.headers["Accept-Ranges"] == "bytes" and whole.mimetype == "video/webm"
    part = browser.get(_url(stored), headers={"Range": "bytes=70000-70099"})
    if len(stored.media) > 70100:
        assert part.status_code == 206 and part.data == stored.media[70000:70100]
    tail = browser.get(_url(stored), headers={"Range": "bytes=100-"})
    assert tail.status_code == 206 and tail.data == stored.media[100:]
    assert tail.headers["Content-Range"] == f"bytes 100-{len(stored.media) - 1}/" \
                                            f"{len(stored.media)}"
    beyond = browser.get(_url(stored), headers={"Range": f"bytes={len(stored.media) + 5}-"})
    assert beyond.status_code == 416
    download = browser.get(_url(stored) + "?download=1")
    assert download.data == stored.media
    assert download.headers["Content-Disposition"].startswith("attachment;")
    played = audit_events(app, "recording.played")
    # One playback (its seeks extend it, the 416 read nothing); one download.
    assert len(played) == 1 and len(audit_events(app, "recording.downloaded")) == 1
    assert played[0].actor_id == str(people.host_a.id)
    size = len(stored.media)
    reads = 3 if size > 70100 else 2  # the whole, the tail, and the middle if it exists
    assert _playbacks(app) == [(str(people.host_a.id), False, reads, [[0, size - 1]]),
                               (str(people.host_a.id), True, 1, [[0, size - 1]])]


def _playbacks(app: Flask) -> list[tuple[str | None, bool, int, list[list[int]]]]:
    with app.app_context():
        return [(p.actor_id, p.download, p.reads, json.loads(p.ranges))
                for p in db.session.scalars(db.select(Playback).order_by(Playback.id))]


@pytest.mark.parametrize("header", ["bytes=-1", "bytes=-{size}", "bytes=5-",
                                    "bytes=1-1", "bytes={last}-"])
def test_any_range_read_is_audited(app: Flask, people: People, browser: Browser,
                                   stored: Stored, header: str) -> None:
    """The attack: read the size (bytes=-1) or the whole track (bytes=-N) without starting at
    byte 0, where only reads from byte 0 used to be audited."""
    browser.login(people.host_a)
    size = len(stored.media)
    response = browser.get(_url(stored), headers={
        "Range": header.format(size=size, last=size - 1)})
    assert response.status_code == 206 and response.data
    start, end = (int(n) for n in response.headers["Content-Range"].split()[1]
                  .split("/")[0].split("-"))
    played = audit_events(app, "recording.played")
    assert len(played) == 1
    assert played[0].actor_type == "user" and played[0].actor_id == str(people.host_a.id)
    assert played[0].object_id == stored.recording_id
    details = json.loads(played[0].details)
    assert details["track"] == f"p{_participant(app, stored.track_ids[0])}-1"
    assert details["range"] == [start, end] and details["size"] == size
    assert _playbacks(app) == [(str(people.host_a.id), False, 1, [[start, end]])]


def test_several_ranges_and_a_head_are_audited_or_refused(app: Flask, people: People,
                                                          browser: Browser,
                                                          stored: Stored) -> None:
    """Several ranges in one header are refused (416: no bytes, no play); a HEAD with a range
    tells the size, so it opens a playback too, with no range read."""
    browser.login(people.host_a)
    several = browser.get(_url(stored), headers={"Range": "bytes=0-9,20-29,-5"})
    assert several.status_code == 416 and stored.media[:10] not in several.data
    assert audit_events(app, "recording.played") == []
    head = browser.client.head(_url(stored), headers={"Range": "bytes=-1"})
    assert head.status_code == 206 and head.headers["Content-Range"].endswith(
        f"/{len(stored.media)}")
    assert len(audit_events(app, "recording.played")) == 1
    assert _playbacks(app) == [(str(people.host_a.id), False, 1, [])]


def test_one_playback_per_viewing_with_every_range(app: Flask, people: People,
                                                   browser: Browser, stored: Stored) -> None:
    """Seeks within a few minutes of each other are one playback holding each range read; a
    longer pause (by the app's clock) starts a new one, audited again; so does each track."""
    clock = hand_clock(app)
    browser.login(people.host_a)
    size = len(stored.media)
    for header in ("bytes=-100", "bytes=0-99", "bytes=50-199", "bytes=1000-1999"):
        clock.advance(60)
        assert browser.get(_url(stored), headers={"Range": header}).status_code == 206
    assert len(audit_events(app, "recording.played")) == 1
    assert _playbacks(app) == [(str(people.host_a.id), False, 4,
                                [[0, 199], [1000, 1999], [size - 100, size - 1]])]
    clock.advance(playback.GAP.total_seconds() + 1)
    assert browser.get(_url(stored), headers={"Range": "bytes=-1"}).status_code == 206
    assert browser.get(_url(stored, 1), headers={"Range": "bytes=-1"}).status_code == 206
    played = audit_events(app, "recording.played")
    assert len(played) == 3
    assert [json.loads(e.details)["range"] for e in played[:2]] == [
        [size - 100, size - 1], [size - 1, size - 1]]
    assert len({json.loads(e.details)["track"] for e in played}) == 2
    with app.app_context():
        assert audit.verify().ok  # the chain is intact


def _participant(app: Flask, track_id: int) -> int:
    with app.app_context():
        track = db.session.get(RecordingTrack, track_id)
        assert track is not None
        return track.participant_id


@pytest.mark.parametrize("who", ["guest", "anonymous"])
def test_visitors_without_a_session_are_sent_to_sign_in(app: Flask, new_browser: Any,
                                                        stored: Stored, who: str) -> None:
    visitor = new_browser()
    if who == "guest":
        assert visitor.get(f"/j/{stored.guest_token}").status_code == 200
    for url in (_url(stored), f"/appointments/{stored.appointment_id}/recordings"):
        response = visitor.get(url)
        assert response.status_code == 302, (who, url)
        assert response.headers["Location"].startswith("/login")
    assert audit_events(app, "recording.played") == []


@pytest.mark.parametrize("who", ["other_host", "admin"])
def test_other_staff_find_nothing_there(app: Flask, people: People, new_browser: Any,
                                        stored: Stored, who: str) -> None:
    """Another host and administrators (README: they do not see hosts' consults) get the same
    404 as for an id that does not exist: no title, no names, no hint that it is there."""
    visitor = new_browser()
    visitor.login(people.host_b if who == "other_host" else people.admin)
    for url, unknown in ((_url(stored), f"/recordings/{'cd' * 16}/tracks/1"),
                         (f"/appointments/{stored.appointment_id}/recordings",
                          "/appointments/999999/recordings")):
        response, missing = visitor.get(url), visitor.get(unknown)
        assert response.status_code == missing.status_code == 404, (who, url)
        assert b"Pat" not in response.data and b"Follow-up" not in response.data
        # The same page but for the path (in the language switch's ?next=).
        assert response.text.replace(url, "") == missing.text.replace(unknown, "")
    deleted = visitor.post(f"/recordings/{stored.recording_id}/delete")
    assert deleted.status_code == 404
    assert audit_events(app, "recording.played") == []
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None and row.status is RecordingStatus.COMPLETE


def test_deleting_shreds_the_key_then_the_files(app: Flask, people: People, browser: Browser,
                                                stored: Stored) -> None:
    browser.login(people.host_a)
    folder = Path(app.config["RECORDINGS_DIR"], stored.recording_id)
    assert folder.exists()
    response = browser.post(f"/recordings/{stored.recording_id}/delete")
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None and row.status is RecordingStatus.DELETED
        assert row.wrapped_key is None and row.key_id is None
    assert not folder.exists()
    assert browser.get(_url(stored)).status_code == 409
    assert len(audit_events(app, "recording.deleted")) == 1


def test_a_guest_cannot_delete(new_browser: Any, stored: Stored, app: Flask) -> None:
    visitor = new_browser()
    visitor.get(f"/j/{stored.guest_token}")
    assert visitor.post(f"/recordings/{stored.recording_id}/delete", csrf=False
                        ).status_code in (400, 403)
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None and row.status is RecordingStatus.COMPLETE


def test_verify_export_and_tamper(app: Flask, runner: Any, stored: Stored,
                                  tmp_path: Path) -> None:
    ok = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert ok.exit_code == 0, ok.output
    assert "OK: recording" in ok.output
    out = tmp_path / "exports" / "export.mkv"
    before = os.umask(0o022)  # a umask that lets everyone read: the export is private anyway
    try:
        exported = runner.invoke(args=["recordings", "export", stored.recording_id, str(out)])
    finally:
        os.umask(before)
    assert exported.exit_code == 0, exported.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    folder = Path(app.config["RECORDINGS_DIR"], stored.recording_id)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    streams = _probe(out)
    assert sorted(s["codec_type"] for s in streams) == ["audio", "audio", "video", "video"]
    for s in streams:
        assert int(s["nb_read_frames"]) > 0, s
    assert len(audit_events(app, "recording.exported")) == 1

    with app.app_context():
        track = db.session.get(RecordingTrack, stored.track_ids[1])
        assert track is not None
        path = archive.track_path(track)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    broken = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert broken.exit_code == 1 and f"track {track.name}" in broken.output
    refused = runner.invoke(args=["recordings", "export", stored.recording_id,
                                  str(tmp_path / "again.mkv")])
    assert refused.exit_code == 1 and not (tmp_path / "again.mkv").exists()


def test_a_changed_manifest_fails_verification(app: Flask, runner: Any,
                                               stored: Stored) -> None:
    manifest = Path(app.config["RECORDINGS_DIR"], stored.recording_id, "manifest.json")
    signed = json.loads(manifest.read_text())
    signed["manifest"]["stop_reason"] = "nothing to see"
    manifest.write_text(json.dumps(signed))
    result = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert result.exit_code == 1
    assert "manifest" in result.output


def test_rotation_rewraps_and_keeps_it_readable(app: Flask, runner: Any, people: People,
                                                browser: Browser, stored: Stored) -> None:
    with app.app_context():
        before = db.session.get(Recording, stored.recording_id)
        assert before is not None
        old_key_id, old_wrapped = before.key_id, before.wrapped_key
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        after = db.session.get(Recording, stored.recording_id)
        assert after is not None
        assert after.key_id != old_key_id and after.wrapped_key != old_wrapped
    assert runner.invoke(args=["recordings", "verify", stored.recording_id]).exit_code == 0
    browser.login(people.host_a)
    assert browser.get(_url(stored)).data == stored.media
    assert len(audit_events(app, "keys.rotated")) == 1


def test_a_wrong_master_key_fails_clearly(app: Flask, runner: Any, stored: Stored) -> None:
    app.extensions.pop("recording_keyring", None)
    app.config["RECORDING_KEYS"] = "other:" + "A" * 43 + "="
    result = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert result.exit_code == 1
    assert "key" in result.output.lower()


def _probe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of",
                          "json", str(path)], capture_output=True, text=True, check=True)
    streams: list[dict[str, Any]] = json.loads(out.stdout)["streams"]
    return streams


def test_purge_deletes_what_is_past_retention(app: Flask, runner: Any, stored: Stored) -> None:
    kept = runner.invoke(args=["recordings", "purge"])
    assert kept.exit_code == 0 and "0 recordings" in kept.output
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None
        row.stopped_at = utcnow() - timedelta(days=app.config["RECORDING_RETENTION_DAYS"] + 1)
        db.session.commit()
    purged = runner.invoke(args=["recordings", "purge"])
    assert purged.exit_code == 0 and "1 recordings" in purged.output
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None and row.status is RecordingStatus.DELETED
        assert row.wrapped_key is None
    assert not Path(app.config["RECORDINGS_DIR"], stored.recording_id).exists()


def test_rotation_from_the_environment_is_refused_and_rewrap_moves_keys(
        app: Flask, runner: Any, stored: Stored) -> None:
    with app.app_context():
        old_id = archive.keyring().current_id
        old_key = archive.keyring()._key(old_id)  # the file's key, now given by variable
    import base64

    new_key = base64.b64encode(bytes(range(100, 132))).decode()
    app.extensions.pop("recording_keyring", None)
    app.config["RECORDING_KEYS"] = f"{old_id}:{base64.b64encode(old_key).decode()},k9:{new_key}"
    refused = runner.invoke(args=["keys", "rotate"])
    assert refused.exit_code == 1 and "PORTAL_RECORDING_KEYS" in refused.output
    moved = runner.invoke(args=["keys", "rewrap"])
    assert moved.exit_code == 0 and "1 data keys now wrapped by k9" in moved.output
    with app.app_context():
        row = db.session.get(Recording, stored.recording_id)
        assert row is not None and row.key_id == "k9"
    app.extensions.pop("recording_keyring", None)
    app.config["RECORDING_KEYS"] = f"k9:{new_key}"  # the old key dropped: still readable
    assert runner.invoke(args=["recordings", "verify", stored.recording_id]).exit_code == 0


def _with_loss(app: Flask, stored: Stored, lost: int) -> None:
    """Give each track the loss counts a recorder would have kept, and sign it again."""
    with app.app_context():
        recording = db.session.get(Recording, stored.recording_id)
        assert recording is not None
        for n, track in enumerate(recording.tracks):
            book_ = LossLedger()
            for number in [1, 2, *range(3 + (lost if n == 1 else 0), 40)]:
                book_.rtp("video", 5, number)
            book_.close()
            details = json.loads(track.details)
            details["loss"] = book_.to_dict()
            track.details = json.dumps(details)
        archive.seal(recording, consents_json(recording))
        db.session.commit()


def test_loss_is_signed_printed_and_shown(app: Flask, runner: Any, people: People,
                                          browser: Browser, stored: Stored) -> None:
    _with_loss(app, stored, lost=7)
    signed = json.loads(Path(app.config["RECORDINGS_DIR"], stored.recording_id,
                             "manifest.json").read_text())["manifest"]
    assert signed["loss"] == {"accounted": True, "complete": False}
    assert [t["loss"]["total"] for t in signed["tracks"]] == [{}, {"video": {"lost": 7}}]
    result = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert result.exit_code == 0, result.output  # intact: what it holds is what was signed
    assert "complete: nothing lost" in result.output
    assert "LOSS: video: 7 lost between" in result.output
    assert "MEDIA LOST" in result.output
    browser.login(people.host_a)
    page = browser.get(f"/appointments/{stored.appointment_id}/recordings").text
    assert 'data-loss="lost"' in page and "media missing" in page
    assert "Pat: video: 7 packets never arrived" in page
    assert ">complete<" not in page


def test_a_recording_that_lost_nothing_is_complete(app: Flask, runner: Any, people: People,
                                                   browser: Browser, stored: Stored) -> None:
    _with_loss(app, stored, lost=0)
    result = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert result.exit_code == 0 and "no media lost" in result.output, result.output
    browser.login(people.host_a)
    page = browser.get(f"/appointments/{stored.appointment_id}/recordings").text
    assert 'data-loss="none"' in page and ">complete<" in page


def test_a_manifest_from_before_loss_accounting_still_verifies(
        app: Flask, runner: Any, people: People, browser: Browser, stored: Stored) -> None:
    signed = json.loads(Path(app.config["RECORDINGS_DIR"], stored.recording_id,
                             "manifest.json").read_text())["manifest"]
    assert "loss" not in signed  # as every manifest written before
    result = runner.invoke(args=["recordings", "verify", stored.recording_id])
    assert result.exit_code == 0 and "loss not accounted" in result.output, result.output
    browser.login(people.host_a)
    page = browser.get(f"/appointments/{stored.appointment_id}/recordings").text
    assert 'data-loss="unknown"' in page and "not checked for missing media" in page


def test_a_track_that_got_no_media_is_said_and_not_offered(app: Flask, people: People,
                                                           browser: Browser,
                                                           stored: Stored) -> None:
    """Stopped before the guest's media reached the recorder: their track has no file. The page
    says so, offers no player for it, and the recording does not pass for complete."""
    _with_loss(app, stored, lost=0)
    with app.app_context():
        recording = db.session.get(Recording, stored.recording_id)
        assert recording is not None
        empty = recording.tracks[1]
        details = json.loads(empty.details)
        del details["file"]
        empty.details = json.dumps(details)
        archive.track_path(empty).unlink()
        db.session.commit()
    browser.login(people.host_a)
    page = browser.get(f"/appointments/{stored.appointment_id}/recordings").text
    assert 'data-loss="lost"' in page and "media missing" in page
    assert "Pat: nothing was received" in page
    assert "No media from this person was stored." in page
    assert _url(stored, 0) in page and _url(stored, 1) not in page
