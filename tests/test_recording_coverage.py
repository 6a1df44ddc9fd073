"""What the record of a hearing holds (issue 12): the recorder process
(portal/recording/hearing_recorder.py) has Janus forward only `procedure.recorded_feeds`,
per medium, and starts and stops the forwards as people move between the hearing and
private rooms, are muted, called or dismissed; the signed manifest lists when each was absent
and why. The court acts through the sockets, Janus is the fake VideoRoom (its forwards carry
no packets: which media reaches the record with real Janus and media is
test_recording_forward_janus.py), the recorder's turns are run by hand, and the portal's clock
is moved by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from court import Court, everyone_in, janus_app, make_court, publish_all
from fake_videoroom import FakeVideoRoom
from flask import Flask
from people import People
from sqlalchemy import select
from support import HandClock, SocketClient, audit_events, hand_clock

from portal.audit import services as audit
from portal.extensions import db
from portal.models import Appointment, Recording, RecordingPolicy, RecordingStatus, RecordingTrack
from portal.recording import archive, services
from portal.recording.hearing_recorder import HearingRecorder
from portal.recording.wording import wording

AV = {"audio", "video"}
HEARING = ("judge", "clerk", "panel", "counsel", "party", "other party")


@pytest.fixture
def setup(sqlite_people_template: tuple[Path, People], tmp_path: Path,
          ) -> Iterator[tuple[Flask, FakeVideoRoom, HandClock, Court, dict[str, SocketClient],
                              HearingRecorder]]:
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, fake):
        clock = hand_clock(app)
        court = make_court(app, people)
        with app.app_context():  # under the court's notice, which each has acknowledged
            appointment = db.session.get(Appointment, court.id)
            assert appointment is not None
            appointment.recording_policy = RecordingPolicy.NOTICE
            asker = services.Asker(audit.SYSTEM, None, None)
            with app.test_request_context():
                shown = wording("notice")
            for p in appointment.participants:
                services.acknowledge_notice(p, shown, asker)
            db.session.commit()
        socks = everyone_in(app, court)
        publish_all(fake, court, socks)
        recorder = HearingRecorder(app, poll_seconds=0.05)
        recorder.receiver.start()
        try:
            yield app, fake, clock, court, socks, recorder
        finally:
            recorder.receiver.shutdown()
            for client in recorder._clients.values():
                client.close()


def send(sock: SocketClient, event: str, payload: dict[str, Any]) -> None:
    sock.emit(event, payload)
    sock.no_errors()


def turn(app: Flask, recorder: HearingRecorder) -> None:
    """One turn of the recorder's loop."""
    with app.app_context():
        recorder.sync()


def forwarded(fake: FakeVideoRoom, court: Court) -> dict[str, set[str]]:
    """Whose media Janus forwards to the recorder now: name -> media."""
    names = {v: k for k, v in court.ids.items()}
    found: dict[str, set[str]] = {}
    for feed, kind in fake.forwarded():
        found.setdefault(names[feed], set()).add(kind)
    return found


def start_recording(app: Flask, socks: dict[str, SocketClient]) -> str:
    with app.test_request_context():
        version = wording("notice").version
    send(socks["judge"], "record:start", {"version": version})
    with app.app_context():
        row = db.session.scalars(select(Recording)).one()
        assert row.status is RecordingStatus.RECORDING
        return row.id


def seal(app: Flask, recorder: HearingRecorder, recording_id: str) -> dict[str, Any]:
    """The recorder's turn after the stop seals the recording; its signed manifest."""
    turn(app, recorder)
    thread = recorder._sealing.get(recording_id)
    if thread is not None:
        thread.join(30)
    with app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None and row.status is RecordingStatus.COMPLETE
        verdict = archive.verify(row)
        assert verdict.ok, verdict.problems
        signed = json.loads((archive.directory(recording_id) / "manifest.json").read_text())
    manifest: dict[str, Any] = signed["manifest"]
    return manifest


def tracks(app: Flask, recording_id: str) -> list[tuple[int, str, Any, Any, list[str]]]:
    """(participant, name, started, stopped, media) of the recording's tracks."""
    with app.app_context():
        return [(t.participant_id, t.name, t.started_at, t.stopped_at,
                 archive.track_details(t).get("media"))
                for t in db.session.scalars(select(RecordingTrack).where(
                    RecordingTrack.recording_id == recording_id).order_by(RecordingTrack.id))]


def gaps(manifest: dict[str, Any], participant: int) -> list[tuple[str, str, str, str | None]]:
    """(media, reason, from, to) of one participant's absences in the manifest."""
    return [(g["media"], g["reason"], g["from"], g["to"]) for g in manifest["absences"]
            if g["participant"] == participant]


def test_a_private_room_is_never_forwarded_and_the_manifest_states_the_gap(
        setup: Any) -> None:
    app, fake, clock, court, socks, recorder = setup
    ids = court.ids
    send(socks["judge"], "hearing:start", {})
    recording_id = start_recording(app, socks)
    turn(app, recorder)
    started = clock.now()
    # The hearing in session is recorded: its people, not the waiting room, not observers.
    assert forwarded(fake, court) == {name: AV for name in HEARING}
    clock.advance(60)
    send(socks["judge"], "hearing:pause", {})
    # A break is not recorded: the web worker stops the forwards at once, before the
    # recorder's next turn (which ends the tracks and says so).
    fake.wait(lambda: not fake.forwards)
    turn(app, recorder)
    paused = clock.now()
    assert forwarded(fake, court) == {}
    clock.advance(5)
    send(socks["counsel"], "room:open", {"kind": "counsel", "members": [ids["party"]]})
    turn(app, recorder)
    opened = clock.now()
    clock.advance(120)
    assert forwarded(fake, court) == {}
    send(socks["judge"], "hearing:resume", {})  # the room closes: back into the hearing
    turn(app, recorder)
    back = clock.now()
    assert forwarded(fake, court) == {name: AV for name in HEARING}
    clock.advance(30)
    send(socks["judge"], "record:stop", {"id": recording_id})
    manifest = seal(app, recorder, recording_id)

    # No track of counsel's or the party's spans any moment of the private room.
    for who in ("counsel", "party"):
        spans = [(a, b) for pid, _n, a, b, _m in tracks(app, recording_id) if pid == ids[who]]
        assert spans == [(started, paused), (back, spans[-1][1])], who
        assert not any(a < back and (b is None or b > opened) for a, b in spans)
    at = {t: t.isoformat() for t in (started, paused, opened, back)}
    for who in ("counsel", "party"):
        assert gaps(manifest, ids[who]) == [
            gap for media in sorted(AV) for gap in (
                (media, "not_in_session", at[paused], at[opened]),
                (media, "consultation", at[opened], at[back]))], who
    assert gaps(manifest, ids["judge"]) == [(media, "not_in_session", at[paused], at[back])
                                            for media in sorted(AV)]
    # The witness waited all along; the observer is never in the record.
    assert gaps(manifest, ids["witness"]) == [(media, "waiting", at[started], None)
                                              for media in sorted(AV)]
    assert gaps(manifest, ids["observer"]) == []
    assert not any(t[0] == ids["observer"] for t in tracks(app, recording_id))


def test_a_muted_and_locked_microphone_is_absent_and_stated(setup: Any) -> None:
    app, fake, clock, court, socks, recorder = setup
    ids = court.ids
    send(socks["judge"], "hearing:start", {})
    recording_id = start_recording(app, socks)
    turn(app, recorder)
    clock.advance(10)
    send(socks["clerk"], "hearing:mute", {"participant": ids["party"], "lock": True})
    fake.wait(lambda: (ids["party"], "audio") not in fake.forwards.values())  # at once
    assert (ids["party"], "video") in fake.forwards.values()
    turn(app, recorder)
    muted = clock.now()
    # The party's video is still forwarded; their audio is not.
    assert forwarded(fake, court)["party"] == {"video"}
    forwards = [r for r in fake.requests if r.get("request") == "rtp_forward"
                and r["publisher_id"] == ids["party"]]
    assert [s["mid"] for s in forwards[-1]["streams"]] == ["1"]  # the video's mid only
    clock.advance(10)
    # Called and dismissed: the witness is recorded only while in the hearing.
    send(socks["judge"], "hearing:call", {"participant": ids["witness"]})
    turn(app, recorder)
    called = clock.now()
    assert forwarded(fake, court)["witness"] == AV
    assert forwarded(fake, court)["interpreter"] == AV
    clock.advance(20)
    send(socks["judge"], "hearing:dismiss", {"participant": ids["witness"]})
    turn(app, recorder)
    dismissed = clock.now()
    assert "witness" not in forwarded(fake, court)
    clock.advance(10)
    send(socks["judge"], "record:stop", {"id": recording_id})
    manifest = seal(app, recorder, recording_id)

    party = [(n, m) for pid, n, _a, _b, m in tracks(app, recording_id) if pid == ids["party"]]
    assert party == [(f"p{ids['party']}-1", ["audio", "video"]),
                     (f"p{ids['party']}-2", ["video"])]
    assert gaps(manifest, ids["party"]) == [("audio", "mute_locked", muted.isoformat(), None)]
    manifest_tracks = {t["name"]: t for t in manifest["tracks"]}
    assert manifest_tracks[f"p{ids['party']}-2"]["media"] == ["video"]
    witness = gaps(manifest, ids["witness"])
    for media in AV:
        assert [g[1:] for g in witness if g[0] == media] == [
            ("waiting", witness[0][2], called.isoformat()),
            ("waiting", dismissed.isoformat(), None)]
    # Each change is in the audit trail, by the recorder (the system), ids only.
    changes = audit_events(app, "recording.coverage")
    assert changes and all(e.actor_type == "system" and e.object_id == recording_id
                           for e in changes)
    assert "party" not in "".join(e.details for e in changes)
