"""Engine settings per backend. SQLite gets WAL, foreign keys and serialised writers.

On SQLite a transaction that may write begins IMMEDIATE (it takes the write lock up front, so
writers queue instead of failing half-way). A GET or HEAD request reads in a deferred
transaction, which in WAL mode neither waits for nor holds up a writer; what such a request
writes (its session, an audit entry) it writes after writing() or commit_request has ended the
read, in an IMMEDIATE transaction of its own. A write left inside the read is still safe:
SQLite refuses it (SQLITE_BUSY_SNAPSHOT) if another writer came first, and a busy database is
answered 503 with Retry-After (errorpages.py), never 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, g, has_app_context, request
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError

from portal.extensions import db
from portal.session import AFTER_COMMIT


def _sqlite_connect(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        # Let SQLAlchemy's "begin" hook, not pysqlite, decide when transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # How long a writer waits for the write lock before the request is answered 503.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return connect


#: Execution option of a connection that only reads (see read_only()).
READ_ONLY = "samtale_read_only"
#: Set on `g` while a GET or HEAD request is still only reading (see begin_request()).
_READING = "samtale_reading"


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: two requests that read then write wait for each
    # other instead of one failing with "database is locked" half-way. A read begins
    # deferred, which in WAL mode waits for no writer.
    if connection.get_execution_options().get(READ_ONLY) or (
            has_app_context() and g.get(_READING)):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def configure_engine(engine: Engine, busy_timeout_ms: int = 15000) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect(busy_timeout_ms))
        event.listen(engine, "begin", _sqlite_begin)


def init_app(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    app.before_request(begin_request)
    app.after_request(commit_request)


def begin_request() -> None:
    """Before every HTTP request (not socket events: they run no before_request): a GET or
    HEAD reads in a deferred transaction until it says it writes."""
    if request.method in ("GET", "HEAD"):
        read_from_here()


def read_from_here() -> None:
    """What this request still does only reads (an error page): its transactions begin
    deferred, and so wait for no writer."""
    g.setdefault(_READING, True)


def commit_request(response: Response) -> Response:
    """The one commit of a request, once the view has answered. An error that leaves a view
    is answered by an error handler, which rolls back first; a view that answers a DomainError
    itself (next to a form, say) wraps the call that failed in all_or_nothing().
    What comes after (the session's save) writes in a transaction of its own."""
    db.session.commit()
    g.pop(_READING, None)
    return response


def is_busy(error: BaseException | None) -> bool:
    """Whether an error means "another writer holds SQLite's lock" (try again shortly)."""
    if not isinstance(error, OperationalError):
        return False
    original = error.orig
    return isinstance(original, sqlite3.OperationalError) and any(
        word in str(original) for word in ("database is locked", "database is busy"))


def writing() -> None:
    """A request that read so far is about to write (an audit entry on a GET, say): end its
    read transaction so that the write begins one of its own, which on SQLite waits its turn
    for the write lock (a deferred read cannot wait: it fails at once if a writer came
    first). Objects read so far are read again, under the write lock, when next used.
    Nothing may be waiting to be written."""
    if not g.pop(_READING, None):
        return
    session = db.session
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("unwritten changes in a read transaction")
    session.commit()


@contextmanager
def outside_transaction() -> Iterator[None]:
    """Slow work (a password hash) with no transaction open: on SQLite every transaction holds
    the write lock, so one held around a hash would make every other request wait for it.
    What the request read so far ends here; the next query begins a new, short transaction.
    Nothing may be waiting to be written."""
    session = db.session
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("unwritten changes before work outside the transaction")
    session.commit()
    yield


@contextmanager
def all_or_nothing() -> Iterator[None]:
    """A savepoint: if the block raises, none of its changes stay (the request goes on)."""
    with db.session.begin_nested():
        yield


@contextmanager
def read_only() -> Iterator[Connection]:
    """A connection of its own for a quick read that must neither wait for nor hold up the
    current transaction (nor start one: a request's transaction starts at its first query)."""
    with db.engine.connect().execution_options(**{READ_ONLY: True}) as connection:
        yield connection


def after_commit(callback: Callable[[], None]) -> None:
    """Run callback once the current transaction has committed (never if it rolls back):
    tell the sockets about a change only when the change is really there. It runs after the
    commit has finished (portal/session.py), so it may read the database."""
    db.session.info.setdefault(AFTER_COMMIT, []).append(callback)
