"""Socket.IO signaling: the handlers for every event in docs/signaling.md."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app, request
from flask_babel import gettext as _
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room, leave_room

from portal.accounts.auth import load_user
from portal.appointments.services import InviteState, check_invite
from portal.audit import services as audit
from portal.audit.services import Actor
from portal.call import presence, schemas
from portal.call.guard import (
    Identity,
    Refused,
    bind,
    close_appointment_sockets,
    event,
    identity_of,
    refuse,
    unbind,
)
from portal.call.ice import ice_servers
from portal.clock import clock
from portal.database import after_commit
from portal.extensions import db, socketio
from portal.models import (
    Appointment,
    ChatMessage,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    Status,
    utcnow,
)
from portal.recording import events as recording_events
from portal.recording import manager as recording
from portal.recording import services as consent
from portal.recording.wording import wording

log = logging.getLogger(__name__)
PROTOCOL = 1
_OPEN = (Status.SCHEDULED, Status.LIVE)


def _actor(identity: Identity) -> Actor:
    if identity.is_host:
        return Actor("user", str(identity.user_id))
    return Actor("guest", str(identity.participant_id))


# --- who is asking ---------------------------------------------------------------------------

def _identify(auth: Any) -> Identity:
    """At connect: a guest's invite, or the session of the staff member hosting the call."""
    if not isinstance(auth, dict):
        auth = {}
    token = auth.get("invite")
    if token is not None:
        if not isinstance(token, str):
            raise Refused("bad_request", _("The invite is malformed."))
        check = check_invite(token)
        if check.state is not InviteState.VALID or check.guest is None:
            raise Refused("unauthorized" if check.state is InviteState.UNKNOWN else "ended",
                          _("This invite link does not work now."))
        guest = check.guest
        return Identity(guest.id, guest.appointment_id, invite_token=token,
                        clock=clock().monotonic)
    appointment_id = auth.get("appointment")
    if not isinstance(appointment_id, int) or isinstance(appointment_id, bool) \
            or not 0 < appointment_id < 2**31:
        raise Refused("bad_request", _("Say which appointment to connect to."))
    if not current_user.is_authenticated or current_user.must_change_password:
        raise Refused("unauthorized", _("Please sign in again."))
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.host_id != current_user.id:
        raise Refused("forbidden", _("You do not host this appointment."))
    if appointment.status not in _OPEN:
        raise Refused("ended", _("This appointment is over."))
    host_row = next(p for p in appointment.participants if p.role is ParticipantRole.HOST)
    return Identity(host_row.id, appointment.id, user_id=current_user.id,
                    session_epoch=current_user.session_epoch, clock=clock().monotonic)


def _recording_welcome(appointment: Appointment) -> dict[str, Any]:
    """The wording to show (in this socket's language) and the recording's state now."""
    policy = appointment.recording_policy
    shown = (None if policy is RecordingPolicy.OFF
             else wording("notice" if policy is RecordingPolicy.NOTICE else "consent"))
    return {"wording": shown.to_json() if shown else None,
            "state": consent.state_json(consent.active(appointment.id))}


def _recording_changed(change: consent.Change | None) -> None:
    if change is not None:
        recording.get().apply(change)


def _verify(identity: Identity) -> None:
    """Before every event: the invite or staff session is still good, the call still open."""
    if identity.invite_token is not None:
        state = check_invite(identity.invite_token).state
        if state is not InviteState.VALID:
            raise Refused("ended", _("This invite link does not work any more."), close=True)
        return
    if load_user(f"{identity.user_id}.{identity.session_epoch}") is None:
        raise Refused("unauthorized", _("Please sign in again."), close=True)
    appointment = db.session.get(Appointment, identity.appointment_id)
    if appointment is None or appointment.status not in _OPEN:
        raise Refused("ended", _("This appointment is over."), close=True)


def _me(identity: Identity) -> Participant:
    p = db.session.get(Participant, identity.participant_id)
    assert p is not None  # participants are never deleted while their invite works
    return p


@socketio.on("connect")
def on_connect(auth: Any = None) -> None:
    sid: str = request.sid  # type: ignore[attr-defined]
    if identity_of(sid) is not None:
        return  # an event the client named "connect": a socket is identified once only
    try:
        identity = _identify(auth)
    except Refused as err:
        db.session.rollback()
        raise ConnectionRefusedError(err.message, {"code": err.code, "message": err.message}) \
            from None
    except Exception:
        db.session.rollback()
        log.exception("identifying a socket failed")
        message = _("Something went wrong on our side.")
        raise ConnectionRefusedError(message, {"code": "internal", "message": message}) from None
    bind(sid, identity)
    me = _me(identity)
    now = utcnow()
    if presence.grace_over(me, now):  # the worker that would have timed it out is gone
        _expire(me)
        db.session.commit()
    join_room(presence.appointment_room(identity.appointment_id))
    if identity.user_id is not None:  # the host
        join_room(presence.hosts_room(identity.appointment_id))
        join_room(presence.user_room(identity.user_id))
    servers, expires = ice_servers(current_app.config, f"p{me.id}")
    appointment = me.appointment
    socketio.emit("welcome", {
        "protocol": PROTOCOL,
        "self": presence.peer(me),
        "appointment": {"id": appointment.id, "title": appointment.title,
                        "kind": appointment.kind.value,
                        "recording_policy": appointment.recording_policy.value,
                        "status": appointment.status.value},
        "state": me.lobby_state.value,
        "resumable": presence.resumable(me, now),
        "ice_servers": servers,
        "ice_expires_at": expires,
        "reconnect_grace_seconds": current_app.config["RECONNECT_GRACE_SECONDS"],
        "recording": _recording_welcome(appointment),
    }, to=sid)
    if identity.is_host:
        socketio.emit("lobby:list", {"waiting": presence.waiting(appointment)}, to=sid)


@socketio.on("disconnect")
def on_disconnect(*_args: Any) -> None:
    sid: str = request.sid  # type: ignore[attr-defined]
    if socketio.server.manager.is_connected(sid, "/"):
        return  # an event the client named "disconnect", not a real one
    identity = unbind(sid)
    if identity is None:
        return
    try:
        _went_away(sid, identity)
    except Exception:
        db.session.rollback()
        log.exception("recording that socket %s went away failed", sid)


def _went_away(sid: str, identity: Identity) -> None:
    me = db.session.get(Participant, identity.participant_id)
    if me is None or me.presence_sid != sid:
        return  # an extra tab, or a socket another one has replaced
    me.presence_sid = None
    if me.lobby_state is LobbyState.WAITING:
        me.lobby_state = LobbyState.LEFT  # closing the tab leaves the waiting room
        db.session.commit()
        presence.send_lobby(me.appointment)
        return
    stamp = me.away_since = utcnow()
    was_in_call = me.joined_call_at is not None
    if was_in_call:  # a recorded connection that drops stops the recording (said to all)
        _recording_changed(consent.participant_left(me, audit.SYSTEM))
    db.session.commit()
    if was_in_call:
        socketio.emit("call:peer-reconnecting", {"id": me.id},
                      to=presence.call_room(identity.appointment_id))
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    socketio.start_background_task(_grace_timer, app, me.id, stamp)


def _grace_timer(app: Any, participant_id: int, stamp: Any) -> None:
    socketio.sleep(app.config["RECONNECT_GRACE_SECONDS"])
    with app.app_context():
        try:
            me = db.session.get(Participant, participant_id)
            if me is not None and me.presence_sid is None and me.away_since == stamp:
                _expire(me)
                db.session.commit()
        except Exception:  # a background thread: log, never die noisily
            db.session.rollback()
            log.exception("ending the grace period of participant %s failed", participant_id)


def _expire(me: Participant) -> None:
    """The grace period is over: out of the call, and a guest back to the lobby next time."""
    was_in_call = me.joined_call_at is not None
    presence.leave(me)
    _recording_changed(consent.participant_left(me, audit.SYSTEM))
    audit.record("call.left", object_type="participant", object_id=me.id, actor=audit.SYSTEM,
                 details={"appointment_id": me.appointment_id, "reason": "connection lost"})
    if was_in_call:
        message, room = {"id": me.id}, presence.call_room(me.appointment_id)
        after_commit(lambda: socketio.emit("call:peer-left", message, to=room))


# --- helpers ---------------------------------------------------------------------------------

def _take_presence(me: Participant, sid: str) -> str | None:
    """This socket now speaks for the participant; returns the socket it replaced."""
    old = me.presence_sid
    me.presence_sid = sid
    me.away_since = None
    return old if old and old != sid else None


def _drop_replaced(old_sid: str | None) -> None:
    if old_sid is not None:
        refuse(old_sid, "connect", Refused(
            "replaced", _("You joined from another tab or device; this one is closed."),
            close=True))


def _guest_only(identity: Identity) -> None:
    if identity.is_host:
        raise Refused("forbidden", _("Only a guest can do this."))


def _host_only(identity: Identity) -> None:
    if not identity.is_host:
        raise Refused("forbidden", _("Only the host can do this."))


def _require_in_call(me: Participant, sid: str) -> None:
    if not presence.may_join(me):
        raise Refused("forbidden", _("You have not been let into the call."))
    if not presence.in_call(me, sid):
        raise Refused("not_in_call", _("Join the call first."))


def _waiting_guest(identity: Identity, participant_id: int) -> Participant:
    p = db.session.get(Participant, participant_id)
    if (p is None or p.appointment_id != identity.appointment_id
            or p.role is ParticipantRole.HOST or p.lobby_state is not LobbyState.WAITING):
        raise Refused("unknown_peer", _("Nobody by that number is waiting."))
    return p


# --- lobby -----------------------------------------------------------------------------------

@event("lobby:join", schemas.Empty(), verify=_verify)
def lobby_join(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _guest_only(identity)
    me = _me(identity)
    if me.lobby_state is LobbyState.DENIED:
        socketio.emit("lobby:state", {"state": "denied"}, to=sid)
        return
    old = _take_presence(me, sid)
    if me.lobby_state is not LobbyState.ADMITTED:
        if me.lobby_state is not LobbyState.WAITING:
            me.waiting_since = utcnow()
        me.lobby_state = LobbyState.WAITING
        audit.record("lobby.waiting", object_type="participant", object_id=me.id,
                     actor=_actor(identity), details={"appointment_id": me.appointment_id})
    db.session.commit()
    _drop_replaced(old)
    socketio.emit("lobby:state", {"state": me.lobby_state.value}, to=sid)
    presence.send_lobby(me.appointment)


@event("lobby:leave", schemas.Empty(), verify=_verify)
def lobby_leave(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _guest_only(identity)
    me = _me(identity)
    if me.lobby_state is LobbyState.WAITING and me.presence_sid == sid:
        presence.leave(me)
        db.session.commit()
        presence.send_lobby(me.appointment)


def _decide(identity: Identity, participant_id: int, state: LobbyState) -> None:
    _host_only(identity)
    guest = _waiting_guest(identity, participant_id)
    guest.lobby_state = state
    target = guest.presence_sid
    if state is LobbyState.DENIED:
        guest.presence_sid = None
    audit.record("lobby.admitted" if state is LobbyState.ADMITTED else "lobby.denied",
                 object_type="participant", object_id=guest.id, actor=_actor(identity),
                 details={"appointment_id": guest.appointment_id})
    db.session.commit()
    if target is not None:
        socketio.emit("lobby:state", {"state": state.value}, to=target)
    presence.send_lobby(guest.appointment)


@event("lobby:admit", schemas.Target(), verify=_verify)
def lobby_admit(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _decide(identity, data["participant_id"], LobbyState.ADMITTED)


@event("lobby:deny", schemas.Target(), verify=_verify)
def lobby_deny(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _decide(identity, data["participant_id"], LobbyState.DENIED)


# --- the call --------------------------------------------------------------------------------

@event("call:join", schemas.Join(), verify=_verify)
def call_join(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    if not presence.may_join(me):
        raise Refused("forbidden", _("You have not been let into the call."))
    _acknowledge_notice(me, identity, data.get("notice"))
    old = _take_presence(me, sid)
    if me.joined_call_at is None:
        me.joined_call_at = utcnow()
        audit.record("call.joined", object_type="participant", object_id=me.id,
                     actor=_actor(identity), details={"appointment_id": me.appointment_id})
    appointment = me.appointment
    if appointment.status is Status.SCHEDULED:
        appointment.status = Status.LIVE
        audit.record("appointment.live", object_type="appointment", object_id=appointment.id,
                     actor=_actor(identity))
    _recording_changed(consent.participant_joined(me, _actor(identity)))
    db.session.commit()
    _drop_replaced(old)
    join_room(presence.call_room(appointment.id))
    others = [p for p in presence.members(appointment) if p.id != me.id]
    socketio.emit("call:joined", {
        "peers": [presence.peer(p) for p in others],
        "chat": [presence.chat_json(m) for m in presence.chat_history(appointment)],
    }, to=sid)
    socketio.emit("call:peer-joined", {"peer": presence.peer(me), "resume": data["resume"]},
                  to=presence.call_room(appointment.id), skip_sid=sid)
    socketio.emit("record:state", consent.state_json(consent.active(appointment.id)), to=sid)


def _acknowledge_notice(me: Participant, identity: Identity, version: str | None) -> None:
    """Policy notice: nobody enters the call without having acknowledged the notice."""
    if (me.appointment.recording_policy is not RecordingPolicy.NOTICE
            or consent.has_acknowledged(me)):
        return
    shown = wording("notice")
    if version != shown.version:
        raise Refused("notice_required",
                      _("This hearing is recorded. Read and acknowledge the notice to join."))
    consent.acknowledge_notice(me, shown, recording_events.asker(identity))


@event("call:leave", schemas.Empty(), verify=_verify)
def call_leave(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    _require_in_call(me, sid)
    presence.leave(me)
    _recording_changed(consent.participant_left(me, _actor(identity)))
    audit.record("call.left", object_type="participant", object_id=me.id,
                 actor=_actor(identity), details={"appointment_id": me.appointment_id})
    db.session.commit()
    leave_room(presence.call_room(identity.appointment_id))
    socketio.emit("call:peer-left", {"id": me.id}, to=presence.call_room(identity.appointment_id))


@event("call:end", schemas.Empty(), verify=_verify)
def call_end(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    _host_only(identity)
    appointment = _me(identity).appointment
    appointment.status = Status.ENDED
    running = consent.active(appointment.id)
    if running is not None:
        _recording_changed(consent.stop(running, "call_ended", _actor(identity)))
    for p in appointment.participants:
        presence.leave(p)
    audit.record("appointment.ended", object_type="appointment", object_id=appointment.id,
                 actor=_actor(identity))
    db.session.commit()
    socketio.emit("call:ended", {}, to=presence.appointment_room(appointment.id))
    socketio.close_room(presence.call_room(appointment.id))
    close_appointment_sockets(appointment.id)


@event("signal", schemas.Signal(), verify=_verify)
def signal(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    _require_in_call(me, sid)
    target = db.session.get(Participant, data["to"])
    if (target is None or target.id == me.id or target.appointment_id != me.appointment_id
            or not presence.in_call(target)):
        raise Refused("unknown_peer", _("That participant is not in this call."))
    message: dict[str, Any] = {"from": me.id}
    if "description" in data:
        message["description"] = data["description"]
    else:
        message["candidate"] = data["candidate"]
    socketio.emit("signal", message, to=target.presence_sid)


@event("media:state", schemas.MediaState(), verify=_verify)
def media_state(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    _require_in_call(me, sid)
    me.audio_on, me.video_on = data["audio"], data["video"]
    db.session.commit()
    socketio.emit("call:peer-media", {"id": me.id, **data},
                  to=presence.call_room(identity.appointment_id), skip_sid=sid)


@event("chat:send", schemas.Chat(), verify=_verify)
def chat_send(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    _require_in_call(me, sid)
    if not identity.chat.take():
        raise Refused("rate_limited", _("Too many messages; slow down."))
    text = data["text"].strip()
    if not text:
        raise Refused("bad_request", _("The message is empty."))
    message = ChatMessage(appointment_id=me.appointment_id, participant_id=me.id, body=text)
    db.session.add(message)
    db.session.commit()
    socketio.emit("chat:message", presence.chat_json(message),
                  to=presence.call_room(identity.appointment_id))


recording_events.register(_verify)
