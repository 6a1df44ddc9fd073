"""The outbox: the e-mail messages the portal sends guests (invitations, updates, reminders,
cancellations), queued in the transaction of the change that causes them; and each guest's
invite token, sealed, kept only as long as a message may still need to carry the link."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.appointment import Participant
from portal.models.base import Base, UTCDateTime, utcnow


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class MessageKind(enum.StrEnum):
    INVITATION = "invitation"
    UPDATE = "update"  # the appointment moved (same calendar UID, higher SEQUENCE)
    REMINDER = "reminder"
    CANCELLATION = "cancellation"  # METHOD:CANCEL: cancelled, or the guest's link stopped


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # claimed by a sender until lease_until
    SENT = "sent"
    FAILED = "failed"  # tried; tried again at next_try_at (or given up: next_try_at None)
    SKIPPED = "skipped"  # no longer true when its turn came (link stopped, appointment over)


class OutboxMessage(Base):
    """One message to one guest. What it says is written when it is sent, from the rows as they
    are then; what it is (kind, calendar SEQUENCE) is fixed when it is queued."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind))
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus), index=True)
    #: The calendar entry's SEQUENCE when queued (raised on every change of the guest's entry).
    sequence: Mapped[int] = mapped_column(default=0)
    #: Makes a planned message unique (a reminder: participant, offset and start), else None.
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    attempts: Mapped[int] = mapped_column(default=0)
    #: The current attempt's id (random); marked sent only by the attempt that holds it.
    attempt_id: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    #: Why the last attempt failed or the message was skipped (no address, no link).
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    participant: Mapped[Participant] = relationship()


class LinkSecret(Base):
    """A guest's invite token sealed (AES-256-GCM, a key outside the database) so that a later
    message (update, reminder) can carry a working link. Destroyed when the link stops, is
    replaced, or its window closes: a dump of the database never holds a usable link."""

    __tablename__ = "link_secrets"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    sealed: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
