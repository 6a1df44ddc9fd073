"""aiortc stand-ins for a browser in a hearing through Janus (docs/signaling.md, "Hearings"):
one send-only connection publishing its camera and microphone (`hearing:publish`), one
receive-only connection answering every `hearing:offer` (`hearing:subscribe`), counting the
frames it decodes from each participant. All peers share one event loop in a thread of the
test (`hearing_peers()`); the live portal (tests/live.py) and Janus (tests/janus.py) run in
the same network namespace."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
    sdp,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from live import WAIT, SignalClient
from netns import aiortc_addresses, assert_on_loopback
from recording_peers import SineAudio

from portal.recording.endpoint import install_loopback_fallback

#: Small, slow video: six or more peers encode and decode on two cores.
FPS = 15


class SmallVideo(VideoStreamTrack):
    """320x240 frames at FPS a second whose colour changes every frame (VP8 has something
    to code); `sent` counts the frames handed to the encoder."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._start = 0.0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.sent == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self.sent / FPS - time.time()))
        frame = av.VideoFrame(320, 240, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(self.sent * 4 + i * 80) % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = self.sent * 90000 // FPS, Fraction(1, 90000)
        self.sent += 1
        return frame


class HearingPeer:
    """A participant's browser: `publish()`, then offers are answered as they come."""

    def __init__(self, client: SignalClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self.label = client.label
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        self.video = SmallVideo()
        self.audio = SineAudio()
        #: Subscription mid -> (participant id, kind), as the latest offer says.
        self.mids: dict[str, tuple[int, str]] = {}
        #: (participant id, kind) -> frames decoded (touched on the loop only).
        self.frames: Counter[tuple[int, str]] = Counter()
        self.offers: list[dict[str, Any]] = []
        self.answered = threading.Condition()
        self.failures: list[str] = []
        self.ice: list[tuple[list[str], list[str]]] = []
        self._counting: list[asyncio.Task[None]] = []
        self._answering = asyncio.Lock()
        client.sio.on("hearing:offer", self._offered)

    def _run(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- publishing ------------------------------------------------------------------------

    def publish(self, *, timeout: float = 20) -> None:
        """A fresh send-only connection (an earlier one is closed), offered and answered."""
        async def offer() -> str:
            if self.publisher is not None:
                await self.publisher.close()
            self.video, self.audio = SmallVideo(), SineAudio()
            pc = self.publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver(self.video, direction="sendonly")
            pc.addTransceiver(self.audio, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)

        self.client.emit("hearing:publish", {"sdp": self._run(offer())})
        answer = self.client.wait_for("hearing:answer", timeout=timeout)
        assert self.publisher is not None
        self._run(self.publisher.setRemoteDescription(
            RTCSessionDescription(answer["sdp"], "answer")))
        # aiortc puts its candidates in the SDP; the end of them is still said, as a browser.
        self.client.emit("hearing:candidate", {"pc": "publish", "candidate": None})

    def sent(self) -> dict[str, int]:
        async def read() -> dict[str, int]:
            return {"video": self.video.sent, "audio": self.audio.sent}

        return dict(self._run(read()))

    # --- receiving -------------------------------------------------------------------------

    def _offered(self, data: dict[str, Any]) -> None:
        """python-socketio's thread: the answer is made on the peers' loop."""
        self.client.history.append(("hearing:offer", data))
        asyncio.run_coroutine_threadsafe(self._answer(data), self.loop)

    async def _answer(self, data: dict[str, Any]) -> None:
        async with self._answering:  # one negotiation at a time, in the order offered
            await self._negotiate(data)

    async def _negotiate(self, data: dict[str, Any]) -> None:
        try:
            if self.subscriber is None:
                # max-bundle: with aiortc's default (balanced), a second m-line of a kind in
                # one offer keeps the first one's transport from before bundling, and its
                # packets go to the wrong receiver.
                pc = self.subscriber = RTCPeerConnection(RTCConfiguration(
                    iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

                @pc.on("track")
                def track(track: MediaStreamTrack) -> None:
                    mid = next((t.mid for t in pc.getTransceivers()
                                if t.receiver.track is track), None)
                    self._counting.append(asyncio.ensure_future(self._count(str(mid), track)))

            pc = self.subscriber
            await pc.setRemoteDescription(RTCSessionDescription(data["sdp"], "offer"))
            route_by_mid(pc, data["sdp"])
            self.mids = {s["mid"]: (s["participant_id"], s["kind"]) for s in data["streams"]}
            await pc.setLocalDescription(await pc.createAnswer())
            self.client.emit("hearing:subscribe", {"sdp": pc.localDescription.sdp})
            self.client.emit("hearing:candidate", {"pc": "subscribe", "candidate": None})
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.failures.append(f"answering an offer: {exc!r}")
        with self.answered:
            self.offers.append(data)
            self.answered.notify_all()

    async def _count(self, mid: str, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            who = self.mids.get(mid)
            if who is not None:
                self.frames[who] += 1

    def received(self) -> dict[tuple[int, str], int]:
        async def read() -> dict[tuple[int, str], int]:
            return dict(self.frames)

        return dict(self._run(read()))

    def mark(self) -> int:
        """How many offers were answered so far (for wait_offer's `after`)."""
        with self.answered:
            return len(self.offers)

    def wait_offer(self, predicate: Callable[[dict[str, Any]], bool], *, after: int = 0,
                   timeout: float = WAIT * 3) -> dict[str, Any]:
        """The first offer answered, of those after the first `after`, that satisfies
        predicate."""
        deadline = time.monotonic() + timeout
        with self.answered:
            while True:
                found = next((o for o in self.offers[after:] if predicate(o)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                assert left > 0, (f"{self.label}: no such offer within {timeout} s; offers: "
                                  f"{[o['streams'] for o in self.offers]}; failures "
                                  f"{self.failures}; received {self.client.history[-20:]}")
                self.answered.wait(left)

    def wait_frames(self, sources: set[int], *, at_least: int = 10,
                    timeout: float = 20) -> dict[tuple[int, str], int]:
        """Until at least `at_least` audio and video frames arrived from each of `sources`,
        counted from now."""
        start = self.received()
        deadline = time.monotonic() + timeout
        while True:
            now = self.received()
            short = [(who, kind) for who in sorted(sources) for kind in ("audio", "video")
                     if now.get((who, kind), 0) - start.get((who, kind), 0) < at_least]
            if not short:
                return now
            assert time.monotonic() < deadline, (
                f"{self.label}: too few frames from {short} within {timeout} s: {now}; "
                f"mids {self.mids}; failures {self.failures}")
            time.sleep(0.1)

    def streams(self) -> set[tuple[int, str]]:
        """What the latest offer carries."""
        return set(self.mids.values())

    # --- the end ---------------------------------------------------------------------------

    def restart(self) -> None:
        """As a page does on `hearing:media {reconnecting}` (Janus was lost): both
        connections closed; the next offer gets a fresh receiving one, `publish()` (on
        `ready`) a fresh sending one."""
        self._run(self._close())

    def close(self) -> None:
        """The page goes away: its socket, then both connections (their ICE checked) and
        the frame counters."""
        self.client.close()
        self._run(self._close())
        for gathered, used in self.ice:  # the media went over loopback only
            assert_on_loopback(gathered, used, label=self.label)

    async def _close(self) -> None:
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                if pc.connectionState == "connected":
                    self.ice.append(aiortc_addresses(pc))
                await pc.close()
        self.publisher = self.subscriber = None
        counting, self._counting = self._counting, []
        for task in counting:
            task.cancel()
        await asyncio.gather(*counting, return_exceptions=True)


def route_by_mid(pc: RTCPeerConnection, offer: str) -> None:
    """aiortc routes incoming RTP by SSRC (and by payload type while that is unambiguous),
    never by MID as browsers do: an m-line Janus reuses for another feed comes with a new
    SSRC, whose packets aiortc would drop. Teach its router each m-line's SSRCs."""
    ssrcs = {m.rtp.muxId: [s.ssrc for s in m.ssrc]
             for m in sdp.SessionDescription.parse(offer).media}
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        router = receiver.transport._rtp_router if receiver.transport else None
        if router is None or transceiver.mid not in ssrcs:
            continue
        for ssrc in ssrcs[transceiver.mid]:
            router.ssrc_table[ssrc] = receiver


@contextmanager
def hearing_peers() -> Iterator[Callable[[SignalClient], HearingPeer]]:
    """Make HearingPeers on one event loop in a thread; all closed at the end."""
    install_loopback_fallback()  # inside the test's namespace 127.0.0.1 is all there is
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made: list[HearingPeer] = []

    def make(client: SignalClient) -> HearingPeer:
        made.append(HearingPeer(client, loop))
        return made[-1]

    try:
        yield make
    finally:
        for peer in made:
            peer.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
