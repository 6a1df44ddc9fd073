"""The recorder's receiver for media that Janus forwards (VideoRoom `rtp_forward`): per
recorded publication, one UDP port per stream on the recorder's address, SRTP (AES-128-CM,
HMAC-SHA1-80, a random key per stream) decrypted with libsrtp (pylibsrtp), the packets put
back in order and the encoded frames rebuilt without decoding (rtpframes.py), then written as
received by the pass-through muxer (passthrough.TrackMuxer) into a sink the caller opens on
the first media (an encrypted ChunkWriter).

Keyframes: Janus turns an RTCP PLI that reaches a video forwarder's RTCP socket into a
keyframe request to the publisher (janus_videoroom.c, "RTCP from forwarder"). So each video
stream has an RTCP port too; Janus latches onto it and the receiver sends a PLI to Janus's end
(`feedback`) when forwarding starts, after a loss, on resume, and again while video still
waits for a keyframe.

Like endpoint.py: every socket and muxer lives on one asyncio loop in a daemon thread; the
public methods are thread-safe and return `concurrent.futures.Future`s at once.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO, TypeVar

import pylibsrtp
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket

from portal.recording import disk, udp
from portal.recording.endpoint import (
    CATCH_UP_TIMEOUT,
    LOSS_NOTICE_INTERVAL,
    EngineStoppedError,
    OnLoss,
    PublicationResult,
    RecordingError,
    UnknownPublicationError,
)
from portal.recording.loss import LossLedger
from portal.recording.passthrough import TrackMuxer
from portal.recording.rtpframes import REORDER_DELAY, Frames, Item, Reorder, frames_for

log = logging.getLogger(__name__)

T = TypeVar("T")
SRTP_SUITE = 80  # Janus's srtp_suite: AES_CM_128_HMAC_SHA1_80
SRTP_KEY_BYTES = 30  # master key (16) and salt (14), as SDES carries them
TICK_INTERVAL = 0.25  # s between ticks: gaps given up, chunks sealed, keyframes asked for
KEYFRAME_INTERVAL = 1.0  # s between PLIs while video waits for a keyframe
RECEIVE_BUFFER = udp.RECEIVE_BUFFER  # bytes a stream's socket may hold
OnFailed = Callable[[str, str], None]


@dataclass(frozen=True)
class Endpoint:
    """Where Janus forwards one stream of a publication, and with which key."""

    kind: str  # "audio" or "video"
    codec: str  # "opus" or "vp8"
    host: str
    port: int
    rtcp_port: int | None  # video: where Janus latches its RTCP (keyframe requests)
    key: bytes = field(repr=False)

    @property
    def srtp_crypto(self) -> str:
        """The key as Janus's `srtp_crypto` wants it (base64 of key and salt)."""
        return base64.b64encode(self.key).decode("ascii")


@dataclass(frozen=True)
class ForwardResult(PublicationResult):
    """A publication's outcome, with what the network did to it."""

    packets: dict[str, int] = field(default_factory=dict)  # authenticated RTP packets, by kind
    lost: dict[str, int] = field(default_factory=dict)  # sequence numbers never received
    late: dict[str, int] = field(default_factory=dict)  # duplicates, or too late to use
    rejected: int = 0  # datagrams that failed SRTP authentication or RTP parsing


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receive: Callable[[bytes, Any], None]) -> None:
        self.receive = receive

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.receive(data, addr)


@dataclass
class _Stream:
    endpoint: Endpoint
    srtp: pylibsrtp.Session
    reorder: Reorder
    frames: Frames
    transport: asyncio.DatagramTransport | None = None
    rtcp: asyncio.DatagramTransport | None = None
    feedback: Any = None  # Janus's RTCP address for this stream
    ssrc: int | None = None
    datagrams: int = 0  # everything that reached the port
    packets: int = 0  # of which authenticated RTP


@dataclass
class _Forward:
    key: str
    streams: dict[str, _Stream]
    open_sink: Callable[[], BinaryIO]
    started_at: float = field(default_factory=time.time)
    muxer: TrackMuxer | None = None
    sink: BinaryIO | None = None
    paused: bool = False
    error: str | None = None
    stopping: asyncio.Future[ForwardResult] | None = None
    closed: bool = False  # its sockets are closing: what comes now is not the recording's
    last_pli: float = float("-inf")
    plis: int = 0
    rejected: int = 0
    ledger: LossLedger = field(default_factory=LossLedger)  # what it did not get (loss.py)
    inodes: list[int] = field(default_factory=list)  # its sockets, for the kernel's drops
    drops_seen: int = 0
    loss_told_at: float = float("-inf")

    def wants_keyframe(self) -> bool:
        video = self.streams.get("video")
        if video is None or self.paused or self.error or self.stopping is not None:
            return False
        return self.muxer is None or self.muxer.wants_keyframe or video.frames.needs_keyframe


def new_key() -> bytes:
    """A random SRTP master key and salt for one forwarded stream."""
    return os.urandom(SRTP_KEY_BYTES)


class ForwardReceiver:
    """Receives forwarded publications, each into its own sink.

    `on_failed(key, reason)` is called on the loop thread (it must not block) when writing a
    publication's sink fails ("sink_failed"); the publication stays known until `stop`.
    Loss is counted as in endpoint.py (RTP gaps before the reordering, muxer refusals, the
    kernel's drops); `on_loss(key, total)` is called on the loop when a publication loses.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        on_failed: OnFailed | None = None,
        tick_interval: float = TICK_INTERVAL,
        keyframe_interval: float = KEYFRAME_INTERVAL,
        reorder_delay: float = REORDER_DELAY,
        clock: Callable[[], float] = time.monotonic,
        on_loss: OnLoss | None = None,
        receive_buffer: int = RECEIVE_BUFFER,
    ) -> None:
        self.host = host
        self._on_failed = on_failed
        self._on_loss = on_loss
        self._receive_buffer = receive_buffer
        self._tick_interval = tick_interval
        self._keyframe_interval = keyframe_interval
        self._reorder_delay = reorder_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._forwards: dict[str, _Forward] = {}  # touched on the loop thread only

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError("the forward receiver can be started once")
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(loop, ready),
                                      name="forward-receiver", daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        ready.wait(5)

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        ticker = loop.create_task(self._tick_forever())
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            ticker.cancel()
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    def shutdown(self, timeout: float = 10.0) -> list[ForwardResult]:
        """Stop every publication (finishing its container), then the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            already = self._stopped
            self._stopped = True
            if loop is None or thread is None or already:
                return []
            future = asyncio.run_coroutine_threadsafe(self._stop_all(), loop)
        results: list[ForwardResult] = []
        try:
            results = future.result(timeout)
        except concurrent.futures.TimeoutError:
            log.error("forward receiver: shutdown timed out after %s s", timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        return results

    def _submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None or self._stopped:
                failed: concurrent.futures.Future[T] = concurrent.futures.Future()
                failed.set_exception(EngineStoppedError("the forward receiver is not running"))
                return failed
            return asyncio.run_coroutine_threadsafe(make(), self._loop)

    # -- public API (any thread) -----------------------------------------------------------------

    def open(self, key: str, codecs: dict[str, str],
             open_sink: Callable[[], BinaryIO]) -> concurrent.futures.Future[dict[str, Endpoint]]:
        """Bind ports for a publication's streams (kind -> codec: {"audio": "opus", "video":
        "vp8"}); the future gives each kind's Endpoint to hand to Janus. `open_sink` is called
        on the loop thread at the first media and must return a writable binary file."""
        return self._submit(lambda: self._open(key, codecs, open_sink))

    def feedback(self, key: str, kind: str,
                 address: tuple[str, int]) -> concurrent.futures.Future[None]:
        """Where Janus listens for this stream's RTCP (its `local_rtcp_port`); a PLI goes
        there at once if video still waits for a keyframe."""
        return self._submit(lambda: self._feedback(key, kind, address))

    def pause(self, key: str) -> concurrent.futures.Future[None]:
        return self._submit(lambda: self._set_paused(key, True))

    def resume(self, key: str) -> concurrent.futures.Future[None]:
        """Write again; video restarts at the next keyframe, which is asked for at once."""
        return self._submit(lambda: self._set_paused(key, False))

    def stop(self, key: str) -> concurrent.futures.Future[ForwardResult]:
        """Close the ports, write what is held, finish the container, close the sink."""
        return self._submit(lambda: self._stop(key))

    def datagrams(self, key: str) -> concurrent.futures.Future[dict[str, int]]:
        """Datagrams that reached each stream's port so far (kind -> count)."""
        async def read() -> dict[str, int]:
            return {kind: s.datagrams for kind, s in self._get(key).streams.items()}
        return self._submit(read)

    def keys(self) -> concurrent.futures.Future[list[str]]:
        async def keys() -> list[str]:
            return sorted(self._forwards)
        return self._submit(keys)

    # -- on the loop -----------------------------------------------------------------------------

    def _get(self, key: str) -> _Forward:
        forward = self._forwards.get(key)
        if forward is None:
            raise UnknownPublicationError(f"no forwarded publication {key!r}")
        return forward

    async def _open(self, key: str, codecs: dict[str, str],
                    open_sink: Callable[[], BinaryIO]) -> dict[str, Endpoint]:
        if key in self._forwards:
            raise RecordingError(f"publication {key!r} already exists")
        if not codecs or not set(codecs) <= {"audio", "video"}:
            raise RecordingError(f"nothing to receive: {codecs!r}")
        forward = _Forward(key, {}, open_sink)
        try:
            for kind, codec in sorted(codecs.items()):
                frames = frames_for(codec)
                key_bytes = new_key()
                policy = pylibsrtp.Policy(key=key_bytes,
                                          ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
                stream = _Stream(Endpoint(kind, codec, self.host, 0, None, key_bytes),
                                 pylibsrtp.Session(policy=policy),
                                 Reorder(self._reorder_delay), frames)
                forward.streams[kind] = stream
                stream.transport = await self._bind(partial(self._on_rtp, forward, stream))
                rtcp_port = None
                if kind == "video":
                    stream.rtcp = await self._bind(partial(self._on_rtcp, stream))
                    rtcp_port = stream.rtcp.get_extra_info("sockname")[1]
                port = stream.transport.get_extra_info("sockname")[1]
                stream.endpoint = Endpoint(kind, codec, self.host, port, rtcp_port, key_bytes)
        except Exception:
            _close_sockets(forward)
            raise
        forward.inodes = [udp.inode(s.transport.get_extra_info("socket"))
                          for s in forward.streams.values() if s.transport is not None]
        forward.drops_seen = udp.drops(forward.inodes)
        self._forwards[key] = forward
        return {kind: s.endpoint for kind, s in forward.streams.items()}

    async def _bind(self, receive: Callable[[bytes, Any], None]) -> asyncio.DatagramTransport:
        """A UDP socket on the recorder's address, on a port the system chooses."""
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(receive), local_addr=(self.host, 0))
        # Room for a keyframe's burst, and for many publications while the loop is busy.
        udp.size_receive_buffer(transport.get_extra_info("socket"), self._receive_buffer)
        return transport

    async def _feedback(self, key: str, kind: str, address: tuple[str, int]) -> None:
        forward = self._get(key)
        stream = forward.streams.get(kind)
        if stream is None or stream.rtcp is None:
            raise RecordingError(f"publication {key!r} has no {kind} RTCP port")
        stream.feedback = address
        self._ask_keyframe(forward)

    def _on_rtcp(self, stream: _Stream, _data: bytes, addr: Any) -> None:
        # Janus latches with two empty RTP packets from its RTCP socket; an address told by
        # `feedback` (from Janus's own answer) is kept over one learnt this way.
        if stream.feedback is None:
            stream.feedback = addr

    def _on_rtp(self, forward: _Forward, stream: _Stream, data: bytes, _addr: Any) -> None:
        stream.datagrams += 1
        if forward.closed or forward.error is not None:
            return
        try:
            packet = RtpPacket.parse(stream.srtp.unprotect(data))
        except (pylibsrtp.Error, ValueError):
            forward.rejected += 1  # not from Janus, damaged, or a replay
            return
        stream.packets += 1
        stream.ssrc = packet.ssrc
        if not forward.paused:
            forward.ledger.rtp(stream.endpoint.kind, packet.ssrc, packet.sequence_number)
        self._feed(forward, stream, stream.reorder.push(packet, self._clock()))

    def _feed(self, forward: _Forward, stream: _Stream, items: list[Item]) -> None:
        for item in items:
            video_ok = not stream.frames.needs_keyframe
            for received in stream.frames.push(item):
                self._write(forward, stream.endpoint.kind, received)
            if video_ok and stream.frames.needs_keyframe:
                self._ask_keyframe(forward)  # a loss: the next pictures need a keyframe

    def _write(self, forward: _Forward, kind: str, received: Any) -> None:
        if forward.error or (forward.paused and forward.muxer is None):
            return
        try:
            if forward.muxer is None:
                forward.sink = forward.open_sink()
                ledger = forward.ledger
                forward.muxer = TrackMuxer(forward.sink, expected=set(forward.streams),
                                           clock=self._clock,
                                           on_refused=lambda k: ledger.add(k, "refused"))
            forward.muxer.push(kind, received)
        except Exception as exc:  # the sink: no space, I/O error
            log.exception("forwarded publication %s: cannot write", forward.key)
            self._fail(forward, "sink_failed", exc)

    def _fail(self, forward: _Forward, reason: str, exc: BaseException | None = None) -> None:
        if forward.error is not None:
            return
        forward.error = reason
        log.warning("forwarded publication %s ended: %s %s", forward.key, reason, exc or "")
        if self._on_failed is not None:
            try:
                self._on_failed(forward.key, reason)
            except Exception:
                log.exception("on_failed callback for %s raised", forward.key)

    def _ask_keyframe(self, forward: _Forward) -> None:
        video = forward.streams.get("video")
        if video is None or video.rtcp is None or video.feedback is None:
            return
        if not forward.wants_keyframe():
            return
        pli = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=video.ssrc or 0)
        video.rtcp.sendto(bytes(pli), video.feedback)
        forward.last_pli = self._clock()
        forward.plis += 1

    async def _set_paused(self, key: str, paused: bool) -> None:
        forward = self._get(key)
        if forward.paused == paused:
            return
        forward.paused = paused
        if paused:  # what is not recorded is not lost
            forward.ledger.restart()
        if forward.muxer is not None:
            (forward.muxer.pause if paused else forward.muxer.resume)()
        if not paused:
            self._ask_keyframe(forward)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            forwards = list(self._forwards.values())
            drops = udp.drops_by_inode() if forwards else {}
            for forward in forwards:
                if forward.stopping is None:
                    self._count_drops(forward, drops)
                    self._notice_loss(forward)
                self._tick(forward)

    @staticmethod
    def _count_drops(forward: _Forward, drops: dict[int, int]) -> None:
        seen = sum(drops.get(inode, 0) for inode in forward.inodes)
        if seen > forward.drops_seen and not forward.paused:
            forward.ledger.add("socket", "socket_drops", seen - forward.drops_seen)
        forward.drops_seen = max(seen, forward.drops_seen)

    def _notice_loss(self, forward: _Forward) -> None:
        forward.ledger.expire()
        if forward.ledger.news() and self._on_loss is not None:
            now = time.monotonic()
            if now - forward.loss_told_at >= LOSS_NOTICE_INTERVAL:
                forward.loss_told_at = now
                try:
                    self._on_loss(forward.key, forward.ledger.total())
                except Exception:
                    log.exception("on_loss callback for %s raised", forward.key)

    def _tick(self, forward: _Forward) -> None:
        if forward.stopping is not None:
            return
        now = self._clock()
        for stream in forward.streams.values():
            self._feed(forward, stream, stream.reorder.due(now))
        if forward.muxer is not None and forward.error is None:
            try:
                forward.muxer.tick()
                tick = getattr(forward.sink, "tick", None)
                if callable(tick):
                    tick()
            except Exception as exc:
                log.exception("forwarded publication %s: cannot write", forward.key)
                self._fail(forward, "sink_failed", exc)
        if now - forward.last_pli >= self._keyframe_interval:
            self._ask_keyframe(forward)

    async def _stop(self, key: str) -> ForwardResult:
        forward = self._get(key)
        if forward.stopping is None:
            forward.stopping = asyncio.ensure_future(self._finish(forward))
        return await asyncio.shield(forward.stopping)

    async def _stop_all(self) -> list[ForwardResult]:
        results = []
        for key in list(self._forwards):
            try:
                results.append(await self._stop(key))
            except Exception:
                log.exception("forwarded publication %s: cannot finish", key)
        return results

    async def _finish(self, forward: _Forward) -> ForwardResult:
        try:
            if forward.inodes:  # before the sockets close and leave /proc/net/udp
                # What Janus sent before the stop belongs to the recording: read it first.
                left = await udp.catch_up(forward.inodes, CATCH_UP_TIMEOUT)
                if left and forward.error is None:
                    forward.ledger.add("socket", "unread_at_stop", left)
                self._count_drops(forward, udp.drops_by_inode())
            forward.closed = True
            _close_sockets(forward)
            for stream in forward.streams.values():  # what waited behind a gap, then the rest
                for item in stream.reorder.flush():
                    for received in stream.frames.push(item):
                        self._write(forward, stream.endpoint.kind, received)
                for received in stream.frames.flush():
                    self._write(forward, stream.endpoint.kind, received)
            stopped_at = time.time()
            stats = forward.muxer.close() if forward.muxer is not None else None
            sink_error = await disk.closed(forward.sink)  # the disk threads finish the file
            forward.ledger.close()
        finally:
            self._forwards.pop(forward.key, None)
        first_media_at = None
        if forward.muxer is not None and forward.muxer.origin is not None:
            first_media_at = time.time() - (self._clock() - forward.muxer.origin)
        streams = forward.streams
        dropped = {kind: (stats.dropped.get(kind, 0) if stats else 0) + s.frames.dropped
                   for kind, s in streams.items()}
        result = ForwardResult(
            key=forward.key,
            frames=dict(stats.frames) if stats else {},
            dropped=dropped,
            codecs=dict(stats.codecs) if stats else {},
            mode=stats.mode if stats else "passthrough",
            reason=stats.reason if stats else None,
            started_at=forward.started_at,
            first_media_at=first_media_at,
            stopped_at=stopped_at,
            duration=stats.duration if stats else 0.0,
            keyframe_requests=forward.plis,
            error=forward.error or (stats.error if stats else None) or sink_error,
            packets={kind: s.packets for kind, s in streams.items()},
            lost={kind: s.reorder.lost for kind, s in streams.items()},
            late={kind: s.reorder.late for kind, s in streams.items()},
            rejected=forward.rejected,
            loss=forward.ledger.to_dict(),
        )
        log.info("forwarded publication %s: %s", forward.key, result)
        return result


def _close_sockets(forward: _Forward) -> None:
    for stream in forward.streams.values():
        for transport in (stream.transport, stream.rtcp):
            if transport is not None:
                transport.close()
