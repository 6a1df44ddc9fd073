"""aiortc stand-ins for a browser's media and its recorder connection, for tests that record
without Chromium: test media tracks that count what they produced, a `Publisher` (the second,
send-only peer connection a browser opens to the recorder), `publishers()` (the `peers`
fixture's maker, in conftest), and helpers that start, wait for, export and probe a recording
made on a live portal (tests/live.py)."""

from __future__ import annotations

import array
import asyncio
import json
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from live import LivePortal, SignalClient, into_call
from netns import aiortc_addresses, assert_on_loopback

from portal.extensions import db
from portal.models import Recording, RecordingStatus
from portal.recording.endpoint import install_loopback_fallback

#: Of the frames a sender made before the recording stopped, the share the recorder must
#: have stored: it may lose those still on their way at the stop, and on a busy machine a
#: picture whose lost packet makes it wait for the keyframe its PLI asks for.
STORED_SHARE = 0.85


class ColourVideo(VideoStreamTrack):
    """30 fps frames whose colour changes every frame (so that VP8 has something to code);
    `sent` counts the frames handed to the sender's encoder."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.size = (width, height)
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(*self.size, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(self.sent * 4 + i * 80) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class SineAudio(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames at 48 kHz, paced in real time; `sent` counts frames."""

    RATE, SAMPLES = 48000, 960

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._start = 0.0
        tone = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / self.RATE))
                                 for i in range(self.RATE)))
        self._tone = tone.tobytes() * 2

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.sent == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(self._start + self.sent * self.SAMPLES / self.RATE - time.time())
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        offset = (self.sent * self.SAMPLES % self.RATE) * 2
        frame.planes[0].update(self._tone[offset:offset + self.SAMPLES * 2])
        frame.pts, frame.sample_rate = self.sent * self.SAMPLES, self.RATE
        frame.time_base = Fraction(1, self.RATE)
        self.sent += 1
        return frame


class Publisher:
    """A browser's second peer connection: send-only audio and video to the recorder."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pc: RTCPeerConnection | None = None
        self.video = ColourVideo()
        self.audio = SineAudio()
        self.connected = threading.Event()
        self.connected_at = 0.0  # time.monotonic() when media could start to flow
        self.ice: tuple[list[str], list[str]] = ([], [])  # addresses gathered, in use

    def _run(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def offer(self) -> str:
        async def make() -> str:
            pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))

            @pc.on("connectionstatechange")
            def changed() -> None:
                if pc.connectionState == "connected" and not self.connected.is_set():
                    self.connected_at = time.monotonic()
                    self.ice = aiortc_addresses(pc)  # the pair is forgotten when ICE ends
                    self.connected.set()

            pc.addTransceiver(self.video, direction="sendonly")
            pc.addTransceiver(self.audio, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)

        return str(self._run(make()))

    def answer(self, sdp: str) -> None:
        assert self.pc is not None
        self._run(self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer")))

    def sent(self) -> dict[str, int]:
        """Frames produced so far, by kind (read on the publishers' loop)."""
        async def read() -> dict[str, int]:
            return {"video": self.video.sent, "audio": self.audio.sent}

        return dict(self._run(read()))

    def close(self) -> None:
        if self.pc is not None:
            self._run(self.pc.close())
        if self.connected.is_set():  # the media went over loopback only
            assert_on_loopback(*self.ice, label="aiortc publisher")


@contextmanager
def publishers() -> Iterator[Callable[[], Publisher]]:
    """Make Publishers on one event loop in a thread of the test (the server has its own);
    all are closed and the loop stopped on exit."""
    install_loopback_fallback()  # inside the test's namespace 127.0.0.1 is all there is
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made: list[Publisher] = []

    def make() -> Publisher:
        made.append(Publisher(loop))
        return made[-1]

    try:
        yield make
    finally:
        for publisher in made:
            publisher.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def start_recording(live: LivePortal, peers: Callable[[], Publisher]) -> tuple[
        str, list[SignalClient], list[Publisher]]:
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
    made = []
    for client in (host, guest):
        assert client.wait_for("record:publish") == {"id": asked["id"]}
        publisher = peers()
        client.emit("record:offer", {"id": asked["id"], "sdp": publisher.offer()})
        publisher.answer(client.wait_for("record:answer", timeout=20)["sdp"])
        made.append(publisher)
    for publisher in made:
        assert publisher.connected.wait(15), "the recorder's connection did not come up"
    return asked["id"], [host, guest], made


def wait_status(live: LivePortal, recording_id: str, wanted: RecordingStatus,
                timeout: float = 30) -> Recording:
    """Poll the database until the recording has the wanted status; the row, detached."""
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
    """ffprobe with frames counted by decoding: (duration, streams)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
                          "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    return float(data["format"]["duration"]), data["streams"]


def export(live: LivePortal, recording_id: str, out: Path) -> tuple[float, list[dict[str, Any]]]:
    """`flask recordings verify` and `export` through the CLI, then probe the export."""
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    exported = live.flask("recordings", "export", recording_id, str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    return probe(out)


def frames(streams: list[dict[str, Any]], kind: str) -> list[int]:
    """Decoded frame counts of the streams of one kind ("video" or "audio")."""
    return [int(s["nb_read_frames"]) for s in streams if s["codec_type"] == kind]
