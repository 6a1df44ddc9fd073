"""Socket.IO events of recording: ask, consent, withdraw, stop, and publish to the recorder
(docs/signaling.md, "Recording"). The rules are in portal.recording.actions."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from portal.call import schemas
from portal.call.events import asker, me_of
from portal.call.guard import Identity, event
from portal.extensions import socketio
from portal.models import Decision
from portal.recording import actions


@event("record:start", schemas.RecordStart())
def record_start(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    actions.start(me_of(identity), sid, data["version"], asker(identity))


@event("record:consent", schemas.RecordAnswer())
def record_consent(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    actions.answer(me_of(identity), sid, data["id"], Decision(data["decision"]),
                   data["version"], asker(identity))


@event("record:stop", schemas.RecordStop())
def record_stop(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    actions.stop(me_of(identity), sid, data["id"], asker(identity))


@event("record:offer", schemas.RecordOffer())
def record_offer(sid: str, identity: Identity, data: dict[str, Any]) -> None:
    recording_id = data["id"]
    failed = _("The recorder could not connect.")

    def reply(answer: str | None, error: str | None) -> None:
        if answer is not None:
            socketio.emit("record:answer", {"id": recording_id, "sdp": answer}, to=sid)
        else:
            socketio.emit("error", {"code": "recording_failed", "event": "record:offer",
                                    "message": failed}, to=sid)

    actions.offer(me_of(identity), sid, recording_id, data["sdp"], reply)
