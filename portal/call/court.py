"""A hearing's procedure in the call (docs/signaling.md, "Court procedure"): start, pause,
call and dismiss, mute, remove, screening, private rooms, the bench's messages.

Each operation checks the sender's right (`procedure.may`) and the hearing's state, changes
the rows in the current transaction and writes its audit event (ids only); none commits or
sends. The socket handlers (portal.call.court_events) say the outcome and have the media
layer subscribe everyone anew.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from portal import presence
from portal.audit import services as audit
from portal.audit.services import Actor
from portal.errors import Conflict, Forbidden, NotFound
from portal.extensions import db
from portal.hearing import procedure
from portal.hearing.procedure import Action
from portal.models import (
    Appointment,
    ChatMessage,
    ConsultationRoom,
    HearingStage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Place,
    RoomKind,
    Screening,
    utcnow,
)
from portal.recording import manager as recording
from portal.recording import services as consent


def actor_of(p: Participant) -> Actor:
    return Actor("user", str(p.user_id)) if p.user_id is not None else Actor("guest", str(p.id))


def _record(action: str, me: Participant, object_id: int, **details: Any) -> None:
    audit.record(action, object_type="participant", object_id=object_id, actor=actor_of(me),
                 details={"appointment_id": me.appointment_id, **details})


def _allowed(me: Participant, sid: str, action: Action, target: Participant | None = None,
             ) -> Appointment:
    """The sender is in this hearing's call on this socket and has the right, or refused."""
    appointment = me.appointment
    if appointment.kind is not Kind.HEARING:
        raise Conflict(_("This is not a hearing."), code="not_a_hearing")
    if not procedure.may(me, action, target):
        raise Forbidden(_("Your role in this hearing does not allow that."))
    if not presence.in_call(me, sid):
        raise Conflict(_("Join the call first."), code="not_in_call")
    return appointment


def _participant(me: Participant, participant_id: int) -> Participant:
    found = db.session.get(Participant, participant_id)
    if found is None or found.appointment_id != me.appointment_id:
        raise NotFound(_("Nobody by that number is in this hearing."), code="unknown_peer")
    return found


def _target(me: Participant, sid: str, action: Action, participant_id: int,
            ) -> tuple[Appointment, Participant]:
    target = _participant(me, participant_id)
    return _allowed(me, sid, action, target), target


def _move(people: list[Participant], place: Place, room: ConsultationRoom | None = None,
          ) -> list[int]:
    for p in people:
        p.place = place
        p.consultation_room_id = room.id if room is not None else None
    return [p.id for p in people]


def _with_followers(p: Participant) -> list[Participant]:
    return [p, *procedure.followers(p)]


# --- the hearing's course --------------------------------------------------------------------

def start(me: Participant, sid: str) -> list[int]:
    """The hearing starts: private rooms close (their members come back first), then everyone
    but witnesses, experts and observers is in the hearing. Returns who moved in."""
    appointment = _allowed(me, sid, Action.START)
    if appointment.hearing_stage is not HearingStage.OPENING:
        raise Conflict(_("The hearing has started already."), code="conflict")
    appointment.hearing_stage = HearingStage.IN_SESSION
    _close_rooms(me, appointment)
    moved = _move([p for p in appointment.participants
                   if p.place is Place.WAITING and procedure.taken_in_at_start(p)],
                  Place.HEARING)
    _record("hearing.started", me, me.id, moved=moved)
    return moved


def pause(me: Participant, sid: str) -> None:
    appointment = _allowed(me, sid, Action.PAUSE)
    if appointment.hearing_stage is not HearingStage.IN_SESSION:
        raise Conflict(_("The hearing is not in session."), code="conflict")
    appointment.hearing_stage = HearingStage.PAUSED
    _record("hearing.paused", me, me.id)


def resume(me: Participant, sid: str) -> None:
    appointment = _allowed(me, sid, Action.RESUME)
    if appointment.hearing_stage is not HearingStage.PAUSED:
        raise Conflict(_("The hearing is not paused."), code="conflict")
    appointment.hearing_stage = HearingStage.IN_SESSION
    _close_rooms(me, appointment)
    _record("hearing.resumed", me, me.id)


def call(me: Participant, sid: str, participant_id: int) -> list[int]:
    """A witness (or anyone waiting) into the hearing, with their interpreter."""
    appointment, target = _target(me, sid, Action.CALL, participant_id)
    if appointment.hearing_stage is HearingStage.OPENING:
        raise Conflict(_("Start the hearing first."), code="not_started")
    if target.place is not Place.WAITING:
        raise Conflict(_("That participant is not waiting."), code="conflict")
    moved = _move(_with_followers(target), Place.HEARING)
    _record("hearing.called", me, target.id, moved=moved)
    return moved


def dismiss(me: Participant, sid: str, participant_id: int) -> list[int]:
    """Back to the waiting room with their interpreter; their link still works."""
    _appointment, target = _target(me, sid, Action.DISMISS, participant_id)
    if target.place is not Place.HEARING:
        raise Conflict(_("That participant is not in the hearing."), code="conflict")
    moved = _move(_with_followers(target), Place.WAITING)
    _record("hearing.dismissed", me, target.id, moved=moved)
    return moved


def mute(me: Participant, sid: str, participant_id: int | None, lock: bool,
         ) -> list[Participant]:
    """One participant, or everyone a host may mute; `lock`: they cannot unmute themselves
    (false lifts a lock, and they stay muted). Returns who was muted."""
    if participant_id is None:  # everyone a host may mute
        appointment = _allowed(me, sid, Action.MUTE)
        muted = [p for p in appointment.participants if procedure.may(me, Action.MUTE, p)]
    else:
        muted = [_target(me, sid, Action.MUTE, participant_id)[1]]
    for p in muted:
        p.audio_on, p.mute_locked = False, lock
    _record("hearing.muted", me, participant_id or me.id, everyone=participant_id is None,
            lock=lock)
    return muted


def remove(me: Participant, sid: str, participant_id: int) -> str | None:
    """Out of the hearing, and not let in again on this link. Returns their socket."""
    appointment, target = _target(me, sid, Action.REMOVE, participant_id)
    old_sid, was_in_call = target.presence_sid, presence.in_call(target)
    room = target.consultation_room_id
    presence.leave(target)
    target.lobby_state = LobbyState.DENIED
    _move([target], Place.WAITING)
    _close_if_empty(me, room)
    if was_in_call:
        change = consent.participant_left(target, actor_of(me))
        if change is not None:
            recording.get().apply(change)
    _record("hearing.removed", me, target.id)
    return old_sid


def screen(me: Participant, sid: str, protected_id: int, hidden_from_id: int,
           on: bool) -> None:
    """Hide (or show again) the protected participant's video from another."""
    _allowed(me, sid, Action.SCREEN)
    protected = _participant(me, protected_id)
    hidden_from = _participant(me, hidden_from_id)
    why = procedure.screening_refused(protected, hidden_from)
    if why is not None:
        raise Conflict(_("That screening is not possible: nobody is screened from their "
                         "interpreter, and the court always sees everyone."), code=why)
    found = db.session.get(Screening, (protected.id, hidden_from.id))
    if on and found is None:
        db.session.add(Screening(protected_id=protected.id, hidden_from_id=hidden_from.id))
    elif not on and found is not None:
        db.session.delete(found)
    db.session.flush()
    db.session.expire(protected, ["screened_from"])
    _record("hearing.screened", me, protected.id, hidden_from=hidden_from.id, on=on)


# --- private rooms ---------------------------------------------------------------------------

def open_room(me: Participant, sid: str, kind: RoomKind, member_ids: list[int],
              ) -> ConsultationRoom:
    """Counsel with the parties they represent (and other counsel), or the bench (judge and
    panel; a clerk may open it for them). Not while the hearing is in session."""
    action = Action.OPEN_COUNSEL if kind is RoomKind.COUNSEL else Action.OPEN_BENCH
    appointment = _allowed(me, sid, action)
    members = [_participant(me, pid) for pid in dict.fromkeys(member_ids) if pid != me.id]
    for member in members:
        if not procedure.may(me, action, member):
            raise Forbidden(_("You cannot take that participant into this room."))
    if kind is RoomKind.COUNSEL or me.role in procedure.BENCH:
        members.insert(0, me)
    _free(appointment, members)
    room = ConsultationRoom(appointment_id=appointment.id, kind=kind, opened_by_id=me.id)
    db.session.add(room)
    db.session.flush()
    moved = _move([q for m in members for q in _with_followers(m)], Place.CONSULTATION, room)
    _record("consultation.opened", me, me.id, room=room.id, kind=kind.value, members=moved)
    return room


def _free(appointment: Appointment, people: list[Participant]) -> None:
    """They may go into a private room now: in the call, not in one already, not in session."""
    if appointment.hearing_stage is HearingStage.IN_SESSION:
        raise Conflict(_("Pause the hearing first: private rooms are for before it and its "
                         "breaks."), code="in_session")
    for p in people:
        if not presence.in_call(p):
            raise Conflict(_("That participant is not in the call."), code="not_in_call")
        if p.place is Place.CONSULTATION:
            raise Conflict(_("That participant is in a private room already."), code="busy")


def _my_room(me: Participant) -> ConsultationRoom:
    room = (db.session.get(ConsultationRoom, me.consultation_room_id)
            if me.place is Place.CONSULTATION and me.consultation_room_id else None)
    if room is None or room.closed_at is not None:
        raise Conflict(_("You are not in a private room."), code="not_in_room")
    return room


def invite(me: Participant, sid: str, participant_id: int) -> list[int]:
    """Into the private room the sender is in (counsel: their parties and other counsel; the
    bench: the judge and panel)."""
    appointment, target = _target(me, sid, Action.INVITE, participant_id)
    room = _my_room(me)
    if (room.kind is RoomKind.COUNSEL) != (me.role is ParticipantRole.COUNSEL):
        raise Forbidden(_("Your role in this hearing does not allow that."))
    _free(appointment, [target])
    moved = _move(_with_followers(target), Place.CONSULTATION, room)
    _record("consultation.invited", me, target.id, room=room.id, moved=moved)
    return moved


def leave_room(me: Participant, sid: str) -> None:
    appointment = _allowed(me, sid, Action.LEAVE_ROOM)
    room = _my_room(me)
    _move(_with_followers(me), procedure.place_after_room(appointment, me))
    _record("consultation.left", me, me.id, room=room.id)
    _close_if_empty(me, room.id)


def recall(me: Participant, sid: str) -> list[int]:
    """Every private room closes; everyone in one comes back. Returns the rooms closed."""
    appointment = _allowed(me, sid, Action.RECALL)
    closed = _close_rooms(me, appointment)
    _record("consultation.recalled", me, me.id, rooms=closed)
    return closed


def _open_rooms(appointment: Appointment) -> list[ConsultationRoom]:
    return list(db.session.scalars(select(ConsultationRoom).where(
        ConsultationRoom.appointment_id == appointment.id,
        ConsultationRoom.closed_at.is_(None)).order_by(ConsultationRoom.id)))


def _close_rooms(me: Participant, appointment: Appointment) -> list[int]:
    rooms = _open_rooms(appointment)
    for room in rooms:
        for p in appointment.participants:
            if p.consultation_room_id == room.id:
                _move([p], procedure.place_after_room(appointment, p))
        _closed(me, room)
    return [room.id for room in rooms]


def _close_if_empty(me: Participant, room_id: int | None) -> None:
    room = db.session.get(ConsultationRoom, room_id) if room_id else None
    if room is None or room.closed_at is not None:
        return
    if not any(p.consultation_room_id == room.id for p in me.appointment.participants):
        _closed(me, room)


def _closed(me: Participant, room: ConsultationRoom) -> None:
    room.closed_at = utcnow()
    _record("consultation.closed", me, me.id, room=room.id)


# --- the bench's messages --------------------------------------------------------------------

def bench_message(me: Participant, sid: str, body: str) -> ChatMessage:
    """A message between the judge and the clerk (the hosts): nobody else sees it."""
    _allowed(me, sid, Action.BENCH_MESSAGE)
    body = body.strip()
    if not body:
        raise Conflict(_("The message is empty."), code="bad_request")
    message = ChatMessage(appointment_id=me.appointment_id, participant_id=me.id, body=body,
                          audience="hosts")
    db.session.add(message)
    db.session.flush()
    return message


# --- what each may know ----------------------------------------------------------------------

def _state_of(p: Participant, check: dict[str, str] | None) -> str:
    """A participant's line on the status board; `check`: their device check's outcome while
    their page is on it."""
    if p.lobby_state is LobbyState.DENIED:
        return "removed"
    if presence.in_call(p):
        return "in_call"
    if p.presence_sid is None and p.away_since is not None and p.joined_call_at is not None:
        return "disconnected"
    if p.lobby_state is LobbyState.WAITING:
        return "lobby"
    if check is not None:
        return ("device_check_failed" if {"warn", "fail"} & set(check.values())
                else "device_check")
    return "not_joined"


def board(appointment: Appointment, quality: dict[int, dict[str, Any]] | None = None,
          checks: dict[int, dict[str, str]] | None = None) -> dict[str, Any]:
    """`hearing:state` for a host: the stage, each participant's role, place and connection
    (with the quality their browser last reported, while connected, and their device check's
    outcome while they are on it), and which private rooms are in use (not what is said in
    them). Observers as a count."""
    rooms = {room.id: room for room in _open_rooms(appointment)}
    people = [p for p in appointment.participants if p.role is not ParticipantRole.OBSERVER]
    quality, checks = quality or {}, checks or {}
    return {
        "stage": appointment.hearing_stage.value,
        "participants": [{
            "id": p.id, "name": p.display_name, "role": p.role.value, "place": p.place.value,
            "state": _state_of(p, checks.get(p.id)), "room": p.consultation_room_id,
            "device_check": checks.get(p.id),
            "interprets_for": p.interprets_for_id, "mute_locked": p.mute_locked,
            "screened_from": [q.id for q in p.screened_from],
            "quality": quality.get(p.id) if p.presence_sid is not None else None}
            for p in people],
        "rooms": [{"id": room.id, "kind": room.kind.value} for room in rooms.values()],
        "observers": sum(1 for p in appointment.participants
                         if p.role is ParticipantRole.OBSERVER and presence.in_call(p)),
    }


def own_state(p: Participant) -> dict[str, Any]:
    """`hearing:state` for a guest (and the panel): the stage and their own place; who opened
    their private room; for counsel the parties they represent (whom they may take into one),
    for an interpreter whom they interpret for (they move together);
    how many observers follow (a count only)."""
    room = (db.session.get(ConsultationRoom, p.consultation_room_id)
            if p.place is Place.CONSULTATION and p.consultation_room_id else None)
    opener = db.session.get(Participant, room.opened_by_id) if room is not None else None
    appointment = p.appointment
    return {"stage": appointment.hearing_stage.value, "place": p.place.value,
            "room": {"id": room.id, "kind": room.kind.value, "private": True,
                     "recorded": False,
                     "opened_by": {"id": opener.id, "name": opener.display_name}
                     if opener is not None else None} if room is not None else None,
            "mute_locked": p.mute_locked,
            "represents": [{"id": q.id, "name": q.display_name} for q in p.represents],
            "interprets_for": {"id": q.id, "name": q.display_name, "role": q.role.value}
            if (q := p.interprets_for) is not None else None,
            "observers": sum(1 for q in appointment.participants
                             if q.role is ParticipantRole.OBSERVER and presence.in_call(q))}
