"""What every signaling event goes through: who is asking, is the payload sound, how often.

A refused event becomes an `error` event (code + message) for the sender; nothing escapes as
an exception into the server log, and nothing is relayed or stored.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import request
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError

from portal.call.presence import user_room
from portal.extensions import db, socketio

log = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024


class Refused(Exception):
    """An event the server will not act on; the sender gets `error` {code, message, event}."""

    def __init__(self, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


#: Events a socket may send: `RATE` a second on average, bursts of up to `BURST`.
EVENT_RATE, EVENT_BURST = 40, 200
CHAT_RATE, CHAT_BURST = 0.5, 5


@dataclass
class Bucket:
    """Token bucket: `rate` events a second on average, bursts up to `burst`; full at first."""

    rate: float
    burst: float
    #: Monotonic seconds: the app's clock (portal/clock.py), which tests move by hand.
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.stamp = self.clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Identity:
    """Who a socket belongs to, fixed at connect and re-checked on every event."""

    participant_id: int
    appointment_id: int
    user_id: int | None = None  # staff (the host)
    session_epoch: int | None = None
    invite_token: str | None = None  # guests; kept in memory only, never stored
    clock: Callable[[], float] = time.monotonic  # for the rate limits
    events: Bucket = field(init=False)
    chat: Bucket = field(init=False)

    def __post_init__(self) -> None:
        self.events = Bucket(rate=EVENT_RATE, burst=EVENT_BURST, clock=self.clock)
        self.chat = Bucket(rate=CHAT_RATE, burst=CHAT_BURST, clock=self.clock)

    @property
    def is_host(self) -> bool:
        return self.user_id is not None


_sockets: dict[str, Identity] = {}
_lock = threading.Lock()


def bind(sid: str, identity: Identity) -> None:
    with _lock:
        _sockets[sid] = identity


def unbind(sid: str) -> Identity | None:
    with _lock:
        return _sockets.pop(sid, None)


def identity_of(sid: str) -> Identity | None:
    with _lock:
        return _sockets.get(sid)


def refuse(sid: str, event: str, err: Refused) -> None:
    socketio.emit("error", {"code": err.code, "message": err.message, "event": event}, to=sid)
    if err.close:
        socketio.server.disconnect(sid, namespace="/")


def check_payload(data: Any, schema: Schema) -> dict[str, Any]:
    if data is None:
        data = {}
    try:
        size = len(json.dumps(data, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):
        raise Refused("bad_request", _("The message is not valid JSON.")) from None
    if size > MAX_PAYLOAD:
        raise Refused("too_large", _("The message is too large."))
    if not isinstance(data, dict):
        raise Refused("bad_request", _("The message must be a JSON object."))
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise Refused("bad_request", _("The message is malformed: %(detail)s",
                                       detail=json.dumps(exc.messages)[:300])) from None
    return loaded


Handler = Callable[[str, Identity, dict[str, Any]], None]


def event(name: str, schema: Schema, *, verify: Callable[[Identity], Any]) -> Callable[
        [Handler], Handler]:
    """Register a Socket.IO handler that gets (sid, identity, validated payload).

    verify(identity) re-checks that the socket's staff session or invite is still good and
    raises Refused otherwise.
    """

    def register(handler: Handler) -> Handler:
        @wraps(handler)
        def on_event(data: Any = None, *extra: Any) -> None:
            sid: str = request.sid  # type: ignore[attr-defined]
            identity = identity_of(sid)
            try:
                if identity is None:
                    raise Refused("unauthorized", _("Connect again."), close=True)
                if not identity.events.take():
                    raise Refused("rate_limited", _("Too many messages; slow down."))
                payload = check_payload(data, schema)
                verify(identity)
                handler(sid, identity, payload)
            except Refused as err:
                db.session.rollback()
                log.info("refused %s from %s: %s", name, sid, err.code)
                refuse(sid, name, err)
            except Exception:
                db.session.rollback()
                log.exception("signaling event %s failed", name)
                refuse(sid, name, Refused("internal", _("Something went wrong on our side.")))

        socketio.on_event(name, on_event)
        return handler

    return register


def close_staff_sockets(user_id: int, message: str) -> None:
    """Signing out ends the account's call connections on this worker (and tells the rest)."""
    with _lock:
        sids = [sid for sid, who in _sockets.items() if who.user_id == user_id]
    socketio.emit("error", {"code": "unauthorized", "message": message, "event": "connect"},
                  to=user_room(user_id))
    for sid in sids:
        socketio.server.disconnect(sid, namespace="/")


def close_appointment_sockets(appointment_id: int) -> None:
    """The call is over: close this worker's sockets of it (the others refuse their next event)."""
    with _lock:
        sids = [sid for sid, who in _sockets.items() if who.appointment_id == appointment_id]
    for sid in sids:
        socketio.server.disconnect(sid, namespace="/")
