"""Socket.IO events of recording: ask, consent, withdraw, stop, and publish to the recorder."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _
from marshmallow import fields, validate

from portal.audit.services import Actor
from portal.call.guard import Identity, Refused, event
from portal.call.schemas import _Strict
from portal.extensions import db
from portal.models import (
    Decision,
    Participant,
    Recording,
    RecordingPolicy,
    RecordingStatus,
)
from portal.recording import manager, services
from portal.recording.wording import wording

_RECORDING_ID = validate.Regexp(r"^[0-9a-f]{32}$")
_VERSION = validate.Length(min=1, max=40)


class Start(_Strict):
    version = fields.String(required=True, validate=_VERSION)


class Answer(_Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)
    decision = fields.String(required=True,
                             validate=validate.OneOf(["granted", "declined", "withdrawn"]))
    version = fields.String(required=True, validate=_VERSION)


class Stop(_Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)


class Offer(_Strict):
    id = fields.String(required=True, validate=_RECORDING_ID)
    sdp = fields.String(required=True, validate=validate.Length(min=10, max=32 * 1024))


def asker(identity: Identity) -> services.Asker:
    actor = (Actor("user", str(identity.user_id)) if identity.is_host
             else Actor("guest", str(identity.participant_id)))
    return services.Asker(actor, request.remote_addr,
                          request.headers.get("User-Agent"))


def _in_call(identity: Identity, sid: str) -> Participant:
    from portal.call import presence

    me = db.session.get(Participant, identity.participant_id)
    if me is None or not presence.in_call(me, sid):
        raise Refused("not_in_call", _("Join the call first."))
    return me


def _recording(identity: Identity, recording_id: str) -> Recording:
    recording = db.session.get(Recording, recording_id)
    if recording is None or recording.appointment_id != identity.appointment_id:
        raise Refused("unknown_recording", _("There is no such recording in this call."))
    return recording


def _shown(me: Participant, version: str) -> Any:
    policy = me.appointment.recording_policy
    if policy is RecordingPolicy.OFF:
        raise Refused("forbidden", _("This appointment is not to be recorded."))
    shown = wording("notice" if policy is RecordingPolicy.NOTICE else "consent")
    if version != shown.version:
        raise Refused("stale_wording", _("The recording notice has changed; read it again."))
    return shown


def register(verify: Any) -> None:
    """Add the handlers; verify is the call's per-event identity check."""

    @event("record:start", Start(), verify=verify)
    def record_start(sid: str, identity: Identity, data: dict[str, Any]) -> None:
        if not identity.is_host:
            raise Refused("forbidden", _("Only the host can start a recording."))
        me = _in_call(identity, sid)
        shown = _shown(me, data["version"])
        change = services.request(me, shown, asker(identity))
        manager.get().apply(change)
        db.session.commit()

    @event("record:consent", Answer(), verify=verify)
    def record_consent(sid: str, identity: Identity, data: dict[str, Any]) -> None:
        me = _in_call(identity, sid)
        recording = _recording(identity, data["id"])
        shown = _shown(me, data["version"])
        change = services.decide(me, recording, Decision(data["decision"]), shown,
                                 asker(identity))
        manager.get().apply(change)
        db.session.commit()

    @event("record:stop", Stop(), verify=verify)
    def record_stop(sid: str, identity: Identity, data: dict[str, Any]) -> None:
        if not identity.is_host:
            raise Refused("forbidden", _("Only the host can stop the recording; you can "
                                         "withdraw your consent."))
        _in_call(identity, sid)
        recording = _recording(identity, data["id"])
        change = services.stop(recording, "stopped_by_host", asker(identity).actor)
        manager.get().apply(change)
        db.session.commit()

    @event("record:offer", Offer(), verify=verify)
    def record_offer(sid: str, identity: Identity, data: dict[str, Any]) -> None:
        me = _in_call(identity, sid)
        recording = _recording(identity, data["id"])
        if (recording.status not in (RecordingStatus.RECORDING, RecordingStatus.PAUSED)
                or recording.stopped_at is not None):
            raise Refused("not_recording", _("This recording is not running."))
        if me.id not in services.publishers(recording):
            raise Refused("forbidden", _("Only someone who agreed is recorded."))
        manager.get().publish(recording, me, sid, data["sdp"])
