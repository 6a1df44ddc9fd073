"""Socket.IO events of a hearing's court procedure (docs/signaling.md, "Court procedure").

The guard checks each as any other (identity, rate, size, schema); portal.call.court checks
the sender's right and does it. After each change everyone hears `hearing:state` (what each
may know) and every worker subscribes its browsers anew, so that who receives whom is held
on the media server, not in the browser.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask_babel import gettext as _

from portal import presence
from portal.call import court, guard, rooms, schemas
from portal.call.guard import Identity, Refused, event, send
from portal.call.quality import device_checks, qualities
from portal.extensions import db
from portal.models import Appointment, Kind, Participant, RoomKind


def _me(identity: Identity) -> Participant:
    p = db.session.get(Participant, identity.participant_id)
    assert p is not None  # participants are never deleted while their invite works
    return p


def tell_state(appointment: Appointment) -> None:
    """`hearing:state` to each socket of the hearing (a host: the status board; anyone else:
    the stage and their own place), and everyone's subscriptions again, on every worker."""
    if appointment.kind is not Kind.HEARING:
        return
    tell_hosts(appointment)
    for p in appointment.participants:
        if p.presence_sid is not None and not p.is_host:
            send("hearing:state", court.own_state(p), to=p.presence_sid)
    guard.later(partial(_resubscribe, appointment.id))


def hosts_board(appointment: Appointment) -> dict[str, Any]:
    """The hosts' status board now, with each participant's last reported quality and device
    check."""
    return court.board(appointment, qualities().of(appointment.id),
                       device_checks().of(appointment.id))


def tell_hosts(appointment: Appointment) -> None:
    """The status board to the hosts' sockets, once the transaction has committed (someone
    waits, leaves the waiting room, drops, comes back; their quality changed)."""
    if appointment.kind is Kind.HEARING:
        send("hearing:state", hosts_board(appointment), to=rooms.hosts_room(appointment.id))


def _resubscribe(appointment_id: int) -> None:
    guard.sockets().calls_changed({appointment_id})


def _done(me: Participant) -> None:
    db.session.flush()
    tell_state(me.appointment)


# --- the hearing's course --------------------------------------------------------------------

@event("hearing:start", schemas.Empty())
def start(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.start(me, sid)
    _done(me)


@event("hearing:pause", schemas.Empty())
def pause(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.pause(me, sid)
    _done(me)


@event("hearing:resume", schemas.Empty())
def resume(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.resume(me, sid)
    _done(me)


@event("hearing:call", schemas.Someone())
def call(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.call(me, sid, data["participant"])
    _done(me)


@event("hearing:dismiss", schemas.Someone())
def dismiss(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.dismiss(me, sid, data["participant"])
    _done(me)


@event("hearing:mute", schemas.Mute())
def mute(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    for p in court.mute(me, sid, data.get("participant"), data["lock"]):
        if p.presence_sid is not None:
            send("hearing:muted", {"locked": p.mute_locked}, to=p.presence_sid)
        if presence.in_call(p):
            send("call:peer-media", {"id": p.id, "audio": False, "video": p.video_on},
                 to=rooms.call_room(me.appointment_id), skip_sid=p.presence_sid)
    _done(me)


@event("hearing:remove", schemas.Someone())
def remove(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    target = data["participant"]
    old_sid = court.remove(me, sid, target)
    send("call:peer-left", {"id": target}, to=rooms.call_room(me.appointment_id))
    if old_sid is not None:
        gone = Refused("removed", _("The court has removed you from this hearing."), close=True)
        guard.later(lambda: guard.refuse(old_sid, "connect", gone))
    _done(me)


@event("hearing:screen", schemas.Screen())
def screen(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.screen(me, sid, data["protected"], data["hidden_from"], data["on"])
    _done(me)


# --- private rooms ---------------------------------------------------------------------------

@event("room:open", schemas.RoomOpen())
def room_open(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.open_room(me, sid, RoomKind(data["kind"]), data["members"])
    _done(me)


@event("room:invite", schemas.Someone())
def room_invite(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.invite(me, sid, data["participant"])
    _done(me)


@event("room:leave", schemas.Empty())
def room_leave(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.leave_room(me, sid)
    _done(me)


@event("room:recall", schemas.Empty())
def room_recall(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = _me(identity)
    court.recall(me, sid)
    _done(me)


# --- the bench's messages --------------------------------------------------------------------

@event("bench:message", schemas.BenchMessage())
def bench_message(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    if not identity.chat.take():
        raise Refused("rate_limited", _("Too many messages; slow down."))
    me = _me(identity)
    message = court.bench_message(me, sid, data["body"])
    send("bench:message", presence.chat_json(message),
         to=rooms.hosts_room(identity.appointment_id))


# --- connection quality ----------------------------------------------------------------------

@event("quality", schemas.Quality())
def quality(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    """The browser's measure of its connection (every 2 s or so): kept for the hosts' board,
    which they get again when someone's level changes."""
    me = _me(identity)
    if me.presence_sid != sid:  # in the waiting room or the call, on this socket
        raise Refused("not_in_call", _("Join the waiting room or the call first."))
    changed = qualities().report(me.appointment_id, me.id, data["level"], data["rtt_ms"],
                                 data["loss"], data["kbps"])
    if changed is None:
        raise Refused("rate_limited", _("Too many quality reports; one every two seconds."))
    if changed:
        tell_hosts(me.appointment)


@event("device:check", schemas.DeviceCheck())
def device_check(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    """The device check's outcome, each time it changes while the page shows it: the board
    says who is stuck there (no camera or microphone, no network path) before the start."""
    me = _me(identity)
    if device_checks().report(me.appointment_id, me.id, sid, data):
        tell_hosts(me.appointment)
