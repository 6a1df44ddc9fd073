"""What each participant's browser last reported for the hosts' status board
(docs/signaling.md): its connection quality (the `quality` event) and its device check
(`device:check`).

Kept in the memory of the worker that holds the call's sockets, not in the database: it
changes every few seconds and is worth nothing after the call, and every socket of one call
goes to one worker (docs/operations.md, "?call=<id>"). A participant whose socket goes has no
quality until their browser reports again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from portal.clock import clock

#: The browser measures every 2 s; a report sooner than this after the last is refused.
MIN_INTERVAL = 1.5


@dataclass(frozen=True)
class Sample:
    level: str  # "good", "fair" or "poor"
    rtt_ms: int
    loss: float  # % of packets lost
    kbps: int
    at: float  # the clock's monotonic seconds

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "rtt_ms": self.rtt_ms, "loss": self.loss,
                "kbps": self.kbps}


class Qualities:
    """The last sample of each participant, by appointment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[int, dict[int, Sample]] = {}

    def report(self, appointment_id: int, participant_id: int, level: str, rtt_ms: int,
               loss: float, kbps: int) -> bool | None:
        """Keep a participant's sample. None when it comes too soon after the last one (not
        kept); else whether its level differs from the last one's (the board shows it)."""
        now = clock().monotonic()
        with self._lock:
            found = self._last.setdefault(appointment_id, {})
            last = found.get(participant_id)
            if last is not None and now - last.at < MIN_INTERVAL:
                return None
            found[participant_id] = Sample(level, rtt_ms, round(loss, 1), kbps, now)
            return last is None or last.level != level

    def of(self, appointment_id: int) -> dict[int, dict[str, Any]]:
        """participant id -> the last sample, as the board shows it."""
        with self._lock:
            return {pid: s.to_json() for pid, s in self._last.get(appointment_id, {}).items()}

    def forget(self, appointment_id: int, participant_id: int) -> None:
        with self._lock:
            self._last.get(appointment_id, {}).pop(participant_id, None)


class DeviceChecks:
    """The device check's last outcome of each participant, by the socket that said it, and
    gone with that socket (the board shows the waiting room or the call over it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[int, dict[int, tuple[str, dict[str, str]]]] = {}

    def report(self, appointment_id: int, participant_id: int, sid: str,
               outcome: dict[str, str]) -> bool:
        """Keep it; whether it differs from what that participant said before."""
        with self._lock:
            found = self._last.setdefault(appointment_id, {})
            last = found.get(participant_id)
            found[participant_id] = (sid, dict(outcome))
            return last is None or last[1] != outcome

    def forget(self, appointment_id: int, participant_id: int, sid: str) -> bool:
        """Drop it if socket `sid` said it; whether there was one."""
        with self._lock:
            found = self._last.get(appointment_id, {})
            last = found.get(participant_id)
            if last is None or last[0] != sid:
                return False
            del found[participant_id]
            return True

    def of(self, appointment_id: int) -> dict[int, dict[str, str]]:
        with self._lock:
            return {pid: dict(o) for pid, (_sid, o) in self._last.get(appointment_id, {}).items()}


def _store(app: Flask | None, name: str, make: type[Any]) -> Any:
    """The app's store `name` (made at first use)."""
    extensions = (app or current_app).extensions
    found = extensions.get(name)
    if found is None:
        found = extensions.setdefault(name, make())
    return found


def qualities(app: Flask | None = None) -> Qualities:
    found = _store(app, "qualities", Qualities)
    assert isinstance(found, Qualities)
    return found


def device_checks(app: Flask | None = None) -> DeviceChecks:
    found = _store(app, "device_checks", DeviceChecks)
    assert isinstance(found, DeviceChecks)
    return found
