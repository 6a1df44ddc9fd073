"""Store media as received: aiortc hands us encoded frames and PyAV muxes them by codec copy.

A recorded track's receiver decodes on the loop (receiving.py) with `decoder_for(codec)`: a
`PassthroughDecoder`, whose "frames" are the depayloaded encoded frames as `av.Packet`s, for the
codecs that can be stored as received. Every other receiver in the process (a test client,
aiortc's MediaRecorder in the benchmark) keeps aiortc's real decoder.

`TrackMuxer` writes one publication (audio and/or video) into a WebM (VP8/Opus) or Matroska
(H.264) container on a non-seekable sink. A codec that cannot be stored as received (G.711,
G.722) arrives decoded and is re-encoded to Opus (VP8 for video): mode "transcode".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, BinaryIO

import av
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

log = logging.getLogger(__name__)

PASSTHROUGH_CODECS = frozenset({"vp8", "h264", "opus"})  # aiortc codec name, lower case
MS = Fraction(1, 1000)


# --- the decoder ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """One item of a recorded track: what its decoder (`decoder_for`) hands on.

    `item` is the encoded frame as an `av.Packet` (pass-through: pts is the RTP timestamp,
    which aiortc maps to start at 0 and unwraps; time_base is 1/clock rate, 90 kHz video,
    48 kHz Opus) or, for a codec that cannot pass through, aiortc's decoded frame. The codec
    travels beside the packet rather than in `Packet.opaque`: PyAV 18 keys opaque objects by
    id(), so packets sharing one label lose it when the first of them is freed.
    """

    codec: str  # as negotiated, lower case: "vp8", "h264", "opus", "pcmu", ...
    item: av.Packet | av.AudioFrame | av.VideoFrame
    keyframe: bool = False  # video: the packet starts a new picture sequence


class PassthroughDecoder(Decoder):
    """Hands each encoded frame on as an `av.Packet` instead of decoding it."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.codec = codec.name.lower()
        self.kind = codec.mimeType.split("/", 1)[0].lower()
        self.time_base = Fraction(1, codec.clockRate)

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        packet = av.Packet(encoded_frame.data)
        packet.pts = packet.dts = encoded_frame.timestamp
        packet.time_base = self.time_base
        keyframe = self.kind == "video" and is_keyframe(self.codec, encoded_frame.data)
        packet.is_keyframe = keyframe
        return [Received(self.codec, packet, keyframe)]


class _LabellingDecoder(Decoder):
    """aiortc's real decoder for a recorded track whose codec cannot pass through: labels the
    frames with the codec so that the muxer can say why it transcodes."""

    def __init__(self, inner: Decoder, codec: RTCRtpCodecParameters) -> None:
        self.inner = inner
        self.codec = codec.name.lower()

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        return [Received(self.codec, frame) for frame in self.inner.decode(encoded_frame)
                if isinstance(frame, av.AudioFrame | av.VideoFrame)]


def is_keyframe(codec: str, data: bytes) -> bool:
    """True if the depayloaded frame starts a new picture sequence (VP8 key / H.264 IDR)."""
    if codec == "vp8":
        return len(data) >= 10 and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a"
    if codec == "h264":
        return any(nal_type == 5 for nal_type in _h264_nal_types(data))
    return True


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 section 9.1), else None."""
    if not is_keyframe("vp8", data):
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


def _h264_nal_types(data: bytes) -> list[int]:
    # aiortc's depayloader emits Annex B: every NAL unit follows a 00 00 01 start code.
    types = []
    start = data.find(b"\x00\x00\x01")
    while start != -1 and start + 3 < len(data):
        types.append(data[start + 3] & 0x1F)
        start = data.find(b"\x00\x00\x01", start + 3)
    return types


def h264_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of an H.264 keyframe (with SPS/PPS), by decoding just that frame."""
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1  # no frame threading: the picture comes out of this one packet
    try:
        frames = decoder.decode(av.Packet(data)) + decoder.decode(None)
    except av.FFmpegError:
        return None
    for frame in frames:
        if isinstance(frame, av.VideoFrame):
            return frame.width, frame.height
    return None


# --- which decoder -----------------------------------------------------------------------------


def decoder_for(codec: RTCRtpCodecParameters) -> Decoder:
    """The decoder of a recorded track: pass-through when the codec can be stored as received,
    else aiortc's own decoder with its frames labelled (the muxer transcodes them)."""
    if codec.name.lower() in PASSTHROUGH_CODECS:
        return PassthroughDecoder(codec)
    return _LabellingDecoder(get_decoder(codec), codec)


# --- the muxer --------------------------------------------------------------------------------

START_TIMEOUT = 2.0  # s: wait this long for the other kind's first packet before starting
DISCONTINUITY = 2.0  # s: a track whose media clock strays this far from arrival is re-anchored
# Matroska writes a cluster only when it ends: end one every 0.5 s so that the sink gets the
# media within 0.5 s. (Measured with ChunkWriter's 1 s flush interval and 0.5 s ticks: what is
# sealed on disk lags the media by 1-2 s.)
CONTAINER_OPTIONS = {
    "cluster_time_limit": "500",
    "cluster_size_limit": "262144",
    "flush_packets": "1",
    "max_interleave_delta": "500000",  # us: never hold one kind back waiting for the other
}
TRANSCODE_TO = {"audio": "libopus", "video": "libvpx"}


@dataclass
class _Track:
    kind: str
    source: str = ""  # codec as received
    passthrough: bool = True
    waiting_keyframe: bool = False
    size: tuple[int, int] | None = None
    ready: bool = False  # parameters known: may be added to the container
    stream: Any = None
    anchor: tuple[Fraction, int] | None = None  # (media time s, output ms) of the anchor
    last_ms: int = -1
    first_ms: int | None = None
    frames: int = 0
    dropped: int = 0
    refused: int = 0  # of the dropped: packets the muxer or encoder refused (media lost)
    fixed: int = 0  # timestamps raised to keep them increasing


@dataclass(frozen=True)
class MuxStats:
    """What a TrackMuxer wrote. Timestamps are ms on the recording's timeline."""

    frames: dict[str, int]
    dropped: dict[str, int]
    refused: dict[str, int]  # of the dropped: refused by the muxer or encoder (media lost)
    repaired: dict[str, int]  # timestamps raised to keep them increasing
    codecs: dict[str, str]  # kind -> codec as stored ("vp8", "h264", "opus")
    source_codecs: dict[str, str]  # kind -> codec as received
    first_ms: dict[str, int]
    last_ms: dict[str, int]
    mode: str  # "passthrough" or "transcode"
    reason: str | None  # why a track was transcoded
    format: str | None  # "webm", "matroska", or None if nothing was written
    error: str | None = None  # finishing the container or closing the sink failed

    @property
    def duration(self) -> float:
        """Seconds from the first to the last written packet, over all tracks."""
        if not self.first_ms:
            return 0.0
        return (max(self.last_ms.values()) - min(self.first_ms.values())) / 1000


@dataclass
class _Pending:
    ms: int
    kind: str
    item: Any


class TrackMuxer:
    """Muxes one publication's tracks into a WebM/Matroska container on `sink`.

    Feed it with `push(kind, received)` (what a recorded track's decoder hands on), call `tick()`
    now and then and `close()` at the end (which also closes the sink). Not thread-safe: use
    it from one thread (the engine's loop). Bad media never raises: such packets are dropped
    and counted; the sink's own errors (disk full) do propagate.

    Timeline (ms, time_base 1/1000): the first packet of any kind is 0. Each track is anchored
    at its first packet: out = arrival of that packet on the timeline + (pts - its pts), so
    audio and video are aligned by arrival time (their RTP clocks are unrelated without RTCP
    sender reports; the error is the difference of the two jitter buffers' delays, tens of ms).
    A track is re-anchored on its next packet after a resume and when its media clock strays
    more than DISCONTINUITY from arrival (a sender restart). Paused time is cut out.
    """

    def __init__(
        self,
        sink: BinaryIO,
        *,
        expected: set[str] | frozenset[str] = frozenset({"audio", "video"}),
        start_timeout: float = START_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        if not expected or not expected <= {"audio", "video"}:
            raise ValueError(f"expected must be a non-empty subset of audio, video: {expected}")
        self._sink = sink
        self._expected = frozenset(expected)
        self._start_timeout = start_timeout
        self._clock = clock
        self._on_refused = on_refused  # (kind): media the container lost, for loss.py
        self._tracks: dict[str, _Track] = {}
        self._pending: list[_Pending] = []
        self._container: Any = None
        self._format: str | None = None
        self._origin: float | None = None  # clock() of the first packet
        self._cut = 0.0  # s of paused time removed from the timeline
        self._paused_at: float | None = None
        self._started = False
        self._closed = False
        self._stats: MuxStats | None = None

    # -- state ---------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the container header is written (streams fixed)."""
        return self._started

    @property
    def origin(self) -> float | None:
        """clock() of the first accepted packet: time 0 of the timeline."""
        return self._origin

    @property
    def wants_keyframe(self) -> bool:
        """True while video is expected but dropped until the next keyframe."""
        if self._closed or self._paused_at is not None or "video" not in self._expected:
            return False
        video = self._tracks.get("video")
        if self._started and (video is None or video.stream is None):
            return False  # the container started without video: no keyframe can help
        return video is None or video.waiting_keyframe or not video.ready

    def pause(self) -> None:
        """Drop media from now on, and cut the paused time out of the timeline."""
        if self._paused_at is None:
            self._paused_at = self._clock()

    def resume(self) -> None:
        """Write media again; video waits for a keyframe."""
        if self._paused_at is None:
            return
        if self._origin is not None:
            self._cut += self._clock() - self._paused_at
        self._paused_at = None
        for track in self._tracks.values():
            track.anchor = None
            if track.kind == "video" and track.passthrough:
                track.waiting_keyframe = True

    # -- input ---------------------------------------------------------------------------------

    def push(self, kind: str, received: Received) -> None:
        """Write (or buffer, before the container starts) one packet or frame of `kind`."""
        if self._closed or kind not in self._expected:
            return
        track = self._tracks.setdefault(kind, _Track(kind, waiting_keyframe=kind == "video"))
        if self._paused_at is not None:
            track.dropped += 1
            return
        now = self._clock()
        if not self._accept(track, received):
            track.dropped += 1
            return
        if self._origin is None:
            self._origin = now
        item = received.item
        ms = self._timestamp(track, item, now)
        if ms is None:
            track.dropped += 1
        elif self._started:
            self._write(track, ms, item)
        else:
            self._pending.append(_Pending(ms, kind, item))
        self.tick()

    def tick(self) -> None:
        """Start the container once every expected kind is ready or START_TIMEOUT passed."""
        if self._started or self._closed or self._origin is None:
            return
        ready = {k for k, t in self._tracks.items() if t.ready}
        if ready >= self._expected or (
            ready and self._clock() - self._origin >= self._start_timeout
        ):
            self._start()

    def _accept(self, track: _Track, received: Received) -> bool:
        """Learn the track's codec and parameters; False if the item must be dropped."""
        item = received.item
        if item.pts is None or item.time_base is None:
            return False
        passthrough = isinstance(item, av.Packet)
        if passthrough and received.codec not in PASSTHROUGH_CODECS:
            return False
        if not track.source:
            track.source, track.passthrough = received.codec, passthrough
        elif (track.source, track.passthrough) != (received.codec, passthrough):
            return False  # the codec changed mid-stream: the container cannot follow
        if isinstance(item, av.Packet) and track.kind == "video" and track.waiting_keyframe:
            if not received.keyframe:
                return False
            data = bytes(item)
            size = vp8_size(data) if received.codec == "vp8" else h264_size(data)
            if size is None:
                return False
            track.waiting_keyframe = False
            track.size = track.size or size
        if isinstance(item, av.VideoFrame) and track.size is None:
            track.size = (item.width, item.height)
        track.ready = True
        return True

    def _timestamp(self, track: _Track, item: Any, now: float) -> int | None:
        assert self._origin is not None
        media = Fraction(item.pts) * item.time_base
        arrival_ms = round((now - self._origin - self._cut) * 1000)
        if track.anchor is not None:
            anchor_media, anchor_ms = track.anchor
            ms = anchor_ms + round((media - anchor_media) * 1000)
            if abs(ms - arrival_ms) <= DISCONTINUITY * 1000:
                return ms
            log.info("%s: media clock off by %d ms, re-anchored", track.kind, ms - arrival_ms)
        track.anchor = (media, max(arrival_ms, track.last_ms + 1))
        return track.anchor[1]

    # -- output --------------------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        tracks = [t for t in self._tracks.values() if t.ready]
        stored = {t.kind: self._stored_codec(t) for t in tracks}
        self._format = "matroska" if "h264" in stored.values() else "webm"
        try:
            self._container = av.open(self._sink, "w", format=self._format,
                                      container_options=CONTAINER_OPTIONS)
            for track in sorted(tracks, key=lambda t: t.kind != "video"):
                track.stream = self._add_stream(track)
        except (av.FFmpegError, ValueError) as exc:
            log.error("cannot start the container: %s", exc)
            self._container = None
            for track in tracks:
                track.stream = None
        pending, self._pending = sorted(self._pending, key=lambda p: p.ms), []
        for entry in pending:
            self._write(self._tracks[entry.kind], entry.ms, entry.item)

    def _stored_codec(self, track: _Track) -> str:
        if track.passthrough:
            return track.source
        return "opus" if track.kind == "audio" else "vp8"

    def _add_stream(self, track: _Track) -> Any:
        container = self._container
        if track.kind == "video" and track.passthrough:
            assert track.size is not None
            width, height = track.size
            # Codec copy: a stream without an encoder (PyAV >= 18). PyAV derives H.264's
            # extradata (SPS/PPS) from the first packet.
            return container.add_mux_stream(track.source, width=width, height=height,
                                            time_base=MS)
        if track.kind == "audio":
            # An Opus *encoder* context, even for pass-through: opening it gives the stream the
            # OpusHead extradata (2 channels, 48 kHz, 312 samples pre-skip) WebM requires. It is
            # never fed when the packets pass through.
            stream = container.add_stream("libopus", rate=48000, layout="stereo")
            if not track.passthrough:
                stream.bit_rate = 64000
            return stream
        assert track.size is not None
        stream = container.add_stream(TRANSCODE_TO["video"], rate=30)
        stream.width, stream.height = track.size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = MS
        return stream

    def _write(self, track: _Track, ms: int, item: Any) -> None:
        if track.stream is None:  # the track came after the container started: not stored
            self._refuse(track)
            return
        if track.passthrough:
            self._mux(track, ms, item)
            return
        item.pts, item.time_base = ms, MS
        try:
            packets = track.stream.encode(item)
        except (av.FFmpegError, ValueError) as exc:
            log.warning("%s: cannot encode %s frame: %s", track.kind, track.source, exc)
            self._refuse(track)
            return
        for packet in packets:
            self._mux_encoded(track, packet)

    def _mux_encoded(self, track: _Track, packet: Any) -> None:
        ms = round(Fraction(packet.pts) * packet.time_base * 1000)
        self._mux(track, ms, packet)

    def _mux(self, track: _Track, ms: int, packet: Any) -> None:
        if ms <= track.last_ms:  # a reordered or repeated timestamp: keep the stream valid
            track.fixed += 1
            ms = track.last_ms + 1
        packet.pts = packet.dts = ms
        packet.time_base = MS
        packet.stream = track.stream
        try:
            self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            log.warning("%s: dropped a packet the muxer refused: %s", track.kind, exc)
            self._refuse(track)
            return
        track.last_ms = ms
        if track.first_ms is None:
            track.first_ms = ms
        track.frames += 1

    def _refuse(self, track: _Track) -> None:
        track.dropped += 1
        track.refused += 1
        if self._on_refused is not None:
            self._on_refused(track.kind)

    def close(self) -> MuxStats:
        """Write what is buffered, finish the container, close the sink. Idempotent."""
        if self._stats is not None:
            return self._stats
        if not self._started and any(t.ready for t in self._tracks.values()):
            self._start()
        self._closed = True
        error = None
        try:
            if self._container is not None:
                for track in self._tracks.values():
                    if track.stream is not None and not track.passthrough:
                        for packet in track.stream.encode(None):
                            self._mux_encoded(track, packet)
                self._container.close()
        except Exception as exc:  # report it; the sink must be closed regardless
            log.error("cannot finish the container: %s", exc)
            error = f"container: {exc}"
        try:
            self._sink.close()
        except Exception as exc:
            log.error("cannot close the sink: %s", exc)
            error = error or f"sink: {exc}"
        self._stats = replace(self.stats(), error=error)
        return self._stats

    def stats(self) -> MuxStats:
        """Counts so far."""
        written = [t for t in self._tracks.values() if t.first_ms is not None]
        transcoded = [t for t in self._tracks.values() if t.source and not t.passthrough]
        reason = "; ".join(
            f"{t.kind} codec {t.source} cannot be stored as received: re-encoded to "
            f"{self._stored_codec(t)}" for t in transcoded
        )
        return MuxStats(
            frames={t.kind: t.frames for t in self._tracks.values()},
            dropped={t.kind: t.dropped for t in self._tracks.values()},
            refused={t.kind: t.refused for t in self._tracks.values()},
            repaired={t.kind: t.fixed for t in self._tracks.values()},
            codecs={t.kind: self._stored_codec(t) for t in self._tracks.values() if t.source},
            source_codecs={t.kind: t.source for t in self._tracks.values() if t.source},
            first_ms={t.kind: t.first_ms for t in written if t.first_ms is not None},
            last_ms={t.kind: t.last_ms for t in written},
            mode="transcode" if transcoded else "passthrough",
            reason=reason or None,
            format=self._format if self._container is not None else None,
        )
