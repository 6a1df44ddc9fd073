"""Socket.IO signaling: the handlers for every event in docs/signaling.md.

Each one finds who asks (the guard did), calls one operation of portal.call.services, and
says the outcome. The guard commits; what is said goes out after the commit.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from flask_babel import gettext as _

from portal import presence
from portal.call import court_events, guard, rooms, schemas
from portal.call import hearing_events as hearing
from portal.call import services as call
from portal.call.guard import Identity, event, send
from portal.call.ice import ice_servers, stun_servers
from portal.call.notify import send_lobby
from portal.call.quality import device_checks, qualities
from portal.extensions import db
from portal.models import (
    Appointment,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    utcnow,
)
from portal.recording import services as consent
from portal.recording.wording import wording

PROTOCOL = 1


def me_of(identity: Identity) -> Participant:
    p = db.session.get(Participant, identity.participant_id)
    assert p is not None  # participants are never deleted while their invite works
    return p


def asker(identity: Identity) -> consent.Asker:
    """Where a decision came from, for the consent record."""
    return consent.Asker(call.actor_of(me_of(identity)), request.remote_addr,
                         request.headers.get("User-Agent"))


def _lobby_changed(appointment_id: int) -> None:
    def tell() -> None:
        appointment = db.session.get(Appointment, appointment_id)
        if appointment is not None:
            send_lobby(appointment)

    guard.later(tell)


def _drop_replaced(old_sid: str | None) -> None:
    if old_sid is not None:
        guard.later(lambda: guard.refuse(old_sid, "connect", guard.Refused(
            "replaced", _("You joined from another tab or device; this one is closed."),
            close=True)))


def _left(appointment_id: int, participant_id: int) -> None:
    send("call:peer-left", {"id": participant_id}, to=rooms.call_room(appointment_id))


def _ice(me: Participant) -> dict[str, Any]:
    """ICE servers with fresh TURN credentials, for the host and an admitted guest only: a
    guest in the waiting room, or denied, gets none (TURN relays for whoever holds them)."""
    if not presence.may_join(me):
        return {"ice_servers": None, "ice_expires_at": None}
    servers, expires = ice_servers(current_app.config, f"p{me.id}")
    return {"ice_servers": servers, "ice_expires_at": expires}


def _lobby_state(me: Participant) -> dict[str, Any]:
    """`lobby:state` for a guest: with the ICE servers once admitted."""
    if me.lobby_state is LobbyState.ADMITTED:
        return {"state": me.lobby_state.value, **_ice(me)}
    return {"state": me.lobby_state.value}


# --- connecting and going away ---------------------------------------------------------------

def _recording_welcome(appointment: Appointment) -> dict[str, Any]:
    """The wording to show (in this socket's language) and the recording's state now."""
    policy = appointment.recording_policy
    shown = (None if policy is RecordingPolicy.OFF
             else wording("notice" if policy is RecordingPolicy.NOTICE else "consent"))
    return {"wording": shown.to_json() if shown else None,
            "state": consent.state_json(consent.active(appointment.id))}


def welcome(sid: str, identity: Identity) -> None:
    me = me_of(identity)
    if call.expire_if_over(me):
        _left(me.appointment_id, me.id)
    guard.enter(sid, rooms.appointment_room(identity.appointment_id))
    if identity.user_id is not None:  # staff
        guard.enter(sid, rooms.user_room(identity.user_id))
    if identity.is_host:  # the waiting room, the status board, the bench's messages
        guard.enter(sid, rooms.hosts_room(identity.appointment_id))
    appointment = me.appointment
    send("welcome", {
        "protocol": PROTOCOL,
        "self": presence.peer(me),
        "appointment": {"id": appointment.id, "title": appointment.title,
                        "kind": appointment.kind.value,
                        "recording_policy": appointment.recording_policy.value,
                        "status": appointment.status.value},
        "state": me.lobby_state.value,
        "resumable": presence.resumable(me, utcnow()),
        **_ice(me),
        "stun_servers": stun_servers(current_app.config),
        "reconnect_grace_seconds": current_app.config["RECONNECT_GRACE_SECONDS"],
        "recording": _recording_welcome(appointment),
        **hearing.welcome_extra(sid, appointment),
    }, to=sid)
    if identity.is_host:
        send("lobby:list", {"waiting": presence.waiting(appointment)}, to=sid)


def went_away(sid: str, identity: Identity) -> None:
    me = db.session.get(Participant, identity.participant_id)
    if me is None:
        return
    was_in_call = me.joined_call_at is not None
    outcome = call.went_away(me, sid)
    hearing.left(sid, identity)
    if outcome is not None:
        qualities().forget(me.appointment_id, me.id)
    if device_checks().forget(me.appointment_id, me.id, sid) and outcome is None:
        court_events.tell_hosts(me.appointment)  # the board: off the device check
    if outcome == "left_lobby":
        _lobby_changed(me.appointment_id)
    elif outcome == "away":
        court_events.tell_hosts(me.appointment)  # the board: disconnected
        if was_in_call:
            send("call:peer-reconnecting", {"id": me.id},
                 to=rooms.call_room(identity.appointment_id))
        participant_id, appointment_id, stamp = me.id, me.appointment_id, me.away_since
        assert stamp is not None

        def grace_over() -> None:
            p = db.session.get(Participant, participant_id)
            if p is not None and call.expire_if_still_away(p, stamp):
                _left(appointment_id, participant_id)
                court_events.tell_hosts(p.appointment)

        grace = current_app.config["RECONNECT_GRACE_SECONDS"]
        guard.later(lambda: guard.in_background(grace_over, delay=grace))


guard.on_connect(welcome)
guard.on_disconnect(went_away)


# --- lobby -----------------------------------------------------------------------------------

@event("lobby:join", schemas.Empty())
def lobby_join(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = me_of(identity)
    _drop_replaced(call.wait(me, sid))
    send("lobby:state", _lobby_state(me), to=sid)
    if me.lobby_state is not LobbyState.DENIED:
        _lobby_changed(me.appointment_id)


@event("lobby:leave", schemas.Empty())
def lobby_leave(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = me_of(identity)
    if call.stop_waiting(me, sid):
        _lobby_changed(me.appointment_id)


def _decide(identity: Identity, participant_id: int, state: LobbyState) -> None:
    guest, target = call.decide(me_of(identity), participant_id, state)
    if target is not None:
        send("lobby:state", _lobby_state(guest), to=target)
    _lobby_changed(guest.appointment_id)


@event("lobby:admit", schemas.Target())
def lobby_admit(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _decide(identity, data["participant_id"], LobbyState.ADMITTED)


@event("lobby:deny", schemas.Target())
def lobby_deny(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _decide(identity, data["participant_id"], LobbyState.DENIED)


# --- the call --------------------------------------------------------------------------------

@event("call:join", schemas.Join())
def call_join(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = me_of(identity)
    joined = call.join(me, sid, data.get("notice"), asker(identity), data["declaration"])
    _drop_replaced(joined.replaced)
    room = rooms.call_room(me.appointment_id)
    guard.enter(sid, room)
    # Observers are not shown to the others (the hosts see them, and a count).
    shown = [p for p in joined.others if me.is_host or p.role is not ParticipantRole.OBSERVER]
    send("call:joined", {
        "peers": [presence.peer(p) for p in shown],
        "chat": [presence.chat_json(m) for m in joined.chat],
    }, to=sid)
    send("call:peer-joined", {"peer": presence.peer(me), "resume": data["resume"]},
         to=rooms.hosts_room(me.appointment_id) if me.role is ParticipantRole.OBSERVER
         else room, skip_sid=sid)
    send("record:state", consent.state_json(consent.active(me.appointment_id)), to=sid)
    hearing.joined(sid, identity, me.appointment)
    court_events.tell_state(me.appointment)


@event("call:leave", schemas.Empty())
def call_leave(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = me_of(identity)
    call.leave(me, sid)
    hearing.left(sid, identity)
    guard.leave(sid, rooms.call_room(identity.appointment_id))
    _left(identity.appointment_id, me.id)
    court_events.tell_hosts(me.appointment)


@event("call:end", schemas.Empty())
def call_end(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    call.end(me_of(identity))  # the notifier tells everyone and closes their sockets


@event("signal", schemas.Signal())
def signal(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    """The hot path: who is in the call comes from this worker's roster, not a query."""
    hearing.refuse_signal_in_janus_call(identity)
    registry = guard.sockets()
    to = registry.roster.target(identity.appointment_id, identity.participant_id, sid,
                                data["to"])
    if to is None:  # not as the roster has it: the database decides, and says why not
        target = call.relay_target(me_of(identity), sid, data["to"])
        registry.roster.forget(identity.appointment_id)  # it was out of date
        to = target.presence_sid
    message: dict[str, Any] = {"from": identity.participant_id}
    if "description" in data:
        message["description"] = data["description"]
    else:
        message["candidate"] = data["candidate"]
    assert to is not None  # relay_target: in the call
    send("signal", message, to=to)


@event("media:state", schemas.MediaState())
def media_state(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    call.set_media(me_of(identity), sid, data["audio"], data["video"])
    send("call:peer-media", {"id": identity.participant_id, **data},
         to=rooms.call_room(identity.appointment_id), skip_sid=sid)


@event("chat:send", schemas.Chat())
def chat_send(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = me_of(identity)
    call.require_in_call(me, sid)
    if not identity.chat.take():
        raise guard.Refused("rate_limited", _("Too many messages; slow down."))
    message = call.chat(me, sid, data["text"])
    send("chat:message", presence.chat_json(message),
         to=rooms.call_room(identity.appointment_id))

