"""The call's operations: lobby, joining, leaving, ending, chat. Each checks who asks, changes
the state in the current transaction and writes its audit event; none commits or sends.
The socket handlers (portal.call.events) call them and say the outcome to the sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext as _

from portal import presence
from portal.appointments import services as appointments
from portal.audit import services as audit
from portal.audit.services import Actor
from portal.errors import Conflict, Forbidden, NotFound
from portal.extensions import db
from portal.hearing import procedure
from portal.hearing.procedure import Action
from portal.models import (
    STAFF_ROLES,
    ChatMessage,
    Kind,
    LobbyState,
    Participant,
    RecordingPolicy,
    utcnow,
)
from portal.recording import manager as recording
from portal.recording import services as consent
from portal.recording.wording import wording


def actor_of(p: Participant) -> Actor:
    if p.user_id is not None:  # staff: the host, a judge, clerk or panel member
        return Actor("user", str(p.user_id))
    return Actor("guest", str(p.id))


def is_host(p: Participant) -> bool:
    """A host's rights: the consult's host, a hearing's judge or clerk (not the panel)."""
    return p.is_host


def is_staff(p: Participant) -> bool:
    """Joins with a staff account, never through the waiting room."""
    return p.role in STAFF_ROLES


def _recording_changed(change: consent.Change | None) -> None:
    if change is not None:
        recording.get().apply(change)


def _take_presence(me: Participant, sid: str) -> str | None:
    """This socket now speaks for the participant; returns the socket it replaced."""
    old = me.presence_sid
    me.presence_sid = sid
    me.away_since = None
    return old if old and old != sid else None


def _guest_only(me: Participant) -> None:
    if is_staff(me):
        raise Forbidden(_("Only a guest can do this."))


def _host_only(me: Participant) -> None:
    if not is_host(me):
        raise Forbidden(_("Only the host can do this."))


def require_in_call(me: Participant, sid: str) -> None:
    if not presence.may_join(me):
        raise Forbidden(_("You have not been let into the call."))
    if not presence.in_call(me, sid):
        raise Conflict(_("Join the call first."), code="not_in_call")


# --- lobby -----------------------------------------------------------------------------------

def wait(me: Participant, sid: str) -> str | None:
    """A guest enters the waiting room (or, admitted already, stays admitted). Returns the
    socket this one replaced. A denied guest stays denied and nothing changes."""
    _guest_only(me)
    if me.lobby_state is LobbyState.DENIED:
        return None
    old = _take_presence(me, sid)
    if me.lobby_state is not LobbyState.ADMITTED:
        if me.lobby_state is not LobbyState.WAITING:
            me.waiting_since = utcnow()
        me.lobby_state = LobbyState.WAITING
        audit.record("lobby.waiting", object_type="participant", object_id=me.id,
                     actor=actor_of(me), details={"appointment_id": me.appointment_id})
    return old


def stop_waiting(me: Participant, sid: str) -> bool:
    """The guest leaves the waiting room; False if it was not waiting there on this socket."""
    _guest_only(me)
    if me.lobby_state is LobbyState.WAITING and me.presence_sid == sid:
        presence.leave(me)
        return True
    return False


def decide(host: Participant, participant_id: int, state: LobbyState) -> tuple[Participant,
                                                                                 str | None]:
    """The host admits or denies a waiting guest; returns the guest and its socket then."""
    _host_only(host)
    guest = db.session.get(Participant, participant_id)
    if (guest is None or guest.appointment_id != host.appointment_id or is_staff(guest)
            or guest.lobby_state is not LobbyState.WAITING):
        raise NotFound(_("Nobody by that number is waiting."), code="unknown_peer")
    guest.lobby_state = state
    sid = guest.presence_sid
    if state is LobbyState.DENIED:
        guest.presence_sid = None
    audit.record("lobby.admitted" if state is LobbyState.ADMITTED else "lobby.denied",
                 object_type="participant", object_id=guest.id, actor=actor_of(host),
                 details={"appointment_id": guest.appointment_id})
    return guest, sid


# --- the call --------------------------------------------------------------------------------

@dataclass
class Joined:
    replaced: str | None  # the socket this one replaced
    others: list[Participant]
    chat: list[ChatMessage]


def join(me: Participant, sid: str, notice: str | None, asker: consent.Asker,
         declaration: bool = False) -> Joined:
    """Into the call (the first one in makes the appointment live)."""
    if not presence.may_join(me):
        raise Forbidden(_("You have not been let into the call."))
    _acknowledge_notice(me, notice, asker)
    _declare(me, declaration)
    old = _take_presence(me, sid)
    if me.joined_call_at is None:
        me.joined_call_at = utcnow()
        audit.record("call.joined", object_type="participant", object_id=me.id,
                     actor=actor_of(me), details={"appointment_id": me.appointment_id})
    appointments.go_live(me.appointment, actor_of(me))
    _recording_changed(consent.participant_joined(me, actor_of(me)))
    others = [p for p in presence.members(me.appointment) if p.id != me.id]
    return Joined(old, others, presence.chat_history(me.appointment))


def _declare(me: Participant, declaration: bool) -> None:
    """A hearing: nobody enters its call without the declaration (no recording, no photos),
    kept once with its time and an audit event."""
    if me.appointment.kind is not Kind.HEARING or me.declared_at is not None:
        return
    if not declaration:
        raise Forbidden(_("Confirm that you will not record or photograph this hearing, "
                          "then join again."), code="declaration_required")
    me.declared_at = utcnow()
    audit.record("declaration.confirmed", object_type="participant", object_id=me.id,
                 actor=actor_of(me), details={"appointment_id": me.appointment_id})


def _acknowledge_notice(me: Participant, version: str | None, asker: consent.Asker) -> None:
    """Policy notice: nobody enters the call without having acknowledged the notice."""
    if (me.appointment.recording_policy is not RecordingPolicy.NOTICE
            or consent.has_acknowledged(me)):
        return
    shown = wording("notice")
    if version != shown.version:
        raise Forbidden(_("This hearing is recorded. Read and acknowledge the notice to join."),
                        code="notice_required")
    consent.acknowledge_notice(me, shown, asker)


def leave(me: Participant, sid: str) -> None:
    """Out of the call by choice (a guest must be admitted again)."""
    require_in_call(me, sid)
    presence.leave(me)
    _recording_changed(consent.participant_left(me, actor_of(me)))
    audit.record("call.left", object_type="participant", object_id=me.id,
                 actor=actor_of(me), details={"appointment_id": me.appointment_id})


def end(host: Participant) -> None:
    """The host ends the call for everyone: the recording stops, the appointment is over."""
    _host_only(host)
    appointment = host.appointment
    running = consent.active(appointment.id)
    if running is not None:
        _recording_changed(consent.stop(running, "call_ended", actor_of(host)))
    appointments.end(appointment, actor_of(host))


def went_away(me: Participant, sid: str) -> str | None:
    """The participant's socket closed. Returns what happened: "left_lobby" (closing the tab
    leaves the waiting room), "away" (the grace period runs from now), or None (an extra tab,
    or a socket another one replaced)."""
    if me.presence_sid != sid:
        return None
    me.presence_sid = None
    if me.lobby_state is LobbyState.WAITING:
        me.lobby_state = LobbyState.LEFT
        return "left_lobby"
    me.away_since = utcnow()
    if me.joined_call_at is not None:  # a recorded connection that drops stops the recording
        _recording_changed(consent.participant_left(me, audit.SYSTEM))
    return "away"


def expire(me: Participant) -> bool:
    """The grace period is over: out of the call, and a guest back to the lobby next time.
    Returns whether the participant was in the call."""
    was_in_call = me.joined_call_at is not None
    presence.leave(me)
    _recording_changed(consent.participant_left(me, audit.SYSTEM))
    audit.record("call.left", object_type="participant", object_id=me.id, actor=audit.SYSTEM,
                 details={"appointment_id": me.appointment_id, "reason": "connection lost"})
    return was_in_call


def expire_if_over(me: Participant) -> bool:
    """At connect: expire a participant whose grace period ran out while no worker watched
    (the one that would have timed it out is gone). Returns whether it was in the call."""
    return presence.grace_over(me, utcnow()) and expire(me)


def expire_if_still_away(me: Participant, away_since: datetime) -> bool:
    """The grace timer ran out: expire unless the participant came back (or left again
    later). Returns whether it was in the call."""
    return me.presence_sid is None and me.away_since == away_since and expire(me)


# --- in the call -----------------------------------------------------------------------------

def relay_target(me: Participant, sid: str, to: int) -> Participant:
    """Whom a signaling message may go to: another member of the same call."""
    require_in_call(me, sid)
    target = db.session.get(Participant, to)
    if (target is None or target.id == me.id or target.appointment_id != me.appointment_id
            or not presence.in_call(target)):
        raise NotFound(_("That participant is not in this call."), code="unknown_peer")
    return target


def set_media(me: Participant, sid: str, audio: bool, video: bool) -> None:
    require_in_call(me, sid)
    if audio and not me.audio_on and me.mute_locked:
        raise Forbidden(_("The host has muted you; you cannot unmute yourself."),
                        code="mute_locked")
    me.audio_on, me.video_on = audio, video


def chat(me: Participant, sid: str, text: str) -> ChatMessage:
    """A chat line, stored with the appointment (an observer has no chat)."""
    require_in_call(me, sid)
    if not procedure.may(me, Action.CHAT):
        raise Forbidden(_("Observers cannot use the chat."))
    text = text.strip()
    if not text:
        raise Conflict(_("The message is empty."), code="bad_request")
    message = ChatMessage(appointment_id=me.appointment_id, participant_id=me.id, body=text)
    db.session.add(message)
    db.session.flush()
    return message
