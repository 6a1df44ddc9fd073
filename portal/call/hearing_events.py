"""Socket.IO events of a call through Janus (docs/signaling.md, "Hearings"): the browser's
publication, its subscription, their ICE candidates and the simulcast layer it wants.

The guard checks each event as any other (identity, rate, size, schema); here only members of
this Janus call, on the socket that is in the call, get further. The media work itself is
queued once the event's transaction has committed (portal.hearing.media), and what Janus
answers comes back through `SocketOutbox`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from flask import Flask, current_app
from flask_babel import get_locale
from flask_babel import gettext as _

from portal import signals
from portal.call import guard, rooms, schemas
from portal.call import services as call
from portal.call.guard import Identity, Refused, event
from portal.extensions import db, socketio
from portal.hearing import instances, pinning, policy, procedure
from portal.hearing.janus import JanusGone
from portal.hearing.media import HearingMedia
from portal.hearing.procedure import Action
from portal.models import Appointment, Participant


class SocketOutbox:
    """What the media layer says, as Socket.IO messages (from any thread)."""

    def to_socket(self, sid: str, event: str, data: dict[str, Any]) -> None:
        socketio.emit(event, data, to=sid)

    def to_call(self, appointment_id: int, event: str, data: dict[str, Any]) -> None:
        socketio.emit(event, data, to=rooms.call_room(appointment_id))


def media(app: Flask | None = None) -> HearingMedia:
    found = (app or current_app).extensions["hearing"]
    assert isinstance(found, HearingMedia)
    return found


def unavailable() -> dict[str, Any]:
    """`hearing:media` when no Janus is configured or none answers."""
    return {"state": "unavailable", "message": _(
        "The media server for hearings is not running, so this hearing cannot start. The "
        "operator can install it with “apt-get install janus” (see the operations guide).")}


# --- what the call's own events do in a Janus call (portal.call.events calls these) ----------

def welcome_extra(sid: str, appointment: Appointment) -> dict[str, Any]:
    """`welcome.media`; in a Janus call without Janus, `hearing:media {unavailable}` follows."""
    janus = policy.uses_janus(appointment)
    if janus and not media().available:
        guard.send("hearing:media", unavailable(), to=sid)
    return {"media": "janus" if janus else "mesh"}


def joined(sid: str, identity: Identity, appointment: Appointment) -> None:
    """Into a Janus call: the hearing pinned to an instance, the participant's place in its
    room made once this commits (then `hearing:media {ready}`)."""
    if not policy.uses_janus(appointment):
        return
    hearing = media()
    pool = instances.clients(current_app)
    try:
        url = pinning.pin(appointment, pool.urls, pool.choose)
    except JanusGone:  # none configured, or none reachable to choose from
        guard.send("hearing:media", unavailable(), to=sid)
        return
    guard.later(partial(hearing.join, appointment.id, url, identity.participant_id, sid,
                        str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])))


def left(sid: str, identity: Identity) -> None:
    """Out of the call, or the socket closed: the participant's handles go."""
    guard.later(partial(media().leave, identity.appointment_id, identity.participant_id, sid))


def refuse_signal_in_janus_call(identity: Identity) -> None:
    if guard.sockets().roster.janus(identity.appointment_id):
        raise Refused("use_hearing", _("This call goes through the media server; the page "
                                       "must use its hearing events."))


# --- the hearing's events --------------------------------------------------------------------

def _member(sid: str, identity: Identity) -> bool:
    """In this Janus call on this socket (else Refused / a DomainError saying why); False
    when there is no Janus to talk to (the socket is told so)."""
    registry = guard.sockets()
    members = registry.roster.members(identity.appointment_id)
    if members.get(identity.participant_id) != sid:
        me = db.session.get(Participant, identity.participant_id)
        assert me is not None  # participants are never deleted while their invite works
        call.require_in_call(me, sid)  # the database decides, and says why not
        registry.roster.forget(identity.appointment_id)  # the roster was out of date
    if not registry.roster.janus(identity.appointment_id):
        raise Refused("forbidden", _("This call does not go through the media server."))
    if not media().configured:
        guard.send("hearing:media", unavailable(), to=sid)
        return False
    return True  # a Janus that is down for now: the hearing says "reconnecting"


@event("hearing:publish", schemas.HearingSdp())
def publish(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    me = db.session.get(Participant, identity.participant_id)
    if me is not None and not procedure.may(me, Action.PUBLISH):
        raise Refused("forbidden", _("Observers do not send their camera or microphone."))
    if _member(sid, identity):
        guard.later(partial(media().publish, identity.appointment_id, identity.participant_id,
                            sid, data["sdp"]))


@event("hearing:subscribe", schemas.HearingSdp())
def subscribe(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    if _member(sid, identity):
        guard.later(partial(media().answer, identity.appointment_id, identity.participant_id,
                            sid, data["sdp"]))


@event("hearing:candidate", schemas.HearingCandidate())
def candidate(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    if _member(sid, identity):
        guard.later(partial(media().candidate, identity.appointment_id,
                            identity.participant_id, sid, data["pc"], data["candidate"]))


@event("hearing:layer", schemas.HearingLayer())
def layer(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    if _member(sid, identity):
        guard.later(partial(media().layer, identity.appointment_id, identity.participant_id,
                            sid, data["participant_id"], data["substream"]))


@event("hearing:unpublish", schemas.Empty())
def unpublish(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    if _member(sid, identity):
        guard.later(partial(media().unpublish, identity.appointment_id,
                            identity.participant_id, sid))


# --- the media layer of this app ------------------------------------------------------------

def _ended(app: Flask, *, appointment_id: int) -> None:
    media(app).end(appointment_id)


def init_app(app: Flask) -> None:
    """This worker's hearings (app.extensions["hearing"]), told of Janus's events, of who is
    in which call (every worker's roster notices), and of hearings that end."""
    pool = instances.clients(app)
    hearing = HearingMedia(app, pool, SocketOutbox(),
                           retry_seconds=float(app.config.get("JANUS_RETRY_SECONDS", 1.0)))
    app.extensions["hearing"] = hearing
    if pool.configured:  # else no Janus: no supervisor thread either
        pool.listen(on_event=hearing.on_event, on_lost=hearing.on_lost,
                    on_back=hearing.on_back)
    guard.sockets(app).on_roster.append(hearing.changed)
    signals.appointment_closed.connect(_ended, sender=app, weak=False)
