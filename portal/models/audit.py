"""The audit trail: append-only events, each hash-chained to the one before."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, UTCDateTime

GENESIS_DIGEST = "0" * 64


class AuditEvent(Base):
    """Who did what to which object, when and from where.

    digest = SHA-256(prev_digest ‖ canonical JSON of this row's content); see audit.chain.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Position in the chain, 1, 2, 3 …; a gap means a removed row.
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: "user", "guest", "api_token", "system" or "anonymous".
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    #: Dotted verb, e.g. "appointment.created", "auth.login_failed".
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    #: Canonical JSON (sorted keys); stored as text so the hashed bytes are exactly these.
    details: Mapped[str] = mapped_column(Text, default="{}")
    prev_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last sequence number and digest. Appends lock it, so the chain never forks,
    and it exposes a removed last row."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str] = mapped_column(String(64), default=GENESIS_DIGEST)
