"""Who is in each call now, and whether it goes through Janus, in this worker's memory: a
relayed `signal` or hearing candidate needs no query.

The database stays the truth. A call's members (participant id -> the socket that speaks for
it) are read from it once, on a connection that only reads, and kept until a change to one of
its participants' presence commits, here or on another worker: `watch` hears every such change
(whichever code makes it) and the socket layer tells every worker to forget that call. A read
that raced such a change is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import object_session

from portal.database import read_only
from portal.hearing.policy import needs_janus
from portal.models import Appointment, Participant
from portal.session import AFTER_COMMIT

Members = dict[int, str]


class Roster:
    def __init__(self, load: Callable[[int], tuple[Members, bool]] | None = None) -> None:
        self._lock = threading.Lock()
        #: appointment id -> (its members, whether it goes through Janus)
        self._calls: dict[int, tuple[Members, bool]] = {}
        #: How often each call was forgotten: a read that began before a change is not kept.
        self._changes: dict[int, int] = {}
        self._load = load or call_in_database

    def members(self, appointment_id: int) -> Members:
        return self._cached(appointment_id)[0]

    def janus(self, appointment_id: int) -> bool:
        """Whether the call goes through Janus (portal.hearing.policy.uses_janus)."""
        return self._cached(appointment_id)[1]

    def _cached(self, appointment_id: int) -> tuple[Members, bool]:
        # Both at once: a call's first messages need both, and 250 calls starting together
        # queued on one worker for their reads.
        with self._lock:
            found = self._calls.get(appointment_id)
            if found is not None:
                return found
            changes = self._changes.get(appointment_id, 0)
        found = self._load(appointment_id)
        with self._lock:
            if self._changes.get(appointment_id, 0) == changes:
                self._calls[appointment_id] = found
        return found

    def forget(self, appointment_id: int) -> None:
        with self._lock:
            self._calls.pop(appointment_id, None)
            self._changes[appointment_id] = self._changes.get(appointment_id, 0) + 1

    def target(self, appointment_id: int, me: int, sid: str, to: int) -> str | None:
        """The socket of `to` when `me` speaks on `sid` in the call and `to` is another member;
        None when the roster does not say so (the database then decides, and says why not)."""
        found = self.members(appointment_id)
        if to == me or found.get(me) != sid:
            return None
        return found.get(to)


def call_in_database(appointment_id: int) -> tuple[Members, bool]:
    """Its members now, and whether it goes through Janus, in one read."""
    people = select(func.count()).select_from(Participant).where(
        Participant.appointment_id == appointment_id).scalar_subquery()
    with read_only() as connection:
        rows = connection.execute(
            select(Participant.id, Participant.presence_sid).where(
                Participant.appointment_id == appointment_id,
                Participant.joined_call_at.is_not(None),
                Participant.presence_sid.is_not(None)))
        members = {pid: sid for pid, sid in rows if sid is not None}
        found = connection.execute(select(Appointment.kind, people).where(
            Appointment.id == appointment_id)).first()
    return members, found is not None and needs_janus(found[0], found[1] or 0)


class _Changed:
    """After the commit: the calls whose presence changed in it."""

    def __init__(self) -> None:
        self.appointments: set[int] = set()

    def __call__(self) -> None:
        for tell in _listeners:
            tell(self.appointments)


_listeners: list[Callable[[set[int]], None]] = []


def _changed(target: Participant, value: Any, old: Any, _initiator: Any) -> None:
    # An attribute not loaded yet (old is NO_VALUE) compares unequal: counted as a change.
    if value != old:
        _note(target, target.appointment_id)


def _call_changed(target: Appointment, value: Any, old: Any = None, _initiator: Any = None,
                  ) -> None:
    """Its kind, or who belongs to it (a guest added): whether it uses Janus may change."""
    if value is not old:
        _note(target, target.id)


def _note(target: Participant | Appointment, appointment_id: int | None) -> None:
    session = object_session(target)
    if session is None or appointment_id is None:
        return
    callbacks = session.info.setdefault(AFTER_COMMIT, [])
    mine = next((c for c in callbacks if isinstance(c, _Changed)), None)
    if mine is None:
        mine = _Changed()
        callbacks.append(mine)
    mine.appointments.add(appointment_id)


def watch(tell: Callable[[set[int]], None]) -> None:
    """Call tell(appointment ids) after each commit that changed who is in which call, by
    whichever code changed it."""
    if tell not in _listeners:
        _listeners.append(tell)
    for attribute in (Participant.presence_sid, Participant.joined_call_at):
        if not event.contains(attribute, "set", _changed):
            event.listen(attribute, "set", _changed)
    for what, kind in ((Appointment.kind, "set"), (Appointment.participants, "append"),
                       (Appointment.participants, "remove")):
        if not event.contains(what, kind, _call_changed):
            event.listen(what, kind, _call_changed)
