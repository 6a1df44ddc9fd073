"""Writing and checking the audit trail. Every state-changing operation calls record()."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context, request
from flask_login import current_user
from sqlalchemy import select, update

from portal.audit.chain import Verdict, canonical_details, digest_of, verify_rows
from portal.extensions import db
from portal.models import AuditEvent, AuditHead, utcnow


@dataclass(frozen=True)
class Actor:
    """Who an audit event is attributed to."""

    type: str
    id: str | None = None


SYSTEM = Actor("system")


def current_actor() -> Actor:
    """The asker of the current request: API token, staff user, guest, or anonymous."""
    if not has_request_context():
        return SYSTEM
    token = g.get("api_token")
    if token is not None:
        return Actor("api_token", str(token.id))
    if current_user.is_authenticated:
        return Actor("user", str(current_user.id))
    guest = g.get("guest_participant")
    if guest is not None:
        return Actor("guest", str(guest.id))
    return Actor("anonymous")


def record(
    action: str,
    *,
    object_type: str | None = None,
    object_id: int | str | None = None,
    details: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> AuditEvent:
    """Append one event to the chain in the current transaction (committed with the change)."""
    actor = actor or current_actor()
    # The UPDATE locks the head row (a write lock on SQLite), so appends never fork the chain.
    seq, prev_digest = db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.digest)
        .execution_options(synchronize_session=False)
    ).one()
    event = AuditEvent(
        seq=seq,
        created_at=utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ip=request.remote_addr if has_request_context() else None,
        details=canonical_details(details),
        prev_digest=prev_digest,
    )
    event.digest = digest_of(prev_digest, event)
    db.session.add(event)
    db.session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(digest=event.digest)
        .execution_options(synchronize_session=False)
    )
    return event


def verify() -> Verdict:
    """Check the whole chain from the first row to the head."""
    # The head first, then the rows up to it: events appended while the walk runs (committed
    # after the head was read) are not mistaken for rows missing at the end.
    head = db.session.get(AuditHead, 1, populate_existing=True)
    query = select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)
    if head is not None:
        query = query.where(AuditEvent.seq <= head.seq)
    rows = db.session.scalars(query)
    try:
        return verify_rows(rows, head)
    finally:
        rows.close()  # a break ends the walk early; free the (server-side) cursor now


def latest(limit: int = 100, before_seq: int | None = None) -> list[AuditEvent]:
    """Newest events first, for the administrator's list."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(db.session.scalars(query))
