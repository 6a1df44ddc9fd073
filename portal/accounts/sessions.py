"""Sessions kept on the server (Flask-Session): the cookie carries only a random id and the
data stays in the portal's database (`sessions`, made by Alembic) or, with
PORTAL_SESSION_REDIS_URL, in Redis. Ending a session deletes it, so a copied cookie stops
working at once.

A staff sign-in ends PORTAL_IDLE_MINUTES after its last activity (a page or form, the
"stay signed in" button, or being in a call with someone) and PORTAL_SESSION_HOURS after it was
made, however active it was. Times come from the app's clock.

The SQL store reads on a connection of its own (no request waits for a session read) and writes
through the request's database session without ever committing a request's work: Flask saves
the session after database.commit_request, so the write is the only change left to commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from flask import Flask, Request, Response, current_app, request, session
from flask_babel import LazyString
from flask_babel import gettext as _
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from redis import Redis
from sqlalchemy import delete, insert, select, update

from portal.clock import clock
from portal.config import redis_pool_size
from portal.database import read_only
from portal.extensions import db
from portal.models import StoredSession

#: Session keys: when the sign-in was made, and the last activity (POSIX seconds, app clock).
SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"
#: The request environ key under which the id of the session read from the store is kept
#: (a socket's later events get Flask-SocketIO's copy of the session, which has no id).
_ENVIRON_ID = "samtale.session_id"
#: How long an ended sign-in's record is kept (never longer than this past its absolute end).
KEPT_AFTER_END = timedelta(hours=1)
#: How long a session nobody signed in to is kept (Flask-WTF's CSRF tokens last an hour).
ANONYMOUS_LIFETIME = timedelta(hours=1)
#: Page requests store their activity at most this often (touch_every()).
TOUCH_SECONDS = 30
#: idle.js warns this long before an idle sign-in ends (or half the idle time, if shorter).
WARN_SECONDS = 120


class PortalSession(ServerSideSession):
    """A session that knows whether it came from the store (saving it then only updates the
    stored one, never brings back one ended meanwhile) and which ids it left behind."""

    stored = False
    ended_ids: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended_ids = []


class _PortalStore(ServerSideSessionInterface):
    """What the portal adds to a Flask-Session store: one read per socket, a new id that drops
    the old one only once the request has committed, no revival of an ended session."""

    session_class = PortalSession

    def open_session(self, app: Flask, request: Request) -> PortalSession:
        if "saved_session" in request.environ:
            # A later event of a socket: Flask-SocketIO puts the copy it made at connect in
            # place of whatever this returns, so the store is not read for every event.
            return PortalSession(sid=request.environ.get(_ENVIRON_ID))
        opened = super().open_session(app, request)
        assert isinstance(opened, PortalSession)
        opened.stored = opened.sid == request.cookies.get(self.get_cookie_name(app))
        if opened.stored:
            request.environ[_ENVIRON_ID] = opened.sid
        return opened

    def regenerate(self, session: ServerSideSession) -> None:
        """A new id (at sign-in and sign-out); the old record goes when the response is saved."""
        assert isinstance(session, PortalSession)
        if session.stored and session.sid:
            session.ended_ids.append(self._get_store_id(session.sid))
        session.sid = self._generate_sid(self.sid_length)
        session.stored = False
        session.modified = True

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        assert isinstance(session, PortalSession)
        for store_id in session.ended_ids:
            self._delete_session(store_id)
        super().save_session(app, session, response)

    def expiry(self, data: Mapping[str, Any]) -> datetime:
        """When the stored record may go: a while after the sign-in's absolute end (so that
        the next request can still say why it ended; end_expired_sign_in enforces the end),
        else, nobody signed in (a form's CSRF token), an hour: as long as that token lasts, so
        that visits without signing in leave no rows for long."""
        lifetime = current_app.permanent_session_lifetime
        made = data.get(SIGNED_IN_AT)
        if isinstance(made, int | float):
            return datetime.fromtimestamp(made, UTC) + lifetime + KEPT_AFTER_END
        return clock().now() + min(lifetime, ANONYMOUS_LIFETIME)

    # For the socket layer: a session by its id, outside any request that carries it.
    def load(self, sid: str) -> dict[str, Any] | None:
        found = self._retrieve_session_data(self._get_store_id(sid))
        return dict(found) if found is not None else None

    def update(self, sid: str, data: Mapping[str, Any]) -> None:
        """Write data to the session if it still exists (never brings back an ended one)."""
        raise NotImplementedError


class SqlStore(_PortalStore):
    """Flask-Session's SQL store on the portal's own `sessions` table and transaction, with
    aware times from the app's clock."""

    ttl = True  # expired rows are deleted as new sessions are made, not by a CLI command

    def _retrieve_session_data(self, store_id: str) -> dict[str, Any] | None:
        # Read apart from the request's transaction: opening the session must not begin it
        # (on SQLite that would take the write lock for the whole request).
        with read_only() as connection:
            row = connection.execute(select(StoredSession.data, StoredSession.expiry).where(
                StoredSession.session_id == store_id)).first()
        if row is None or row.expiry <= clock().now():
            return None
        decoded: dict[str, Any] = self.serializer.decode(row.data)
        return decoded

    def _delete_session(self, store_id: str) -> None:
        db.session.execute(delete(StoredSession).where(StoredSession.session_id == store_id))

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession,
                        store_id: str) -> None:
        assert isinstance(session, PortalSession)
        data = self.serializer.encode(session)
        if session.stored:
            self._write(store_id, data, self.expiry(session))
        else:
            now = clock().now()
            db.session.execute(delete(StoredSession).where(StoredSession.expiry <= now))
            db.session.execute(insert(StoredSession).values(
                session_id=store_id, data=data, expiry=self.expiry(session)))

    def _write(self, store_id: str, data: bytes, expiry: datetime) -> None:
        db.session.execute(update(StoredSession).where(StoredSession.session_id == store_id)
                           .values(data=data, expiry=expiry))

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if db.session.new or db.session.dirty or db.session.deleted:
            # Saved after commit_request: anything left would be a view's work, not ours.
            raise RuntimeError("the session is saved before the request has committed")
        super().save_session(app, session, response)
        db.session.commit()

    def update(self, sid: str, data: Mapping[str, Any]) -> None:
        self._write(self._get_store_id(sid), self.serializer.encode(data),
                    self.expiry(data))

    def _delete_expired_sessions(self) -> None:
        db.session.execute(delete(StoredSession).where(StoredSession.expiry <= clock().now()))


class RedisStore(_PortalStore, RedisSessionInterface):
    """Flask-Session's Redis store (several web workers), each key expiring with its sign-in."""

    client: Redis

    def _ttl(self, data: Mapping[str, Any]) -> int:
        return max(1, int((self.expiry(data) - clock().now()).total_seconds()))

    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession,
                        store_id: str) -> None:
        assert isinstance(session, PortalSession)
        self.client.set(store_id, self.serializer.encode(session),
                        ex=self._ttl(session), xx=session.stored)

    def update(self, sid: str, data: Mapping[str, Any]) -> None:
        self.client.set(self._get_store_id(sid), self.serializer.encode(data),
                        ex=self._ttl(data), xx=True)


def init_app(app: Flask) -> None:
    """Sessions in the database, or in Redis when PORTAL_SESSION_REDIS_URL is set."""
    if app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_NAME"] == "session":
        # __Host-: the browser keeps it only if Secure, without Domain, for Path=/ (no
        # subdomain can set or shadow it); browsers refuse the prefix on a cookie not Secure.
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
    if app.config["IDLE_MINUTES"] < 1:
        raise RuntimeError("PORTAL_IDLE_MINUTES must be at least 1")
    common = {"key_prefix": app.config.get("SESSION_KEY_PREFIX", "session:"),
              "permanent": app.config["SESSION_PERMANENT"]}
    url = app.config["SESSION_REDIS_URL"]
    store: _PortalStore
    if url:
        client = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                max_connections=redis_pool_size(app.config))
        store = RedisStore(app, client=client, **common)
    else:
        store = SqlStore(app, **common)
    # Flask-Login flashes lazily translated text: stored as the text it is now.
    store.serializer.encoder = msgspec.msgpack.Encoder(enc_hook=_as_text)
    app.session_interface = store


def _as_text(value: Any) -> str:
    if isinstance(value, LazyString):
        return str(value)
    raise TypeError(f"a session cannot hold {type(value).__name__}")


def _store() -> _PortalStore:
    found = current_app.session_interface
    assert isinstance(found, _PortalStore)
    return found


# --- the rules -------------------------------------------------------------------------------

def idle_seconds() -> float:
    return float(current_app.config["IDLE_MINUTES"]) * 60


def warn_seconds() -> int:
    return int(min(WARN_SECONDS, idle_seconds() / 2))


def why_ended(data: Mapping[str, Any]) -> str | None:
    """Why a signed-in session has ended ("lifetime", "idle"), or None while it lasts."""
    now = clock().now().timestamp()
    made, seen = data.get(SIGNED_IN_AT), data.get(SEEN_AT)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if not isinstance(made, int | float) or now - made > lifetime:
        return "lifetime"
    if not isinstance(seen, int | float) or now - seen > idle_seconds():
        return "idle"
    return None


def seconds_left(data: Mapping[str, Any]) -> float:
    """Until the sign-in ends, whichever end comes first (0 once it has)."""
    if why_ended(data) is not None:
        return 0.0
    now = clock().now().timestamp()
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    return max(0.0, min(data[SIGNED_IN_AT] + lifetime, data[SEEN_AT] + idle_seconds()) - now)


def ended_message(reason: str) -> str:
    if reason == "idle":
        return _("You were signed out after %(n)d minutes without activity.",
                 n=current_app.config["IDLE_MINUTES"])
    if reason == "lifetime":
        return _("Your sign-in has expired. Please sign in again.")
    return _("Please sign in again.")


# --- the current request's session -----------------------------------------------------------

def begin() -> None:
    """At sign-in: a new session id (the one the browser had before is dropped: no fixation),
    and both clocks start now."""
    _store().regenerate(session)
    now = clock().now().timestamp()
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now


def touch(*, every: float = 0) -> None:
    """This request is activity. Stored only if the last activity stored is `every` seconds
    old or more: each stored touch is a write, and a page read should not need one."""
    now = clock().now().timestamp()
    seen = session.get(SEEN_AT)
    if isinstance(seen, int | float) and 0 <= now - seen < every:
        return
    session[SEEN_AT] = now


def touch_every() -> float:
    """How seldom page requests store their activity: the idle end then comes at most this
    much early (30 s of 15 minutes; a thirtieth of shorter idle times)."""
    return min(TOUCH_SECONDS, idle_seconds() / 30)


def end() -> str | None:
    """End the current session where it is stored (a copy of its cookie stops working); its
    flashes go on in a new, signed-out one. Returns the ended session's id."""
    ended = current_id()
    flashes = session.get("_flashes")
    session.clear()
    if flashes:
        session["_flashes"] = flashes
    _store().regenerate(session)
    return ended


def current_id() -> str | None:
    """The id of the stored session this request (or socket) came with, if any."""
    found = request.environ.get(_ENVIRON_ID)
    return found if isinstance(found, str) else None


# --- a session by its id (the socket layer) --------------------------------------------------

def why_ended_by_id(sid: str) -> str | None:
    """Why the stored session `sid` no longer signs anyone in ("signed_out" when it is gone),
    or None while it does."""
    data = _store().load(sid)
    if data is None or "_user_id" not in data:
        return "signed_out"
    return why_ended(data)


def touch_by_id(sid: str) -> None:
    """Activity of session `sid` seen elsewhere (a call): its idle time starts again. In the
    database, it is written when the caller's transaction commits."""
    data = _store().load(sid)
    if data is not None and why_ended(data) is None:
        data[SEEN_AT] = clock().now().timestamp()
        _store().update(sid, data)
