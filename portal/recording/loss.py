"""Media a recording did not get, counted per track and time window for the signed manifest.

A recording is evidence, so what it misses must be known (issue 17): RTP sequence numbers that
never arrived (`lost`), ones that came after a later packet (`late`: reordered or repaired by a
retransmission, not lost) or twice (`duplicate`), packets the muxer refused (`refused`), and
datagrams the kernel dropped because the socket's receive buffer was full (`socket_drops`, from
/proc/net/udp; see udp.py), and the bytes a recorder running behind had still not read when it
stopped (`unread_at_stop`). Nothing here touches the network: the recorders feed it.

Counts are kept per medium ("audio", "video"; "socket" for the connection's drops, which
audio and video share) and per window of `window` seconds since the track started. A missing
sequence number is counted lost in the window where its gap appeared, once LATE_LIMIT has
passed without it (a retransmission usually repairs a gap within a round trip or two).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WINDOW = 5.0  # s per window in the manifest
LATE_LIMIT = 1.0  # s a missing packet may still arrive before it counts as lost
MAX_TRACKED_GAP = 2000  # a bigger jump is counted lost at once, not remembered one by one
COUNTERS = ("lost", "late", "duplicate", "refused", "socket_drops", "unread_at_stop")
#: What makes a track (and a recording) not complete: media that is not in the file.
#: (`unread_at_stop` is bytes: what a recorder running behind had not read when it stopped.)
LOSSES = ("lost", "refused", "socket_drops", "unread_at_stop")


@dataclass
class _Sequence:
    """One RTP stream (SSRC): the highest extended sequence number and the open gaps."""

    highest: int
    missing: dict[int, tuple[float, int]] = field(default_factory=dict)  # seq -> (when, window)


class LossLedger:
    """Counts of one track. Not thread-safe: feed it from the recorder's loop."""

    def __init__(self, *, window: float = WINDOW, late_limit: float = LATE_LIMIT,
                 clock: Callable[[], float] = time.time) -> None:
        self._window = window
        self._late_limit = late_limit
        self._clock = clock
        self.started = clock()
        self._streams: dict[tuple[str, int], _Sequence] = {}
        self._windows: dict[int, dict[str, dict[str, int]]] = {}  # index -> medium -> counter
        self._reported = 0  # losses already announced by `news()`

    # -- input ---------------------------------------------------------------------------------

    def rtp(self, medium: str, ssrc: int, sequence: int) -> None:
        """A media packet (or the original of a retransmitted one) with this 16-bit number."""
        now = self._clock()
        stream = self._streams.get((medium, ssrc))
        if stream is None:
            self._streams[(medium, ssrc)] = _Sequence(sequence)
            return
        delta = (sequence - stream.highest) & 0xFFFF
        if delta == 0:
            self.add(medium, "duplicate", 1, now)
        elif delta < 0x8000:  # ahead: anything skipped is missing for now
            ext = stream.highest + delta
            gap = delta - 1
            if gap > MAX_TRACKED_GAP:
                self.add(medium, "lost", gap, now)
            else:
                index = self._index(now)
                for missing in range(stream.highest + 1, ext):
                    stream.missing[missing] = (now, index)
            stream.highest = ext
        else:  # behind: a late one if its gap is open, else a repeat
            ext = stream.highest - (0x10000 - delta)
            if stream.missing.pop(ext, None) is not None:
                self.add(medium, "late", 1, now)
            else:
                self.add(medium, "duplicate", 1, now)
        self.expire(now)

    def add(self, medium: str, counter: str, count: int = 1, at: float | None = None) -> None:
        """Count `count` of `counter` for `medium` in the window of `at` (default: now)."""
        if count <= 0:
            return
        self._count(self._index(self._clock() if at is None else at), medium, counter, count)

    def expire(self, now: float | None = None) -> None:
        """Give up the gaps older than the late limit: lost, in the window they opened."""
        now = self._clock() if now is None else now
        for (medium, _ssrc), stream in self._streams.items():
            if not stream.missing:
                continue
            gone = [seq for seq, (when, _) in stream.missing.items()
                    if now - when >= self._late_limit]
            for seq in gone:
                _, index = stream.missing.pop(seq)
                self._count(index, medium, "lost", 1)

    def close(self) -> None:
        """The track ended: every gap still open is lost (its packet never came)."""
        self.expire(float("inf"))

    def restart(self) -> None:
        """Recording paused: close the open gaps and forget the sequences, so that the jump
        in numbers across the pause is not taken for loss."""
        self.close()
        self._streams.clear()

    # -- output --------------------------------------------------------------------------------

    def losses(self) -> int:
        """Packets lost, refused or dropped so far (gaps still open are not yet counted)."""
        return sum(self.total().get(m, {}).get(c, 0) for m in self.total() for c in LOSSES)

    def news(self) -> int:
        """Losses counted since the last call: what to tell the host while it records."""
        now = self.losses()
        new, self._reported = now - self._reported, now
        return new

    def total(self) -> dict[str, dict[str, int]]:
        """Counters summed over every window, by medium."""
        found: dict[str, dict[str, int]] = {}
        for media in self._windows.values():
            for medium, counters in media.items():
                into = found.setdefault(medium, {})
                for counter, count in counters.items():
                    into[counter] = into.get(counter, 0) + count
        return found

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: {window_seconds, complete, total, windows: [{from, to, ...}]}.
        Only windows that counted something are listed."""
        windows = []
        for index in sorted(self._windows):
            start = self.started + index * self._window
            windows.append({"from": _iso(start), "to": _iso(start + self._window),
                            **_sorted(self._windows[index])})
        total = self.total()
        return {"window_seconds": self._window, "complete": lossless(total),
                "total": _sorted(total), "windows": windows}

    # -- inside --------------------------------------------------------------------------------

    def _index(self, at: float) -> int:
        return max(0, int((at - self.started) // self._window))

    def _count(self, index: int, medium: str, counter: str, count: int) -> None:
        counters = self._windows.setdefault(index, {}).setdefault(medium, {})
        counters[counter] = counters.get(counter, 0) + count


def lossless(total: dict[str, Any]) -> bool:
    """True if these counters (by medium) hold no loss."""
    return not any(isinstance(counters, dict) and counters.get(c, 0)
                   for counters in total.values() for c in LOSSES)


def describe(loss: dict[str, Any] | None) -> str:
    """One line for people: "complete", or what was lost and when (the windows' times)."""
    if loss is None:
        return "not accounted (recorded before loss accounting)"
    if loss.get("accounted") is False:
        return "not accounted (the recorder stopped before it could report)"
    if loss.get("complete"):
        return "complete: nothing lost"
    parts = []
    for medium, counters in sorted(loss.get("total", {}).items()):
        said = [f"{counters[c]} {c.replace('_', ' ')}" for c in LOSSES if counters.get(c)]
        if said:
            parts.append(f"{medium}: " + ", ".join(said))
    lossy = [w for w in loss.get("windows", []) if not lossless(
        {k: v for k, v in w.items() if k not in ("from", "to")})]
    when = ""
    if lossy:
        when = f" between {lossy[0]['from']} and {lossy[-1]['to']} ({len(lossy)} windows)"
    return "LOSS: " + "; ".join(parts) + when


def _sorted(media: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {m: {c: media[m][c] for c in COUNTERS if media[m].get(c)} for m in sorted(media)
            if any(media[m].values())}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
