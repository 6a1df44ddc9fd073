"""Recording through the whole portal, without a browser: two aiortc peers (host and guest)
consent over Socket.IO, publish to the server's endpoint, and the operator exports the result.
And a crash: the server killed with SIGKILL mid-recording, then started again."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from live import LivePortal, SignalClient
from test_recording_endpoint import ColourVideo, SineAudio
from test_signaling_live import into_call

from portal.extensions import db
from portal.models import Recording, RecordingStatus

FPS = 30


class Publisher:
    """A browser's second peer connection: send-only audio and video to the recorder."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pc: RTCPeerConnection | None = None
        self.connected = threading.Event()
        self.connected_at = 0.0  # time.monotonic() when media could start to flow

    def _run(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def offer(self) -> str:
        async def make() -> str:
            pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @pc.on("connectionstatechange")
            def changed() -> None:
                if pc.connectionState == "connected" and not self.connected.is_set():
                    self.connected_at = time.monotonic()
                    self.connected.set()

            pc.addTransceiver(ColourVideo(), direction="sendonly")
            pc.addTransceiver(SineAudio(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)

        return str(self._run(make()))

    def answer(self, sdp: str) -> None:
        assert self.pc is not None
        self._run(self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer")))

    def close(self) -> None:
        if self.pc is not None:
            self._run(self.pc.close())


@pytest.fixture
def peers() -> Iterator[Any]:
    """Publishers on one event loop in a thread of the test (the server has its own)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made: list[Publisher] = []

    def make() -> Publisher:
        made.append(Publisher(loop))
        return made[-1]

    yield make
    for publisher in made:
        publisher.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def start_recording(live: LivePortal, peers: Any) -> tuple[str, list[SignalClient],
                                                          list[Publisher]]:
    """Host and guest in the call, both agree, both publish; returns once media flows."""
    host_user = live.create_host()
    consult = live.book_consult(host_user)
    host, guest, _host_id, _guest_id = into_call(live, consult)
    version = host.wait_for("welcome")["recording"]["wording"]["version"] \
        if host.welcome is None else host.welcome["recording"]["wording"]["version"]
    host.emit("record:start", {"version": version})
    asked = host.wait_for("record:state", lambda s: s.get("status") == "requested")
    guest.emit("record:consent", {"id": asked["id"], "decision": "granted",
                                  "version": version})
    publishers = []
    for client in (host, guest):
        assert client.wait_for("record:publish") == {"id": asked["id"]}
        publisher = peers()
        client.emit("record:offer", {"id": asked["id"], "sdp": publisher.offer()})
        publisher.answer(client.wait_for("record:answer", timeout=20)["sdp"])
        publishers.append(publisher)
    for publisher in publishers:
        assert publisher.connected.wait(15), "the recorder's connection did not come up"
    return asked["id"], [host, guest], publishers


def wait_status(live: LivePortal, recording_id: str, wanted: RecordingStatus,
                timeout: float = 30) -> Recording:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        with live.app.app_context():
            row = db.session.get(Recording, recording_id)
            assert row is not None
            status = row.status
            if status is wanted:
                db.session.expunge(row)
                return row
        time.sleep(0.2)
    raise AssertionError(f"recording {recording_id} is {status}, not {wanted}; server log:\n"
                         f"{live.stderr()[-4000:]}")


def probe(path: Path) -> tuple[float, list[dict[str, Any]]]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
                          "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    return float(data["format"]["duration"]), data["streams"]


def export(live: LivePortal, recording_id: str, out: Path) -> tuple[float, list[dict[str, Any]]]:
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = live.flask("recordings", "export", recording_id, str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    return probe(out)


def frames(streams: list[dict[str, Any]], kind: str) -> list[int]:
    return [int(s["nb_read_frames"]) for s in streams if s["codec_type"] == kind]


def test_two_peers_recorded_and_exported(live_portal_module: LivePortal, peers: Any,
                                         tmp_path: Path) -> None:
    live = live_portal_module
    recording_id, (host, guest), publishers = start_recording(live, peers)
    time.sleep(5)
    host.emit("record:stop", {"id": recording_id})
    # From the first connection to the recorder until Stop: the recording's own length.
    recorded = time.monotonic() - min(p.connected_at for p in publishers)
    row = wait_status(live, recording_id, RecordingStatus.COMPLETE)
    assert row.stop_reason == "stopped_by_host"
    guest.wait_for("record:state", lambda s: s.get("status") == "complete")

    duration, streams = export(live, recording_id, tmp_path / "consult.mkv")
    assert sorted(s["codec_name"] for s in streams) == ["opus", "opus", "vp8", "vp8"]
    for count in frames(streams, "video"):  # both participants' pictures, most frames kept
        assert count >= 0.7 * FPS * recorded, (count, recorded)
    for count in frames(streams, "audio"):  # 20 ms Opus frames
        assert count >= 0.7 * 50 * recorded, (count, recorded)
    assert abs(duration - recorded) <= 0.1 * recorded, (duration, recorded)
    files = sorted(p.name for p in (live.recordings_dir / recording_id).iterdir())
    assert "manifest.json" in files and len([f for f in files if f.endswith(".smr")]) == 2
    # Nothing of the media is stored in the clear.
    webm_magic = bytes.fromhex("1a45dfa3")
    for f in (live.recordings_dir / recording_id).glob("*.smr"):
        assert webm_magic not in f.read_bytes()


def test_a_crash_leaves_an_incomplete_but_playable_recording(
        live_portal_factory: Any, peers: Any, tmp_path: Path) -> None:
    live: LivePortal = live_portal_factory()
    recording_id, clients, _publishers = start_recording(live, peers)
    time.sleep(3)
    live.process.kill()  # SIGKILL: no finalising, no manifest
    live.process.wait(10)
    for client in clients:
        client.close()
    live.restart()
    row = wait_status(live, recording_id, RecordingStatus.INCOMPLETE)
    assert row.stop_reason == "recorder_stopped"
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "incomplete" in verified.stdout
    _duration, streams = export(live, recording_id, tmp_path / "crashed.mkv")
    assert len(frames(streams, "video")) == 2 and len(frames(streams, "audio")) == 2
    for count in frames(streams, "video") + frames(streams, "audio"):
        assert count > 0, streams  # everything up to the last sealed chunk plays


def test_a_second_offer_replaces_the_first_and_both_are_kept(
        live_portal_module: LivePortal, peers: Any, tmp_path: Path) -> None:
    """A browser that publishes again (say after its connection to the recorder broke): the
    old connection is stopped without holding up the handler, and both parts are sealed."""
    live = live_portal_module
    recording_id, (host, guest), publishers = start_recording(live, peers)
    time.sleep(2)
    again = peers()
    guest.emit("record:offer", {"id": recording_id, "sdp": again.offer()})
    again.answer(guest.wait_for("record:answer", timeout=20)["sdp"])
    assert again.connected.wait(15), "the second connection did not come up"
    time.sleep(2)
    host.emit("record:stop", {"id": recording_id})
    wait_status(live, recording_id, RecordingStatus.COMPLETE)

    _duration, streams = export(live, recording_id, tmp_path / "twice.mkv")
    video = frames(streams, "video")
    assert len(video) == 3 and len(frames(streams, "audio")) == 3, streams
    assert all(count > 0 for count in video), video
    with live.app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        assert sorted(t.name for t in row.tracks)[-1].endswith("-2")
        for track in row.tracks:
            assert track.video_frames > 0 and json.loads(track.details)["file"], track.name
