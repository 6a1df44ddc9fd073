"""Encoded frames out of forwarded RTP, without decoding: packets put back in order, VP8
pictures reassembled and Opus packets passed on, ready for the pass-through muxer.

Janus forwards what the publisher sends as it arrives (a retransmission comes late, out of
order), with no retransmission of its own towards the recorder. So a gap waits a little for
the late packet and is then given up: the VP8 picture it hit is dropped, and so is every
picture after it until the next keyframe (they refer to what was lost; writing them would
store damaged pictures). The caller asks the publisher for that keyframe.

No I/O here and no clock of its own: `Reorder` is given the time, so tests drive it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtpPacket

from portal.recording.passthrough import Received, is_keyframe

#: s a gap in the sequence numbers waits for its late packet (a retransmission's round trip).
REORDER_DELAY = 0.4
#: Packets held at most while a gap waits: past this the gap is given up at once.
REORDER_CAPACITY = 1024
CLOCK_RATES = {"vp8": 90000, "opus": 48000}


@dataclass(frozen=True, slots=True)
class Gap:
    """Packets that never came (`count` sequence numbers given up)."""

    count: int


Item = RtpPacket | Gap


class Reorder:
    """RTP packets of one stream back in sequence order.

    `push(packet, now)` returns what can be released: packets in order, and a `Gap` where a
    missing packet was given up (after `delay` s, or when `capacity` packets wait behind it).
    `due(now)` releases what the passing time allows, call it now and then. Duplicates and
    packets older than what was released are dropped (counted in `late`).
    """

    def __init__(self, delay: float = REORDER_DELAY, capacity: int = REORDER_CAPACITY) -> None:
        self.delay = delay
        self.capacity = capacity
        self._held: dict[int, RtpPacket] = {}  # extended sequence number -> packet
        self._next: int | None = None  # extended sequence number released next
        self._highest = -1
        self._waiting_since: float | None = None  # a gap holds packets back since then
        self.late = 0
        self.lost = 0

    def _extend(self, seq: int) -> int:
        """The 16-bit sequence number unwrapped, nearest to the highest seen."""
        if self._highest < 0:
            return seq + (1 << 16)  # room below for reordered packets of the first roll
        base = self._highest & ~0xFFFF
        candidates = (base - (1 << 16) + seq, base + seq, base + (1 << 16) + seq)
        return min(candidates, key=lambda c: abs(c - self._highest))

    def push(self, packet: RtpPacket, now: float) -> list[Item]:
        ext = self._extend(packet.sequence_number)
        if self._next is None:
            self._next = ext
        if ext < self._next or ext in self._held:
            self.late += 1
            return []
        self._highest = max(self._highest, ext)
        self._held[ext] = packet
        return self._release(now)

    def due(self, now: float) -> list[Item]:
        return self._release(now)

    def flush(self) -> list[Item]:
        """Everything held, gaps given up: the stream has ended."""
        out: list[Item] = []
        while self._held:
            out += self._skip()
            out += self._in_order()
        self._waiting_since = None
        return out

    def _in_order(self) -> list[Item]:
        out: list[Item] = []
        while self._next is not None and self._next in self._held:
            out.append(self._held.pop(self._next))
            self._next += 1
        return out

    def _skip(self) -> list[Item]:
        assert self._next is not None
        first = min(self._held)
        self.lost += first - self._next
        gap = Gap(first - self._next)
        self._next = first
        return [gap]

    def _release(self, now: float) -> list[Item]:
        out = self._in_order()
        while self._held:
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self.delay and len(self._held) < self.capacity:
                return out
            out += self._skip()
            out += self._in_order()
            self._waiting_since = now if self._held else None
        self._waiting_since = None
        return out


class Timestamps:
    """RTP timestamps unwrapped (32-bit) and counted from the stream's first one."""

    def __init__(self) -> None:
        self._origin: int | None = None
        self._last = 0

    def map(self, timestamp: int) -> int:
        if self._origin is None:
            self._origin = self._last = timestamp
            return 0
        step = (timestamp - (self._last & 0xFFFFFFFF)) & 0xFFFFFFFF
        if step >= 1 << 31:  # an older picture (reordered within a frame boundary)
            step -= 1 << 32
        self._last += step
        return self._last - self._origin


def _packet(codec: str, data: bytes, pts: int, keyframe: bool) -> Received:
    packet = av.Packet(data)
    packet.pts = packet.dts = pts
    packet.time_base = Fraction(1, CLOCK_RATES[codec])
    packet.is_keyframe = keyframe
    return Received(codec, packet, keyframe)


@dataclass
class _Picture:
    timestamp: int
    parts: list[bytes] = field(default_factory=list)
    broken: bool = False


class Vp8Frames:
    """VP8 pictures from RTP packets in order (RFC 7741). A picture is complete at its marker
    bit; one that lost a packet is dropped, and so is everything until the next keyframe."""

    codec = "vp8"

    def __init__(self) -> None:
        self._picture: _Picture | None = None
        self._timestamps = Timestamps()
        self.needs_keyframe = False  # a loss made the pictures unusable until a keyframe
        self.frames = 0
        self.dropped = 0  # pictures not passed on (damaged, or waiting for a keyframe)

    def push(self, item: Item) -> list[Received]:
        if isinstance(item, Gap):
            if self._picture is not None:
                self._picture.broken = True
            self.needs_keyframe = True
            return []
        out: list[Received] = []
        picture = self._picture
        if picture is not None and picture.timestamp != item.timestamp:
            # The marker bit of the last picture never came: its last packet was lost (a Gap
            # said so) or the sender set none; either way it ends here.
            out += self._finish(picture, complete=False)
            picture = None
        try:
            descriptor, data = VpxPayloadDescriptor.parse(item.payload)
        except ValueError:
            descriptor, data = None, b""
        if picture is None:
            starts = descriptor is not None and descriptor.partition_start == 1 \
                and descriptor.partition_id == 0
            picture = self._picture = _Picture(item.timestamp, broken=not starts)
        if descriptor is None:
            picture.broken = True
        elif data:
            picture.parts.append(data)
        if item.marker:
            out += self._finish(picture, complete=True)
        return out

    def flush(self) -> list[Received]:
        """The stream ended: a picture without its marker bit is not kept."""
        return self._finish(self._picture, complete=False) if self._picture else []

    def _finish(self, picture: _Picture, *, complete: bool) -> list[Received]:
        self._picture = None
        data = b"".join(picture.parts)
        keyframe = bool(data) and is_keyframe("vp8", data)
        if picture.broken or not data or not complete:
            self.needs_keyframe = True
            self.dropped += 1
            return []
        if self.needs_keyframe and not keyframe:
            self.dropped += 1
            return []
        self.needs_keyframe = False
        self.frames += 1
        return [_packet(self.codec, data, self._timestamps.map(picture.timestamp), keyframe)]


class OpusFrames:
    """Opus: each RTP packet is one frame (RFC 7587). A lost packet is a short silence."""

    codec = "opus"
    needs_keyframe = False

    def __init__(self) -> None:
        self._timestamps = Timestamps()
        self.frames = 0
        self.dropped = 0

    def push(self, item: Item) -> list[Received]:
        if isinstance(item, Gap):
            return []
        if not item.payload:
            self.dropped += 1
            return []
        self.frames += 1
        return [_packet(self.codec, item.payload, self._timestamps.map(item.timestamp), True)]

    def flush(self) -> list[Received]:
        return []


Frames = Vp8Frames | OpusFrames


def frames_for(codec: str) -> Frames:
    """The reassembler of a forwarded codec ("vp8" or "opus"); ValueError for others."""
    if codec == "vp8":
        return Vp8Frames()
    if codec == "opus":
        return OpusFrames()
    raise ValueError(f"cannot record forwarded {codec!r}: only VP8 and Opus")
