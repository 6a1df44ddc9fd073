"""The hearings' recorder (portal/recording/hearing_recorder.py) against a real Janus, in
this process: aiortc peers publish into the hearing's VideoRoom room as the portal would make
them (the room made with the portal's admin key and room secret, each publisher's id its
participant id), the recording is started and stopped through the recording services and
manager as the web worker does, and the recorder, on its own Janus session, has Janus forward
each recorded participant over SRTP, writes the tracks and seals them. Then `verify` passes
and the export holds every participant's frames (ffprobe -count_frames) against what each
sender sent."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from janus import JanusProcess, running_janus
from people import People
from recording_peers import STORED_SHARE, Publisher, publishers
from sqlalchemy import select
from support import book, invite

from portal.audit import services as audit
from portal.call import court
from portal.extensions import db
from portal.hearing import config as janus_config
from portal.hearing import videoroom
from portal.hearing.janus import JanusError
from portal.models import (
    Appointment,
    Decision,
    HearingStage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Place,
    Recording,
    RecordingPolicy,
    RecordingStatus,
    RecordingTrack,
    Representation,
    RoomKind,
    utcnow,
)
from portal.recording import archive, manager, services
from portal.recording.hearing_recorder import HearingRecorder
from portal.recording.janus_room import RECORDER_ID
from portal.recording.wording import wording

pytestmark = [pytest.mark.webrtc]


# --- the hearing, as the web workers leave it in the database and in Janus --------------------


@dataclass
class Hearing:
    app: Flask
    appointment_id: int
    participants: list[int]  # the host first

    def recording(self) -> Recording:
        row = db.session.scalars(select(Recording).where(
            Recording.appointment_id == self.appointment_id)
            .order_by(Recording.requested_at.desc())).first()
        assert row is not None
        return row

    def start_recording(self) -> str:
        """The host presses Record (a hearing's notice: it records at once)."""
        with self.app.app_context():
            host = db.session.get(Participant, self.participants[0])
            assert host is not None
            asker = services.Asker(audit.SYSTEM, "127.0.0.1", "test")
            change = services.request(host, wording("notice"), asker)
            manager.get().apply(change)
            db.session.commit()
            assert change.recording.status is RecordingStatus.RECORDING
            assert change.recording.key_id is not None  # made with the start
            return change.recording.id

    def stop_recording(self, recording_id: str) -> None:
        with self.app.app_context():
            recording = db.session.get(Recording, recording_id)
            assert recording is not None
            manager.get().apply(services.stop(recording, "stopped_by_host", audit.SYSTEM))
            db.session.commit()

    def leave(self, participant_id: int) -> None:
        """Out of the call (as call.services.leave does, through the recording's rules)."""
        with self.app.app_context():
            me = db.session.get(Participant, participant_id)
            assert me is not None
            me.presence_sid = None
            me.joined_call_at = None
            change = services.participant_left(me, audit.SYSTEM)
            if change is not None:
                manager.get().apply(change)
            db.session.commit()

    def tracks(self, recording_id: str) -> list[tuple[int, str, bool]]:
        """(participant, name, stopped) of the recording's tracks."""
        with self.app.app_context():
            return [(t.participant_id, t.name, t.stopped_at is not None)
                    for t in db.session.scalars(select(RecordingTrack).where(
                        RecordingTrack.recording_id == recording_id)
                        .order_by(RecordingTrack.id))]

    def wait(self, what: Callable[[], Any], label: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = what()
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{label} did not happen within {timeout} s")

    def status(self, recording_id: str) -> RecordingStatus:
        with self.app.app_context():
            row = db.session.get(Recording, recording_id)
            assert row is not None
            return row.status


def hearing_in_call(app: Flask, host_id: int, guests: int) -> Hearing:
    """A hearing under notice, starting now and in session, its host and guests in the call
    and in the hearing (each has acknowledged the notice), pinned to the Janus instance."""
    appointment_id = book(app, host_id, starts_in=timedelta(0), minutes=60, kind=Kind.HEARING,
                          title="Hearing", policy=RecordingPolicy.NOTICE)
    for n in range(guests):
        invite(app, appointment_id, f"Party {n + 1}")
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        appointment.janus_url = janus_config.urls(app)[0]
        appointment.hearing_stage = HearingStage.IN_SESSION
        asker = services.Asker(audit.SYSTEM, None, None)
        ids = []
        for p in appointment.participants:
            p.place = Place.HEARING
            p.lobby_state = LobbyState.ADMITTED
            p.joined_call_at = utcnow()
            p.presence_sid = f"sid-{p.id}"
            services.acknowledge_notice(p, wording("notice"), asker)
            ids.append(p.id)
        db.session.commit()
    return Hearing(app, appointment_id, ids)


class Room:
    """The hearing's VideoRoom room and its publishers, as hearing-media makes them."""

    def __init__(self, janus: JanusProcess, app: Flask, appointment_id: int,
                 peers: Callable[[], Publisher]) -> None:
        self.client = janus.client()
        self.appointment_id = appointment_id
        self.peers = peers
        self.handles: dict[int, int] = {}
        self.publishers: dict[int, Publisher] = {}
        self.client.request(self.client.attach(), {
            "request": "create", "room": appointment_id, "permanent": False,
            "admin_key": janus.admin_key,
            "secret": janus_config.room_secret(app, appointment_id),
            "publishers": 16, "videocodec": "vp8", "audiocodec": "opus",
            "notify_joining": True})

    def publish(self, participant_id: int) -> Publisher:
        handle = self.handles[participant_id] = self.client.attach()
        self.client.message(handle, {"request": "join", "ptype": "publisher",
                                     "room": self.appointment_id, "id": participant_id,
                                     "display": str(participant_id)})
        publisher = self.peers()
        _data, jsep = self.client.message(handle, {"request": "configure", "audio": True,
                                                   "video": True},
                                          jsep={"type": "offer", "sdp": publisher.offer()})
        assert jsep is not None
        publisher.answer(jsep["sdp"])
        assert publisher.connected.wait(15), "the publisher's connection to Janus is not up"
        self.publishers[participant_id] = publisher
        return publisher

    def leave(self, participant_id: int) -> Publisher:
        """The participant's publication ends (it leaves the room)."""
        handle = self.handles.pop(participant_id)
        self.client.message(handle, {"request": "leave"})
        self.client.detach(handle)
        publisher = self.publishers.pop(participant_id)
        publisher.close()
        return publisher

    def destroy(self, app: Flask) -> None:
        """The room goes (the module's tests share one Janus; each test's ids start at 1)."""
        with contextlib.suppress(JanusError):
            self.client.request(self.client.attach(), {
                "request": "destroy", "room": self.appointment_id,
                "secret": janus_config.room_secret(app, self.appointment_id)})

    def participants(self) -> list[dict[str, Any]]:
        listed = self.client.request(self.client.attach(), {
            "request": "listparticipants", "room": self.appointment_id})
        return list(listed["participants"])

    def forwarders(self, app: Flask) -> int:
        listed = self.client.request(self.client.attach(), {
            "request": "listforwarders", "room": self.appointment_id,
            "secret": janus_config.room_secret(app, self.appointment_id)})
        return sum(len(p["forwarders"]) for p in listed["publishers"])


@pytest.fixture
def janus_app(app: Flask, janus: JanusProcess) -> Flask:
    app.config.update(JANUS_URLS=[janus.url], JANUS_API_SECRET=janus.api_secret,
                      JANUS_ADMIN_KEY=janus.admin_key, RECORDING_HEARTBEAT_SECONDS=1)
    return app


@pytest.fixture
def recorder(janus_app: Flask) -> Iterator[HearingRecorder]:
    made = HearingRecorder(janus_app, poll_seconds=0.1)
    thread = threading.Thread(target=made.run, name="test-recorder", daemon=True)
    thread.start()
    yield made
    made.stop()
    thread.join(30)
    assert not thread.is_alive(), "the recorder did not stop"


@pytest.fixture
def peers() -> Iterator[Callable[[], Publisher]]:
    with publishers() as make:
        yield make


@pytest.fixture
def rooms(janus_app: Flask, janus: JanusProcess,
          peers: Callable[[], Publisher]) -> Iterator[Callable[[int], Room]]:
    """Make the hearings' rooms on the module's Janus; destroyed at the end of the test."""
    made: list[Room] = []

    def make(appointment_id: int) -> Room:
        made.append(Room(janus, janus_app, appointment_id, peers))
        return made[-1]

    yield make
    for room in made:
        room.destroy(janus_app)


def probe(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of",
                          "json", str(path)], capture_output=True, text=True, check=True,
                         timeout=120)
    return list(json.loads(out.stdout)["streams"])


def sent(publisher: Publisher) -> dict[str, int]:
    return publisher.sent()


# --- the tests --------------------------------------------------------------------------------


def test_a_hearing_is_recorded_from_janus_with_every_participants_frames(
        janus_app: Flask, people: People, recorder: HearingRecorder,
        rooms: Callable[[int], Room], tmp_path: Path) -> None:
    hearing = hearing_in_call(janus_app, people.host_a.id, guests=2)
    host, first, late = hearing.participants
    room = rooms(hearing.appointment_id)
    for who in (host, first):
        room.publish(who)
    recording_id = hearing.start_recording()
    # The recorder sits in the room, never publishing; each publisher gets a track.
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 2, "two forwards")
    assert RECORDER_ID in [p["id"] for p in room.participants()]
    assert not next(p for p in room.participants() if p["id"] == RECORDER_ID)["publisher"]
    start = {who: sent(room.publishers[who]) for who in (host, first)}
    time.sleep(2)  # media flows
    # A publisher who comes later is forwarded too.
    room.publish(late)
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 3, "the late joiner's forward")
    start[late] = sent(room.publishers[late])
    time.sleep(2)
    # One leaves the room and publishes again: the first part is finished, a new one starts.
    gone = room.leave(first)
    hearing.wait(lambda: (first, f"p{first}-1", True) in hearing.tracks(recording_id),
                 "the first part's end")
    before_second = sent(gone)
    assert hearing.status(recording_id) is RecordingStatus.RECORDING
    room.publish(first)
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 4, "the second part's forward")
    start[-first] = sent(room.publishers[first])
    time.sleep(2)
    at_stop = {who: sent(p) for who, p in room.publishers.items()}
    hearing.stop_recording(recording_id)
    hearing.wait(lambda: hearing.status(recording_id) is RecordingStatus.COMPLETE, "the seal")
    after = {who: sent(p) for who, p in room.publishers.items()}
    assert room.forwarders(janus_app) == 0  # the recorder stopped its forwards
    assert RECORDER_ID not in [p["id"] for p in room.participants()]
    assert [(p, n) for p, n, _ in hearing.tracks(recording_id)] == [
        (host, f"p{host}-1"), (first, f"p{first}-1"), (late, f"p{late}-1"),
        (first, f"p{first}-2")]

    with janus_app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        verdict = archive.verify(row)
        assert verdict.ok, verdict.problems
        out = tmp_path / "hearing.mkv"
        counts = archive.export(row, out)
        assert all(v > 0 for v in counts.values()), counts
        signed = json.loads((archive.directory(recording_id) / "manifest.json").read_text())
        tracks = {t["name"]: t for t in signed["manifest"]["tracks"]}
    assert {t["codecs"]["video"] for t in tracks.values()} == {"vp8"}
    streams = probe(out)
    assert sorted(s["codec_name"] for s in streams) == ["opus"] * 4 + ["vp8"] * 4
    # Each track's frames (decoded by ffprobe) against what its sender sent while forwarded:
    # at most what it sent from before its forward started to the seal, at least most of
    # what it sent from the forward's start to the stop.
    windows = {f"p{host}-1": (start[host], at_stop[host], after[host]),
               f"p{first}-1": (start[first], before_second, before_second),
               f"p{late}-1": (start[late], at_stop[late], after[late]),
               f"p{first}-2": (start[-first], at_stop[first], after[first])}
    titles = [s["tags"].get("title", s["tags"].get("TITLE", "")) for s in streams]
    for name, (began, stopped, ended) in windows.items():
        frames = tracks[name]["frames"]
        for kind in ("video", "audio"):
            least = STORED_SHARE * (stopped[kind] - began[kind])
            assert least <= frames[kind] <= ended[kind], (name, kind, frames, began, stopped)
    decoded = sorted(int(s["nb_read_frames"]) for s in streams if s["codec_type"] == "video")
    assert decoded == sorted(tracks[n]["frames"]["video"] for n in windows), (decoded, titles)


def test_janus_restarting_ends_the_forwards_and_the_recreated_room_is_recorded_again(
        app: Flask, media_namespace: Any, people: People, peers: Callable[[], Publisher],
        tmp_path: Path) -> None:
    """Janus killed: the recorder's session is gone, so are the room and its forwards; the
    tracks end there. Once the web workers have made the room again and the browsers have
    published again, the recorder is back in it and each publication is a new track."""
    with running_janus(tmp_path / "janus", media_namespace) as janus:
        app.config.update(JANUS_URLS=[janus.url], JANUS_API_SECRET=janus.api_secret,
                          JANUS_ADMIN_KEY=janus.admin_key, RECORDING_HEARTBEAT_SECONDS=1)
        hearing = hearing_in_call(app, people.host_a.id, guests=1)
        host, guest = hearing.participants
        recorder = HearingRecorder(app, poll_seconds=0.1)
        thread = threading.Thread(target=recorder.run, daemon=True)
        thread.start()
        try:
            room = Room(janus, app, hearing.appointment_id, peers)
            for who in (host, guest):
                room.publish(who)
            recording_id = hearing.start_recording()
            hearing.wait(lambda: len(hearing.tracks(recording_id)) == 2, "two forwards")
            time.sleep(1)
            janus.kill()
            for publisher in room.publishers.values():
                publisher.close()
            hearing.wait(lambda: all(stopped for *_, stopped in hearing.tracks(recording_id)),
                         "the tracks' end")
            janus.start()
            room = Room(janus, app, hearing.appointment_id, peers)
            for who in (host, guest):
                room.publish(who)
            hearing.wait(lambda: len(hearing.tracks(recording_id)) == 4, "new forwards")
            time.sleep(1)
            hearing.stop_recording(recording_id)
            hearing.wait(lambda: hearing.status(recording_id) is RecordingStatus.COMPLETE,
                         "the seal")
        finally:
            recorder.stop()
            thread.join(30)
    with app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        verdict = archive.verify(row)
        assert verdict.ok, verdict.problems
        assert [(t.name, t.video_frames > 0, t.audio_frames > 0) for t in row.tracks] == [
            (f"p{host}-1", True, True), (f"p{guest}-1", True, True),
            (f"p{host}-2", True, True), (f"p{guest}-2", True, True)]


def test_a_newcomer_pauses_a_consented_recording_until_they_agree(
        janus_app: Flask, janus: JanusProcess, people: People, recorder: HearingRecorder,
        rooms: Callable[[int], Room]) -> None:
    """Five people make a consult go through Janus; it is recorded by consent. Someone new in
    the call pauses it (the forwards stay, their media is dropped) until they agree; then it
    records again, the newcomer too."""
    app = janus_app
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(0), minutes=60,
                          title="Five", policy=RecordingPolicy.CONSENT)
    for n in range(4):
        invite(app, appointment_id, f"Guest {n}")
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        appointment.janus_url = janus.url
        ids = [p.id for p in appointment.participants]
        for p in appointment.participants[:2]:
            p.lobby_state, p.joined_call_at, p.presence_sid = LobbyState.ADMITTED, utcnow(), "s"
        db.session.commit()
    host, guest, newcomer = ids[:3]
    hearing = Hearing(app, appointment_id, ids)
    asker = services.Asker(audit.SYSTEM, None, None)

    def act(change: services.Change | None) -> None:
        if change is not None:
            manager.get().apply(change)
        db.session.commit()

    room = rooms(appointment_id)
    for who in (host, guest):
        room.publish(who)
    with app.app_context():
        me = db.session.get(Participant, host)
        assert me is not None
        act(services.request(me, wording("consent"), asker))
        recording_id = hearing.recording().id
        other = db.session.get(Participant, guest)
        assert other is not None
        act(services.decide(other, hearing.recording(), Decision.GRANTED, wording("consent"),
                            asker))
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 2, "two forwards")
    start = sent(room.publishers[host])
    time.sleep(1.5)
    room.publish(newcomer)
    with app.app_context():
        late = db.session.get(Participant, newcomer)
        assert late is not None
        late.lobby_state, late.joined_call_at, late.presence_sid = (
            LobbyState.ADMITTED, utcnow(), "s3")
        act(services.participant_joined(late, asker.actor))
        assert hearing.recording().status is RecordingStatus.PAUSED
    paused = sent(room.publishers[host])
    time.sleep(2)
    assert len(hearing.tracks(recording_id)) == 2  # not agreed: not recorded
    resumed = sent(room.publishers[host])
    with app.app_context():
        late = db.session.get(Participant, newcomer)
        assert late is not None
        act(services.decide(late, hearing.recording(), Decision.GRANTED, wording("consent"),
                            asker))
        assert hearing.recording().status is RecordingStatus.RECORDING
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 3, "the newcomer's forward")
    time.sleep(1.5)
    hearing.stop_recording(recording_id)
    hearing.wait(lambda: hearing.status(recording_id) is RecordingStatus.COMPLETE, "the seal")
    after = sent(room.publishers[host])
    with app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        assert archive.verify(row).ok
        frames = {t.participant_id: (t.video_frames, t.audio_frames) for t in row.tracks}
    assert set(frames) == {host, guest, newcomer} and all(v and a for v, a in frames.values())
    # The paused time is not in the host's file: at most what was sent outside it.
    video, audio = frames[host]
    outside = {k: after[k] - start[k] - (resumed[k] - paused[k]) for k in ("video", "audio")}
    assert video <= outside["video"] + 5 and audio <= outside["audio"] + 10, (frames, outside)
    assert video >= STORED_SHARE * (paused["video"] - start["video"])


def test_a_private_room_and_a_locked_mute_are_not_in_the_record(
        janus_app: Flask, people: People, recorder: HearingRecorder,
        rooms: Callable[[int], Room], tmp_path: Path) -> None:
    """The court breaks, counsel takes their party into a private room, the hearing resumes,
    then the party's microphone is muted and locked: the record holds none of their media
    from the break to the resumption (fewer frames than they sent outside it), none of the
    party's audio after the lock, and the signed manifest says when and why; it verifies and
    exports."""
    hearing = hearing_in_call(janus_app, people.host_a.id, guests=2)
    host, counsel, party = hearing.participants
    with janus_app.app_context():
        for pid, role in ((counsel, ParticipantRole.COUNSEL), (party, ParticipantRole.PARTY)):
            row = db.session.get(Participant, pid)
            assert row is not None
            row.role = role
        db.session.add(Representation(counsel_id=counsel, party_id=party))
        db.session.commit()

    def act(do: Callable[[dict[int, Participant]], Any]) -> datetime:
        with janus_app.app_context():
            found = {pid: db.session.get(Participant, pid) for pid in hearing.participants}
            do(found)
            db.session.commit()
            return utcnow()

    room = rooms(hearing.appointment_id)
    for who in (host, counsel, party):
        room.publish(who)
    before = {who: sent(room.publishers[who]) for who in (counsel, party)}
    recording_id = hearing.start_recording()
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 3, "three forwards")
    # Janus names each forward's medium: what a web worker needs to stop one at once
    # (portal.hearing.media: a private room does not wait for the recorder's next turn).
    listed = room.client.request(room.client.attach(), videoroom.list_forwarders(
        janus_app, hearing.appointment_id))
    assert sorted(kind for _feed, _id, kind in videoroom.forwarders(listed)) == [
        "audio"] * 3 + ["video"] * 3, listed
    time.sleep(1.5)
    paused = act(lambda p: court.pause(p[host], f"sid-{host}"))
    hearing.wait(lambda: all(s for *_, s in hearing.tracks(recording_id)), "the break's stop")
    at_break = {who: sent(room.publishers[who]) for who in (counsel, party)}
    opened = act(lambda p: court.open_room(p[counsel], f"sid-{counsel}", RoomKind.COUNSEL,
                                           [party]))
    time.sleep(2.5)  # counsel and party talk in private
    after_room = {who: sent(room.publishers[who]) for who in (counsel, party)}
    back = act(lambda p: court.resume(p[host], f"sid-{host}"))
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 6, "the forwards again")
    time.sleep(1.5)
    muted = act(lambda p: court.mute(p[host], f"sid-{host}", party, True))
    hearing.wait(lambda: len(hearing.tracks(recording_id)) == 7, "the party's video alone")
    time.sleep(1.5)
    hearing.stop_recording(recording_id)
    hearing.wait(lambda: hearing.status(recording_id) is RecordingStatus.COMPLETE, "the seal")
    end = {who: sent(room.publishers[who]) for who in (counsel, party)}

    with janus_app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        verdict = archive.verify(row)
        assert verdict.ok, verdict.problems
        counts = archive.export(row, tmp_path / "hearing.mkv")
        assert counts and all(v > 0 for v in counts.values()), counts
        signed = json.loads((archive.directory(recording_id) / "manifest.json").read_text())
        stored = [(t.participant_id, t.name, t.started_at, t.stopped_at, t.video_frames,
                   t.audio_frames, archive.track_details(t).get("media")) for t in row.tracks]
    # No track of counsel or the party spans the private room, and their frames are at most
    # what they sent outside it.
    for who in (counsel, party):
        mine = [t for t in stored if t[0] == who]
        assert not any(a < back and b > opened for _p, _n, a, b, *_ in mine), mine
        for kind, i in (("video", 4), ("audio", 5)):
            outside = (at_break[who][kind] - before[who][kind]
                       + end[who][kind] - after_room[who][kind])
            in_private = after_room[who][kind] - at_break[who][kind]
            assert in_private > 0 and sum(t[i] for t in mine) <= outside, (who, kind, mine)
    last = [t for t in stored if t[0] == party][-1]
    assert last[6] == ["video"] and last[5] == 0 and last[4] > 0, last  # no audio after the lock
    gaps = {(g["participant"], g["media"], g["reason"]): (g["from"], g["to"])
            for g in signed["manifest"]["absences"]}
    for who in (counsel, party):
        for media in ("audio", "video"):
            start, stop = gaps[(who, media, "consultation")]
            assert paused.isoformat() <= start <= back.isoformat() <= stop, (who, media)
    start, stop = gaps[(party, "audio", "mute_locked")]
    assert start >= muted.isoformat() and stop is None
    assert (host, "audio", "consultation") not in gaps
