"""The recording endpoint: receive-only aiortc peers in one asyncio loop on a daemon thread.

Every aiortc object lives on that loop. The public methods of RecordingEngine are thread-safe
and return `concurrent.futures.Future`s at once (they only schedule work on the loop), so Flask
and Socket.IO handlers never wait on aiortc. Media is stored as received (pass-through, see
passthrough.py), handed from each receiver to the muxer on the loop (receiving.py), through one
TrackMuxer per publication into a sink the caller opens on demand.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Protocol, TypeVar

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError

from portal.recording import addresses, disk, receiving, udp
from portal.recording.loss import LossLedger
from portal.recording.passthrough import TrackMuxer

log = logging.getLogger(__name__)

T = TypeVar("T")
TICK_INTERVAL = 0.5  # s between sink ticks (the ChunkWriter seals a chunk after ~1 s)
KEYFRAME_INTERVAL = 2.0  # s between keyframe requests (PLI) while video waits for a keyframe
DRAIN_TIMEOUT = 2.0  # s to let the received frames of a closed connection reach the muxer
#: s a stop waits for the media already in the sockets (sent before the stop) to be read: a
#: busy recorder runs behind, and what it has not read when it closes is lost.
CATCH_UP_TIMEOUT = 5.0
LOSS_NOTICE_INTERVAL = 5.0  # s between two loss notices of one publication
OnFailed = Callable[[str, str], None]
#: on_loss(key, total): the publication is losing media (total: loss.LossLedger.total()).
OnLoss = Callable[[str, dict[str, dict[str, int]]], None]


class RecordingError(Exception):
    """A publication request the engine cannot honour."""


class UnknownPublicationError(RecordingError):
    """No publication has this key (never published, or already stopped)."""


class NegotiationError(RecordingError):
    """The offer could not be answered (malformed SDP, nothing to receive, ...)."""


class EngineStoppedError(RecordingError):
    """The engine is not running (not started yet, or shut down)."""


@dataclass(frozen=True)
class PublicationResult:
    """The outcome of one publication, returned by `stop`. Times are Unix seconds."""

    key: str
    frames: dict[str, int]  # kind -> packets written ("audio", "video")
    dropped: dict[str, int]  # kind -> packets not written (paused, before a keyframe, ...)
    codecs: dict[str, str]  # kind -> codec as stored ("vp8", "h264", "opus")
    mode: str  # "passthrough" or "transcode"
    reason: str | None  # why a track was transcoded
    started_at: float  # publish() was called
    first_media_at: float | None  # time 0 of the written timeline; None if no media came
    stopped_at: float
    duration: float  # seconds of media written (paused time is cut out)
    keyframe_requests: int  # PLIs sent
    error: str | None = None  # why the publication ended early ("failed", "sink_failed", ...)
    loss: dict[str, Any] | None = None  # what it did not get, per window (loss.py)


class Recorder(Protocol):
    """What the web process needs from a recorder, in this process or another one."""

    def publish(
        self, key: str, offer_sdp: str, open_sink: Callable[[], BinaryIO]
    ) -> concurrent.futures.Future[str]: ...

    def pause(self, key: str) -> concurrent.futures.Future[None]: ...

    def resume(self, key: str) -> concurrent.futures.Future[None]: ...

    def stop(self, key: str) -> concurrent.futures.Future[PublicationResult]: ...

    def shutdown(self, timeout: float = 10.0) -> list[PublicationResult]: ...


# --- ICE on a host with loopback only ---------------------------------------------------------

_FALLBACK_MARK = "_samtale_loopback_fallback"


def loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The addresses offered when aioice finds no usable host address."""
    return ["127.0.0.1"] if use_ipv4 else ["::1"] if use_ipv6 else []


def install_loopback_fallback() -> None:
    """Make aioice offer 127.0.0.1 when the host has no other address. Idempotent.

    aioice never gathers loopback candidates, so on a host whose only interface is `lo` (a
    sandbox, a container without network, a developer's offline laptop with the browser on the
    same machine) no ICE pair can form. This wraps `aioice.ice.get_host_addresses`: its answer
    is unchanged whenever it finds any address, so normal hosts never offer loopback.
    """
    current = aioice.ice.get_host_addresses
    if getattr(current, _FALLBACK_MARK, False):
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = current(use_ipv4, use_ipv6)
        if addresses:
            return addresses
        fallback = loopback_addresses(use_ipv4, use_ipv6)
        log.warning("no usable network address: offering ICE candidates on %s", fallback)
        return fallback

    setattr(get_host_addresses, _FALLBACK_MARK, True)
    aioice.ice.get_host_addresses = get_host_addresses


# --- one publication --------------------------------------------------------------------------


@dataclass
class _OfferMedia:
    kinds: set[str]  # audio/video the remote sends
    video_ssrcs: list[int]  # media (not RTX) SSRCs the offer announces for video
    rtx_ssrcs: set[int]
    rtx_of: dict[int, int] = field(default_factory=dict)  # RTX SSRC -> its media SSRC


def _offer_media(offer_sdp: str) -> _OfferMedia:
    description = aiortc_sdp.SessionDescription.parse(offer_sdp)
    media = _OfferMedia(set(), [], set())
    for m in description.media:
        if m.kind not in ("audio", "video") or m.direction not in ("sendonly", "sendrecv"):
            continue
        media.kinds.add(m.kind)
        if m.kind == "video":
            for group in m.ssrc_group:
                if group.semantic == "FID" and len(group.items) == 2:
                    media.rtx_ssrcs.add(int(group.items[1]))
                    media.rtx_of[int(group.items[1])] = int(group.items[0])
            media.video_ssrcs += [s.ssrc for s in m.ssrc if s.ssrc not in media.rtx_ssrcs]
    return media


@dataclass
class _Publication:
    key: str
    pc: RTCPeerConnection
    open_sink: Callable[[], BinaryIO]
    offer: _OfferMedia
    started_at: float = field(default_factory=time.time)
    receivers: dict[str, RTCRtpReceiver] = field(default_factory=dict)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    muxer: TrackMuxer | None = None
    sink: BinaryIO | None = None
    paused: bool = False
    connected: bool = False
    error: str | None = None
    finishing: asyncio.Future[PublicationResult] | None = None
    last_pli: float = float("-inf")
    plis: int = 0
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    ledger: LossLedger = field(default_factory=LossLedger)
    inodes: list[int] = field(default_factory=list)  # its UDP sockets, for the kernel's drops
    drops_seen: int = 0
    loss_told_at: float = float("-inf")

    def wants_keyframe(self) -> bool:
        if "video" not in self.offer.kinds or self.paused or self.error or not self.connected:
            return False
        return self.muxer is None or self.muxer.wants_keyframe

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)  # keep a reference until done
        task.add_done_callback(self.tasks.discard)


# --- the engine -------------------------------------------------------------------------------


class RecordingEngine:
    """Receive-only WebRTC endpoint that records each publication into its own sink.

    `on_failed(key, reason)` is called on the engine's loop thread (so it must not block) when
    a publication ends without `stop`: reason "failed" or "closed" (the connection), or
    "sink_failed" (opening or writing the sink raised). The publication stays known until
    `stop(key)`, which finalises what was written.

    The engine contacts only the offer's candidates at public addresses and in
    `allowed_networks` (see addresses.py).

    Each publication counts what it did not get (loss.py): RTP sequence gaps, late and repeated
    packets, packets the muxer refused, and the kernel's drops on its sockets, whose receive
    buffers are asked to be `receive_buffer` bytes. `on_loss(key, total)` is called on the loop
    (it must not block) when a publication loses media, at most every LOSS_NOTICE_INTERVAL.
    """

    def __init__(
        self,
        *,
        ice_servers: list[RTCIceServer] | None = None,
        allowed_networks: Iterable[str] = (),
        on_failed: OnFailed | None = None,
        tick_interval: float = TICK_INTERVAL,
        keyframe_interval: float = KEYFRAME_INTERVAL,
        on_loss: OnLoss | None = None,
        receive_buffer: int = udp.RECEIVE_BUFFER,
    ) -> None:
        self._ice_servers = list(ice_servers or [])
        self._on_loss = on_loss
        self._receive_buffer = receive_buffer
        self._allowed = addresses.networks(allowed_networks)
        self._on_failed = on_failed
        self._tick_interval = tick_interval
        self._keyframe_interval = keyframe_interval
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._pubs: dict[str, _Publication] = {}  # touched on the loop thread only
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread (and patch aiortc/aioice, see receiving.install)."""
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError("the recording engine can be started once")
            receiving.install()
            install_loopback_fallback()
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(loop, ready),
                                      name="recording-engine", daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        ready.wait(5)

    @property
    def running(self) -> bool:
        """True between start() and shutdown()."""
        with self._lock:
            return self._thread is not None and not self._stopped

    def __enter__(self) -> RecordingEngine:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._ticker = loop.create_task(self._tick_forever())
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def shutdown(self, timeout: float = 10.0) -> list[PublicationResult]:
        """Stop every publication (closing its peer connection and sink), then the thread.

        Returns the results of the publications still running. Blocks up to about `timeout`.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._stopped:
                self._stopped = True
                return []
            self._stopped = True
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        results: list[PublicationResult] = []
        try:
            results = future.result(timeout)
        except concurrent.futures.TimeoutError:
            log.error("recording engine: shutdown timed out after %s s", timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        return results

    async def _shutdown(self) -> list[PublicationResult]:
        if self._ticker is not None:
            self._ticker.cancel()
        pubs = list(self._pubs.values())
        outcomes = await asyncio.gather(*(self._finish(p) for p in pubs), return_exceptions=True)
        results = []
        for pub, outcome in zip(pubs, outcomes, strict=True):
            if isinstance(outcome, PublicationResult):
                results.append(outcome)
            else:
                log.error("publication %s: cannot finish: %r", pub.key, outcome)
        return results

    def _submit(self, make: Callable[[], Coroutine[Any, Any, T]]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None or self._stopped:
                failed: concurrent.futures.Future[T] = concurrent.futures.Future()
                failed.set_exception(EngineStoppedError("the recording engine is not running"))
                return failed
            return asyncio.run_coroutine_threadsafe(make(), self._loop)

    # -- public API (any thread) -----------------------------------------------------------------

    def publish(
        self, key: str, offer_sdp: str, open_sink: Callable[[], BinaryIO]
    ) -> concurrent.futures.Future[str]:
        """Answer a browser's offer to publish its media; the future gives the answer SDP.

        `open_sink` is called on the loop thread when the first media arrives (not before: a
        failed negotiation creates no file) and must return a writable binary file object;
        the engine closes it on stop. The answer carries every candidate (no trickle ICE).
        """
        return self._submit(lambda: self._publish(key, offer_sdp, open_sink))

    def pause(self, key: str) -> concurrent.futures.Future[None]:
        """Drop this publication's media until resume (the connection stays up)."""
        return self._submit(lambda: self._set_paused(key, True))

    def resume(self, key: str) -> concurrent.futures.Future[None]:
        """Record again; video restarts at the next keyframe, which is requested at once."""
        return self._submit(lambda: self._set_paused(key, False))

    def stop(self, key: str) -> concurrent.futures.Future[PublicationResult]:
        """Close the connection, finish the container and close the sink."""
        return self._submit(lambda: self._stop(key))

    def keys(self) -> concurrent.futures.Future[list[str]]:
        """Keys of the publications the engine knows."""
        return self._submit(self._keys)

    # -- on the loop -----------------------------------------------------------------------------

    async def _keys(self) -> list[str]:
        return sorted(self._pubs)

    def _get(self, key: str) -> _Publication:
        pub = self._pubs.get(key)
        if pub is None:
            raise UnknownPublicationError(f"no publication {key!r}")
        return pub

    async def _publish(
        self, key: str, offer_sdp: str, open_sink: Callable[[], BinaryIO]
    ) -> str:
        if key in self._pubs:
            raise RecordingError(f"publication {key!r} already exists")
        offer_sdp = addresses.filter_offer(offer_sdp, self._allowed)  # nothing aimed inward
        try:
            offer = _offer_media(offer_sdp)
        except Exception as exc:  # aiortc's parser raises anything on garbage
            raise NegotiationError(f"malformed offer: {exc!r}") from exc
        if not offer.kinds:
            raise NegotiationError("the offer sends neither audio nor video")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        pub = _Publication(key, pc, open_sink, offer)
        self._pubs[key] = pub  # now pause/stop find it, even during the negotiation
        pc.on("track", lambda track: self._on_track(pub, track))
        pc.on("connectionstatechange", lambda: self._on_connection_state(pub))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            if pub.finishing is not None:
                raise RecordingError(f"publication {key!r} was stopped while negotiating")
            self._watch_sockets(pub)
            return str(pc.localDescription.sdp)
        except Exception as exc:
            if pub.finishing is None:  # else _close cleans up
                self._pubs.pop(key, None)
                await pc.close()
                for pump in pub.pumps:  # their receivers never started: nothing ends them
                    pump.cancel()
            if isinstance(exc, RecordingError):
                raise
            raise NegotiationError(f"cannot answer the offer: {exc!r}") from exc

    def _on_track(self, pub: _Publication, track: MediaStreamTrack) -> None:
        # aiortc emits "track" inside setRemoteDescription, before it starts the receiver:
        # attached now, it hands each frame to _on_media on the loop (receiving.py).
        kind = track.kind
        for transceiver in pub.pc.getTransceivers():
            if transceiver.receiver.track is track:
                pub.receivers[kind] = transceiver.receiver
                self._count_rtp(pub, kind, transceiver.receiver)
                receiving.attach(transceiver.receiver,
                                 lambda item: self._on_media(pub, kind, item))
        pub.pumps.append(asyncio.ensure_future(self._pump(pub, track)))

    def _watch_sockets(self, pub: _Publication) -> None:
        """Size the connection's receive buffers; remember its sockets to read their drops."""
        sockets = udp.peer_sockets(pub.pc)
        for sock in sockets:
            udp.size_receive_buffer(sock, self._receive_buffer)
        pub.inodes = [udp.inode(sock) for sock in sockets]
        pub.drops_seen = udp.drops(pub.inodes)

    def _count_rtp(self, pub: _Publication, kind: str, receiver: RTCRtpReceiver) -> None:
        """Count each RTP packet's sequence number before aiortc handles it (loss.py)."""
        handle = receiver._handle_rtp_packet
        rtx_of = pub.offer.rtx_of
        ledger = pub.ledger

        async def counted(packet: Any, arrival_time_ms: int) -> None:
            if not pub.paused:
                original = rtx_of.get(packet.ssrc)
                if original is None:
                    ledger.rtp(kind, packet.ssrc, packet.sequence_number)
                elif len(packet.payload) >= 2:  # RTX (RFC 4588): the original's number first
                    ledger.rtp(kind, original, int.from_bytes(packet.payload[:2], "big"))
            await handle(packet, arrival_time_ms)

        # The DTLS transport looks the method up on each packet: this instance gets ours.
        receiver._handle_rtp_packet = counted  # type: ignore[method-assign]

    def _on_connection_state(self, pub: _Publication) -> None:
        state = pub.pc.connectionState
        if state == "connected":
            pub.connected = True
            pub.spawn(self._request_keyframe(pub))
        elif state in ("failed", "closed") and pub.finishing is None:
            self._fail(pub, state)

    async def _pump(self, pub: _Publication, track: MediaStreamTrack) -> None:
        # An attached receiver's frames bypass the track (receiving.py): this sees its end.
        while True:
            try:
                item = await track.recv()
            except MediaStreamError:
                return
            self._on_media(pub, track.kind, item)

    def _on_media(self, pub: _Publication, kind: str, item: Any) -> None:
        if pub.error or (pub.paused and pub.muxer is None):
            return  # (a paused muxer drops, and counts, what it gets)
        try:
            if pub.muxer is None:
                pub.sink = pub.open_sink()
                ledger = pub.ledger
                pub.muxer = TrackMuxer(pub.sink, expected=pub.offer.kinds,
                                       on_refused=lambda kind: ledger.add(kind, "refused"))
            pub.muxer.push(kind, item)
        except Exception as exc:  # the sink: no space, I/O error, a bug in open_sink
            log.exception("publication %s: cannot write", pub.key)
            self._fail(pub, "sink_failed", exc)

    def _fail(self, pub: _Publication, reason: str, exc: BaseException | None = None) -> None:
        if pub.error is not None or pub.finishing is not None:
            return
        pub.error = reason
        log.warning("publication %s ended: %s %s", pub.key, reason, exc or "")
        pub.spawn(pub.pc.close())
        if self._on_failed is not None:
            try:
                self._on_failed(pub.key, reason)
            except Exception:
                log.exception("on_failed callback for %s raised", pub.key)

    async def _set_paused(self, key: str, paused: bool) -> None:
        pub = self._get(key)
        if pub.paused == paused:
            return
        pub.paused = paused
        if paused:  # what is not recorded is not lost: start the sequences afresh on resume
            pub.ledger.restart()
        if pub.muxer is not None:
            (pub.muxer.pause if paused else pub.muxer.resume)()
        if not paused:
            await self._request_keyframe(pub)

    async def _request_keyframe(self, pub: _Publication) -> None:
        receiver = pub.receivers.get("video")
        if receiver is None or not pub.wants_keyframe():
            return
        ssrcs = pub.offer.video_ssrcs or [
            s.source for s in receiver.getSynchronizationSources()
            if s.source not in pub.offer.rtx_ssrcs
        ]
        if not ssrcs:
            return
        pub.last_pli = time.monotonic()
        pub.plis += 1
        for ssrc in ssrcs:
            # aiortc's own way to report picture loss (RFC 4585 6.3.1): the sender answers
            # with a keyframe. It is a no-op until the transport is up.
            await receiver._send_rtcp_pli(ssrc)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            pubs = list(self._pubs.values())
            drops = udp.drops_by_inode() if pubs else {}
            for pub in pubs:
                if pub.finishing is None:
                    self._count_drops(pub, drops)
                    self._notice_loss(pub)
                await self._tick(pub)

    def _count_drops(self, pub: _Publication, drops: dict[int, int]) -> None:
        """The kernel's drops on the publication's sockets since the last look."""
        seen = sum(drops.get(inode, 0) for inode in pub.inodes)
        if seen > pub.drops_seen and not pub.paused:
            pub.ledger.add("socket", "socket_drops", seen - pub.drops_seen)
        pub.drops_seen = max(seen, pub.drops_seen)

    def _notice_loss(self, pub: _Publication) -> None:
        pub.ledger.expire()
        if pub.ledger.news() and self._on_loss is not None:
            now = time.monotonic()
            if now - pub.loss_told_at >= LOSS_NOTICE_INTERVAL:
                pub.loss_told_at = now
                try:
                    self._on_loss(pub.key, pub.ledger.total())
                except Exception:
                    log.exception("on_loss callback for %s raised", pub.key)

    async def _tick(self, pub: _Publication) -> None:
        if pub.muxer is not None and pub.error is None and pub.finishing is None:
            try:
                pub.muxer.tick()
                tick = getattr(pub.sink, "tick", None)
                if callable(tick):
                    tick()
            except Exception as exc:
                log.exception("publication %s: cannot write", pub.key)
                self._fail(pub, "sink_failed", exc)
        if (pub.wants_keyframe()
                and time.monotonic() - pub.last_pli >= self._keyframe_interval):
            await self._request_keyframe(pub)

    async def _stop(self, key: str) -> PublicationResult:
        return await self._finish(self._get(key))

    async def _finish(self, pub: _Publication) -> PublicationResult:
        if pub.finishing is None:
            pub.finishing = asyncio.ensure_future(self._close(pub))
        return await asyncio.shield(pub.finishing)

    async def _catch_up(self, pub: _Publication) -> None:
        """Read what was sent before the stop; count what is still unread at the timeout."""
        left = await udp.catch_up(pub.inodes, CATCH_UP_TIMEOUT)
        if left and pub.connected and pub.error is None:
            pub.ledger.add("socket", "unread_at_stop", left)

    async def _close(self, pub: _Publication) -> PublicationResult:
        try:
            if pub.inodes:  # before the sockets close and leave /proc/net/udp
                await self._catch_up(pub)
                self._count_drops(pub, udp.drops_by_inode())
            await pub.pc.close()
            if pub.pumps:
                # The receivers' last frames are still on their way; a receiver that never
                # started (no connection) ends no pump, hence the timeout.
                _, pending = await asyncio.wait(pub.pumps, timeout=DRAIN_TIMEOUT)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            if pub.tasks:
                await asyncio.gather(*pub.tasks, return_exceptions=True)
            stopped_at = time.time()
            stats = pub.muxer.close() if pub.muxer is not None else None
            sink_error = await disk.closed(pub.sink)  # the disk threads finish the file
            pub.ledger.close()
        finally:
            self._pubs.pop(pub.key, None)
        first_media_at = None
        if pub.muxer is not None and pub.muxer.origin is not None:
            first_media_at = time.time() - (time.monotonic() - pub.muxer.origin)
        return PublicationResult(
            key=pub.key,
            frames=dict(stats.frames) if stats else {},
            dropped=dict(stats.dropped) if stats else {},
            codecs=dict(stats.codecs) if stats else {},
            mode=stats.mode if stats else "passthrough",
            reason=stats.reason if stats else None,
            started_at=pub.started_at,
            first_media_at=first_media_at,
            stopped_at=stopped_at,
            duration=stats.duration if stats else 0.0,
            keyframe_requests=pub.plis,
            error=pub.error or (stats.error if stats else None) or sink_error,
            loss=pub.ledger.to_dict(),
        )
