"""Failed sign-ins per account, across addresses (ASVS 2.2.1). After LOGIN_THROTTLE_AFTER
failures in a row each attempt must wait: 30 s, doubling with every further failure, at most
LOGIN_THROTTLE_MAX_SECONDS. Attempts during the wait are refused without looking at the
password, and do not lengthen it, so the real user gets in once the wait is over: a soft
lock that an attacker cannot make permanent by trying faster.

Keyed by the SHA-256 of the normalised address, so unknown addresses are throttled exactly as
real ones (no account enumeration) and no stranger's address is stored."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from portal.clock import clock
from portal.extensions import db
from portal.models import LoginThrottle

FIRST_WAIT_SECONDS = 30
#: A run of failures older than this is forgotten (and its row removed).
FORGET_AFTER = timedelta(days=1)


def key_for(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


def wait_until(key: str) -> datetime | None:
    """When attempts for this account may be checked again, if that is still to come."""
    row = db.session.get(LoginThrottle, key)
    if row is None or row.wait_until is None or row.wait_until <= clock().now():
        return None
    return row.wait_until


def failed(key: str) -> datetime | None:
    """Count a failure; returns the wait it starts, if any."""
    now = clock().now()
    db.session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_failure_at < now - FORGET_AFTER))
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # Two failures at once must not both insert the row: make it, then lock it.
    db.session.execute(insert(LoginThrottle).values(
        key=key, failures=0, last_failure_at=now).on_conflict_do_nothing())
    row = db.session.scalars(select(LoginThrottle).where(LoginThrottle.key == key)
                             .with_for_update().execution_options(populate_existing=True)).one()
    row.failures += 1
    row.last_failure_at = now
    free = current_app.config["LOGIN_THROTTLE_AFTER"]
    if row.failures < free:
        return None
    seconds = min(FIRST_WAIT_SECONDS * 2 ** min(row.failures - free, 20),
                  current_app.config["LOGIN_THROTTLE_MAX_SECONDS"])
    row.wait_until = now + timedelta(seconds=seconds)
    return row.wait_until


def succeeded(key: str) -> None:
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
