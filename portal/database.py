"""Engine settings per backend. SQLite gets WAL, foreign keys and serialised writers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response
from sqlalchemy import Connection, Engine, event

from portal.extensions import db
from portal.session import AFTER_COMMIT


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Let SQLAlchemy's "begin" hook, not pysqlite, decide when transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()


#: Execution option of a connection that only reads (see read_only()).
READ_ONLY = "samtale_read_only"


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: two requests that read then write wait for each
    # other instead of one failing with "database is locked" half-way. A read-only connection
    # begins a deferred read, which in WAL mode waits for no writer.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)


def init_app(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    app.after_request(commit_request)


def commit_request(response: Response) -> Response:
    """The one commit of a request, once the view has answered. An error that leaves a view
    is answered by an error handler, which rolls back first; a view that answers a DomainError
    itself (next to a form, say) wraps the call that failed in all_or_nothing()."""
    db.session.commit()
    return response


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
