"""Recording a hearing end to end, without a browser: the portal (`python app.py`), a Janus
of its own and the recorder process (`flask --app app recorder run`), all in the run's
network namespace; aiortc peers (tests/hearing_peers.py) are the participants' browsers,
joining under the hearing's notice and publishing through the portal's hearing events. The
judge records through record:start / record:stop as in a consult; the operator verifies and
exports with the CLI; ffprobe counts each participant's frames in the export against what
that participant's sender sent. And a recorder killed mid-hearing: its successor marks the
recording incomplete (readable up to its last sealed chunk) and stops the forwards it left
in Janus."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hearing_peers import HearingPeer, hearing_peers
from janus import JanusProcess
from live import WAIT, Consult, LivePortal, SignalClient, running
from recorder_process import RecorderProcess
from recording_peers import STORED_SHARE, export, wait_status
from sqlalchemy import select

from portal.extensions import db
from portal.hearing import config as janus_config
from portal.models import Kind, RecordingPolicy, RecordingStatus, RecordingTrack

pytestmark = [pytest.mark.live, pytest.mark.webrtc]


@pytest.fixture(scope="module")
def hearing_portal(request: pytest.FixtureRequest, sqlite_template: Any,
                   tmp_path_factory: pytest.TempPathFactory,
                   janus: JanusProcess) -> Iterator[LivePortal]:
    env = {**janus.portal_env(), "PORTAL_JANUS_RETRY_SECONDS": "1"}
    with running(request, sqlite_template, tmp_path_factory.mktemp("hearing-recording"),
                 grace_seconds=10, env=env) as live:
        yield live
        live.close_clients()


@pytest.fixture
def recorders(request: pytest.FixtureRequest, hearing_portal: LivePortal,
              tmp_path: Path) -> Iterator[Callable[[], RecorderProcess]]:
    """Start recorder processes; each is stopped at the end (its log shown on failure)."""
    made: list[RecorderProcess] = []
    failed_before = request.session.testsfailed

    def start() -> RecorderProcess:
        made.append(RecorderProcess(hearing_portal, tmp_path / f"recorder-{len(made)}.log"))
        return made[-1].ready()

    yield start
    for recorder in made:
        recorder.stop()
    if request.session.testsfailed > failed_before:
        for recorder in made:
            sys.stderr.write(f"\n----- {recorder.log.name} -----\n{recorder.output()[-6000:]}\n")


@pytest.fixture
def peers(hearing_portal: LivePortal) -> Iterator[Callable[[SignalClient], HearingPeer]]:
    """The participants' aiortc peers; their sockets close before the peers' loop stops
    (an offer the portal still sends has no loop to go to)."""
    with hearing_peers() as make:
        yield make
        hearing_portal.close_clients()


def notice_version(client: SignalClient) -> str:
    welcome = client.wait_for("welcome")
    assert welcome["media"] == "janus"
    return str(welcome["recording"]["wording"]["version"])


def join(client: SignalClient, version: str) -> None:
    """call:join having read the notice; then the portal says publish."""
    client.emit("call:join", {"resume": False, "notice": version, "declaration": True})
    client.wait_for("call:joined")
    assert client.wait_for("hearing:media", timeout=WAIT * 2) == {"state": "ready"}


def into_hearing(live: LivePortal, guests: int,
                 peers: Callable[[SignalClient], HearingPeer]) -> tuple[Consult, list[HearingPeer]]:
    """A hearing recorded by notice: the judge and the guests in the call, each publishing."""
    hearing = live.book_consult(live.create_host(), [f"Party {i}" for i in range(guests)],
                                title="Recorded hearing", kind=Kind.HEARING,
                                policy=RecordingPolicy.NOTICE)
    live.in_session(hearing.appointment_id)  # only a hearing in session is recorded
    judge = live.host_client(hearing, label="judge")
    made = [peers(judge)]
    join(judge, notice_version(judge))
    for i, invite in enumerate(hearing.guests):
        guest = live.guest_client(invite, label=f"party{i}")
        version = notice_version(guest)
        guest_id = int(guest.id)
        guest.emit("lobby:join", {})
        judge.wait_for("lobby:list", lambda p, g=guest_id: g in [w["id"] for w in p["waiting"]])
        judge.emit("lobby:admit", {"participant_id": guest_id})
        assert guest.wait_for("lobby:state", lambda s: s["state"] == "admitted")
        made.append(peers(guest))
        join(guest, version)
    for peer in made:
        peer.publish()
    everyone = {int(p.client.id) for p in made}
    for peer in made:  # media flows through Janus before anything is recorded
        peer.wait_frames(everyone - {int(peer.client.id)}, at_least=5)
    return hearing, made


def start_recording(judge: SignalClient) -> str:
    assert judge.welcome is not None
    judge.emit("record:start", {"version": judge.welcome["recording"]["wording"]["version"]})
    state = judge.wait_for("record:state", lambda s: s.get("status") == "recording")
    return str(state["id"])


def tracks(live: LivePortal, recording_id: str) -> list[tuple[int, str]]:
    with live.app.app_context():
        rows = db.session.scalars(select(RecordingTrack).where(
            RecordingTrack.recording_id == recording_id).order_by(RecordingTrack.id)).all()
        found = [(t.participant_id, t.name) for t in rows]
        db.session.rollback()
        return found


def wait_tracks(live: LivePortal, recording_id: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(tracks(live, recording_id)) < count:
        assert time.monotonic() < deadline, f"tracks: {tracks(live, recording_id)}"
        time.sleep(0.1)


def forwarders(live: LivePortal, janus: JanusProcess, appointment_id: int) -> int:
    client = janus.client()
    listed = client.request(client.attach(), {
        "request": "listforwarders", "room": appointment_id,
        "secret": janus_config.room_secret(live.app, appointment_id)})
    return sum(len(p["forwarders"]) for p in listed["publishers"])


def test_a_recorded_hearing_verifies_and_its_export_has_every_participants_frames(
        hearing_portal: LivePortal, janus: JanusProcess, peers: Callable[[SignalClient],
                                                                         HearingPeer],
        recorders: Callable[[], RecorderProcess], tmp_path: Path) -> None:
    live = hearing_portal
    recorder = recorders()
    hearing, everyone = into_hearing(live, 3, peers)
    judge = everyone[0].client
    by_id = {int(p.client.id): p for p in everyone}
    before = {who: p.sent() for who, p in by_id.items()}
    recording_id = start_recording(judge)
    for peer in everyone[1:]:  # by order of the court: nobody is asked, nobody publishes here
        peer.client.wait_for("record:state", lambda s: s.get("status") == "recording")
        peer.client.assert_none("record:publish", within=0)
    wait_tracks(live, recording_id, len(everyone))
    forwarded = {who: p.sent() for who, p in by_id.items()}
    assert forwarders(live, janus, hearing.appointment_id) == 2 * len(everyone)
    time.sleep(4)  # the hearing goes on, recorded
    at_stop = {who: p.sent() for who, p in by_id.items()}
    judge.emit("record:stop", {"id": recording_id})
    row = wait_status(live, recording_id, RecordingStatus.COMPLETE, timeout=60)
    after = {who: p.sent() for who, p in by_id.items()}
    assert row.stop_reason == "stopped_by_host"
    for peer in everyone:  # the web worker tells the call once the recorder has sealed it
        peer.client.wait_for("record:state", lambda s: s.get("status") == "complete",
                             timeout=15)
    assert forwarders(live, janus, hearing.appointment_id) == 0
    assert sorted(who for who, _ in tracks(live, recording_id)) == sorted(by_id)

    _duration, streams = export(live, recording_id, tmp_path / "hearing.mkv")
    names = {int(p.id): p.display_name for p in live.participants(hearing.appointment_id)}
    for who in by_id:
        mine = {s["codec_type"]: s for s in streams
                if s.get("tags", {}).get("title", "").startswith(f"{names[who]} (")}
        assert {k: s["codec_name"] for k, s in mine.items()} == {"video": "vp8", "audio": "opus"}
        for kind in ("video", "audio"):
            decoded = int(mine[kind]["nb_read_frames"])
            # Most of what was sent while forwarded; nothing sent before Record was pressed.
            least = STORED_SHARE * (at_stop[who][kind] - forwarded[who][kind])
            most = after[who][kind] - before[who][kind]
            assert least <= decoded <= most, (names[who], kind, decoded, least, most)
    webm_magic = bytes.fromhex("1a45dfa3")  # nothing of the media is stored in the clear
    for stored in (live.recordings_dir / recording_id).glob("*.smr"):
        assert webm_magic not in stored.read_bytes()
    assert recorder.process.poll() is None, recorder.output()


def test_a_recorder_killed_mid_hearing_leaves_an_incomplete_recording(
        hearing_portal: LivePortal, janus: JanusProcess, peers: Callable[[SignalClient],
                                                                         HearingPeer],
        recorders: Callable[[], RecorderProcess], tmp_path: Path) -> None:
    live = hearing_portal
    first = recorders()
    hearing, everyone = into_hearing(live, 1, peers)
    judge = everyone[0].client
    recording_id = start_recording(judge)
    wait_tracks(live, recording_id, 2)
    time.sleep(3)
    first.kill()  # SIGKILL: no sealing, no goodbye to Janus
    assert forwarders(live, janus, hearing.appointment_id) == 2 * 2  # still sending
    recorders()  # its successor
    row = wait_status(live, recording_id, RecordingStatus.INCOMPLETE, timeout=30)
    assert row.stop_reason == "recorder_stopped"
    judge.wait_for("record:state", lambda s: s.get("status") == "incomplete", timeout=15)
    deadline = time.monotonic() + 15
    while forwarders(live, janus, hearing.appointment_id):
        assert time.monotonic() < deadline, "the dead recorder's forwards were not stopped"
        time.sleep(0.2)
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0 and "incomplete" in verified.stdout, verified.stdout
    _duration, streams = export(live, recording_id, tmp_path / "killed.mkv")
    counts = [int(s["nb_read_frames"]) for s in streams]
    assert len(counts) == 4 and all(c > 0 for c in counts), streams
    # The call goes on; a new recording can be started and is recorded.
    again = start_recording(judge)
    wait_tracks(live, again, 2)
    judge.emit("record:stop", {"id": again})
    wait_status(live, again, RecordingStatus.COMPLETE, timeout=60)
    assert live.flask("recordings", "verify", again).returncode == 0


def test_a_recorder_stopped_cleanly_seals_what_it_records(
        hearing_portal: LivePortal, peers: Callable[[SignalClient], HearingPeer],
        recorders: Callable[[], RecorderProcess]) -> None:
    live = hearing_portal
    recorder = recorders()
    _hearing, everyone = into_hearing(live, 1, peers)
    judge = everyone[0].client
    recording_id = start_recording(judge)
    wait_tracks(live, recording_id, 2)
    time.sleep(2)
    assert recorder.stop() == 0, recorder.output()  # SIGTERM, as systemd stops it
    row = wait_status(live, recording_id, RecordingStatus.COMPLETE, timeout=5)
    assert row.stop_reason == "recorder_stopped"
    judge.wait_for("record:state", lambda s: s.get("status") == "complete", timeout=15)
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
