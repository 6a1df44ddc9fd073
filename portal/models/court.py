"""A hearing's court procedure: who represents whom, screening, private consultation rooms.

docs/hearings.md says what each means for a court's staff; portal/hearing/procedure.py decides
from these rows who receives whom.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.appointment import Participant
from portal.models.base import Base, UTCDateTime, utcnow


class Representation(Base):
    """Counsel represents a party of the same hearing."""

    __tablename__ = "representations"

    counsel_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True,
                                          index=True)


class Screening(Base):
    """The protected participant's video never reaches hidden_from (audio does: the court
    must hear); hidden_from sees a neutral tile instead."""

    __tablename__ = "screenings"

    protected_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True)
    hidden_from_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), primary_key=True,
                                                index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoomKind(enum.StrEnum):
    BENCH = "bench"  # the judge and the panel
    COUNSEL = "counsel"  # counsel with the parties they represent (and other counsel)


class ConsultationRoom(Base):
    """A private room of a hearing: only its members receive each other, never recorded."""

    __tablename__ = "consultation_rooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    kind: Mapped[RoomKind] = mapped_column(
        Enum(RoomKind, native_enum=False, length=16,
             values_callable=lambda e: [m.value for m in e]))
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: None while open; members are the participants whose consultation_room_id is this room.
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    opened_by: Mapped[Participant] = relationship(foreign_keys=[opened_by_id])
