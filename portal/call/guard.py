"""What every signaling event goes through: who is asking, is the payload sound, how often,
and one transaction: the handler's changes commit together, then its messages go out.

A refused event becomes an `error` event (code + message) for the sender; a DomainError from
an operation becomes one too, as errorpages does for HTTP. Nothing escapes as an exception
into the server log, and nothing is relayed or stored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial, wraps
from typing import Any

from flask import Flask, current_app, has_app_context, request
from flask_babel import gettext as _
from flask_socketio import ConnectionRefusedError, join_room, leave_room
from limits import parse
from marshmallow import Schema, ValidationError

from portal.call import roster
from portal.call.fanout import Fanout
from portal.call.identity import Buckets, Identity, Refused, identify, keep_signed_in, recheck
from portal.clock import clock
from portal.config import redis_pool_size
from portal.database import after_commit
from portal.errors import DomainError
from portal.extensions import db, limiter, socketio
from portal.inputs import problem

log = logging.getLogger(__name__)
MAX_PAYLOAD = 64 * 1024
Handler = Callable[[str, Identity, dict[str, Any]], None]


class Sockets:
    """This worker's identified sockets (app.extensions["sockets"]), and the notices that
    close or re-check them on every worker."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._identities: dict[str, Identity] = {}
        self.buckets = Buckets()
        #: Who is in which call, for relaying without a query (portal/call/roster.py).
        self.roster = roster.Roster()
        #: Told the appointment id whenever who is in a call changed (here or on another
        #: worker): the hearing's subscriptions follow it.
        self.on_roster: list[Callable[[int], None]] = []
        self._sweeping = False
        self.fanout = Fanout(self._notice, app.config["SOCKETIO_MESSAGE_QUEUE"],
                             app.config["SOCKETIO_CHANNEL"], redis_pool_size(app.config))

    def bind(self, sid: str, identity: Identity) -> None:
        """Keep the socket's identity, with its participant's and address's rate limits; or
        Refused when the participant has as many sockets open on this worker as allowed."""
        self.fanout.start()
        most = self.app.config["SOCKETS_PER_PARTICIPANT"]
        with self._lock:
            if sum(who.participant_id == identity.participant_id
                   for who in self._identities.values()) >= most:
                raise Refused("too_many_sockets", _(
                    "You are connected from too many tabs or devices; close one and try "
                    "again."))
            identity.share(self.buckets)
            self._identities[sid] = identity
            in_use = {id(bucket) for who in self._identities.values()
                      for bucket in who.buckets()}
        self.buckets.sweep(in_use)
        if identity.session_id is not None:
            self._start_sweeping()

    def unbind(self, sid: str) -> Identity | None:
        with self._lock:
            gone = self._identities.pop(sid, None)
        if gone is not None:  # nothing more is relayed to it from here, even before the commit
            self.roster.forget(gone.appointment_id)
        return gone

    def identity_of(self, sid: str) -> Identity | None:
        with self._lock:
            return self._identities.get(sid)

    def _matching(self, kind: str, key: int | str) -> list[tuple[str, Identity]]:
        field = {"participant": "participant_id", "user": "user_id",
                 "appointment": "appointment_id", "session": "session_id"}[kind]
        with self._lock:
            return [(sid, who) for sid, who in self._identities.items()
                    if getattr(who, field) == key]

    def close(self, kind: str, key: int | str, code: str | None = None,
              message: str = "") -> None:
        """Close the sockets of a participant, user, appointment or session on every worker;
        with a code, each first gets `error` {code, message, event: "connect"}."""
        self.fanout.send({"kind": kind, "id": key, "close": True, "code": code,
                          "message": message})

    def recheck(self, kind: str, key: int) -> None:
        """Their identity may have changed: check each again now, and before its next event."""
        self.fanout.send({"kind": kind, "id": key, "close": False})

    def calls_changed(self, appointment_ids: set[int]) -> None:
        """Who is in these calls changed (committed): every worker reads them again."""
        for appointment_id in appointment_ids:
            self.fanout.send({"kind": "roster", "id": appointment_id, "close": False})

    def _notice(self, notice: dict[str, Any]) -> None:
        if notice["kind"] == "roster":
            self.roster.forget(int(notice["id"]))
            for tell in self.on_roster:
                try:
                    tell(int(notice["id"]))
                except Exception:
                    log.exception("telling of a call's change failed")
            if self._matching("appointment", int(notice["id"])):
                self._warm(int(notice["id"]))
            return
        key = notice["id"] if notice["kind"] == "session" else int(notice["id"])
        matching = self._matching(notice["kind"], key)
        if notice["close"]:  # no database needed: at once
            for sid, _who in matching:
                if notice["code"]:
                    refuse(sid, "connect", Refused(notice["code"], notice["message"], close=True))
                else:
                    _disconnect(sid)
            return
        for _sid, who in matching:
            who.stale = True  # the socket's next event is checked first, whatever happens here
        if not matching:
            return
        if has_app_context():  # after a commit in this worker
            self._recheck(matching)
        else:  # another worker's notice, on the listening thread
            with self.app.app_context():
                self._recheck(matching)

    def _warm(self, appointment_id: int) -> None:
        """Read a call's roster again now, while no message waits for it: a call's first
        candidates come right after a join (calls that began together queued their reads)."""
        try:
            if has_app_context():
                self.roster.members(appointment_id)
            else:
                with self.app.app_context():
                    self.roster.members(appointment_id)
        except Exception:  # the next message reads it, or the database decides
            log.exception("reading the roster of call %s failed", appointment_id)

    def _start_sweeping(self) -> None:
        """Look at the hosts' sign-ins every IDLE_CHECK_SECONDS while any host socket is open."""
        interval = self.app.config["IDLE_CHECK_SECONDS"]
        with self._lock:
            if self._sweeping or interval <= 0:
                return
            self._sweeping = True
        socketio.start_background_task(self._sweep_every, interval)

    def _sweep_every(self, interval: float) -> None:
        while True:
            socketio.sleep(interval)
            with self._lock:
                if not any(who.session_id for who in self._identities.values()):
                    self._sweeping = False
                    return
            self.sweep()

    def sweep(self) -> None:
        """Close this worker's host sockets whose sign-in has ended (signed out, idle, too
        old); a host in the call with someone is active, which keeps their sign-in going."""
        with self._lock:
            hosts = [(sid, who) for sid, who in self._identities.items() if who.session_id]
        refused: list[tuple[str, Refused]] = []
        with self.app.app_context():
            try:
                for sid, who in hosts:
                    try:
                        keep_signed_in(who)
                    except Refused as why:
                        refused.append((sid, why))
                db.session.commit()  # the sign-ins kept going
            except Exception:
                db.session.rollback()
                log.exception("looking at the hosts' sign-ins failed")
            for sid, reason in refused:
                refuse(sid, "connect", reason)

    def _recheck(self, matching: list[tuple[str, Identity]]) -> None:
        refused: list[tuple[str, Refused]] = []
        for sid, who in matching:
            try:
                recheck(who)
            except Refused as why:
                refused.append((sid, why))
            except Exception:
                log.exception("checking socket %s again failed", sid)
        # Closing a socket runs its disconnect handler, which writes: end this read first.
        db.session.rollback()
        for sid, reason in refused:
            refuse(sid, "connect", reason)


def sockets(app: Flask | None = None) -> Sockets:
    found = (app or current_app).extensions["sockets"]
    assert isinstance(found, Sockets)
    return found


def _calls_changed(appointment_ids: set[int]) -> None:
    registry = current_app.extensions.get("sockets")
    if isinstance(registry, Sockets):
        registry.calls_changed(appointment_ids)


roster.watch(_calls_changed)


def _disconnect(sid: str) -> None:
    socketio.server.disconnect(sid, namespace="/")


def refuse(sid: str, event: str, err: Refused) -> None:
    socketio.emit("error", {"code": err.code, "message": err.message, "event": event}, to=sid)
    if err.close:
        _disconnect(sid)


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
    bad = problem(data)  # NUL, lone surrogates, deep nesting: as for HTTP (portal/inputs.py)
    if bad:
        raise Refused("bad_request", bad)
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        raise Refused("bad_request", _("The message is malformed: %(detail)s",
                                       detail=json.dumps(exc.messages)[:300])) from None
    return loaded


# --- what a handler says, once its transaction has committed --------------------------------

def later(callback: Callable[[], None]) -> None:
    """Run callback once the handler's transaction has committed (it may read the database);
    never if it rolls back."""
    after_commit(callback)


def send(event: str, data: Any, *, to: str, skip_sid: str | None = None) -> None:
    later(partial(socketio.emit, event, data, to=to, skip_sid=skip_sid))


def enter(sid: str, room: str) -> None:
    later(partial(join_room, room, sid=sid, namespace="/"))


def leave(sid: str, room: str) -> None:
    later(partial(leave_room, room, sid=sid, namespace="/"))


# --- the transaction boundary ---------------------------------------------------------------

@contextmanager
def _transaction(sid: str, name: str) -> Iterator[None]:
    """Commit what the handler changed (then its messages go out), or roll all of it back and
    tell the sender why."""
    try:
        yield
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        refuse(sid, name, _refusal(exc, name, sid))


def _refusal(exc: Exception, name: str, sid: str) -> Refused:
    """What the sender of a failed event is told: the refusal, the domain's reason, or that
    the fault is ours (logged with its traceback)."""
    if isinstance(exc, Refused | DomainError):
        log.info("refused %s from %s: %s", name, sid, exc.code)
        return exc if isinstance(exc, Refused) else Refused(exc.code, exc.message)
    log.error("signaling event %s failed", name, exc_info=exc)
    return Refused("internal", _("Something went wrong on our side."))


def event(name: str, schema: Schema) -> Callable[[Handler], Handler]:
    """Register a Socket.IO handler that gets (sid, identity, validated payload)."""

    def register(handler: Handler) -> Handler:
        @wraps(handler)
        def on_event(data: Any = None, *extra: Any) -> None:
            sid: str = request.sid  # type: ignore[attr-defined]
            identity = sockets().identity_of(sid)
            with _transaction(sid, name):
                if identity is None:
                    raise Refused("unauthorized", _("Connect again."), close=True)
                if not (identity.events.take() and identity.address_events.take()):
                    raise Refused("rate_limited", _("Too many messages; slow down."))
                payload = check_payload(data, schema)
                if identity.due():
                    recheck(identity)
                handler(sid, identity, payload)

        socketio.on_event(name, on_event)
        return handler

    return register


def _within(setting: str, *key: str, count: bool = True) -> bool:
    """Below the limit `setting` (a Flask-Limiter string such as "60 per minute") for `key`,
    counting this attempt unless `count` is false. In Flask-Limiter's storage
    (PORTAL_RATELIMIT_STORAGE_URI): shared by the workers when that is Redis."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return True
    item = parse(current_app.config[setting])
    strategy = limiter.limiter
    return strategy.hit(item, "socket", *key) if count else strategy.test(item, "socket", *key)


def _identify(auth: Any, address: str) -> Identity:
    """Who connects, within the limits per address: connects, and invites that do not work
    (guessing); the invite check itself is skipped once the address is over its limit."""
    if not _within("SOCKET_CONNECT_RATE_LIMIT", "connect", address):
        raise Refused("rate_limited", _("Too many connections; wait a minute."))
    bad = problem(auth)
    if bad:
        raise Refused("bad_request", bad)
    with_invite = isinstance(auth, dict) and "invite" in auth
    if with_invite and not _within("INVITE_RATE_LIMIT", "invite", address, count=False):
        raise Refused("rate_limited", _("Too many attempts; wait a minute."))
    try:
        return identify(auth, clock(), address)
    except Refused as refused:
        if with_invite and refused.code in ("unauthorized", "bad_request"):
            _within("INVITE_RATE_LIMIT", "invite", address)
        raise


def on_connect(welcome: Callable[[str, Identity], None]) -> Callable[..., None]:
    """The connect handler: identify the socket (or refuse the connection), then welcome()
    in one transaction."""

    def connect(auth: Any = None) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        registry = sockets()
        if registry.identity_of(sid) is not None:
            return  # an event the client named "connect": a socket is identified once only
        try:
            identity = _identify(auth, request.remote_addr or "")
            registry.bind(sid, identity)
        except Exception as exc:
            db.session.rollback()
            if not isinstance(exc, Refused):
                log.exception("identifying a socket failed")
            err = exc if isinstance(exc, Refused) else Refused(
                "internal", _("Something went wrong on our side."))
            raise ConnectionRefusedError(err.message, {"code": err.code,
                                                       "message": err.message}) from None
        with _transaction(sid, "connect"):
            welcome(sid, identity)

    socketio.on_event("connect", connect)
    return connect


def on_disconnect(gone: Callable[[str, Identity], None]) -> Callable[..., None]:
    """The disconnect handler: gone() in one transaction, for identified sockets only (in a
    thread of its own when the close happened inside another handler)."""

    def disconnect(*_args: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]
        if socketio.server.manager.is_connected(sid, "/"):
            return  # an event the client named "disconnect", not a real one
        identity = sockets().unbind(sid)
        if identity is None:
            return
        if db.session.registry.has():
            # Nested in another handler: engine.io closes a socket whose pong is late inside
            # whatever emits to it. That handler's session and thread are not ours to hold
            # while this write waits for the database.
            in_background(lambda: gone(sid, identity))
            return
        try:
            gone(sid, identity)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("recording that socket %s went away failed", sid)

    socketio.on_event("disconnect", disconnect)
    return disconnect


def in_background(task: Callable[[], None], *, delay: float = 0.0) -> None:
    """Run task later in its own thread and transaction (a timer, say)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        if delay:
            socketio.sleep(delay)
        with app.app_context():
            try:
                task()
                db.session.commit()
            except Exception:  # a background thread: log, never die noisily
                db.session.rollback()
                log.exception("background task %s failed", getattr(task, "__name__", task))

    socketio.start_background_task(run)
