"""Appointments (consults and hearings) and the people invited to them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow
from portal.models.user import User


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Kind(enum.StrEnum):
    CONSULT = "consult"
    HEARING = "hearing"


class Status(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class RecordingPolicy(enum.StrEnum):
    """off: never recorded; consent: only if every participant agrees; notice: by order."""

    OFF = "off"
    CONSENT = "consent"
    NOTICE = "notice"


class ParticipantRole(enum.StrEnum):
    HOST = "host"
    PATIENT = "patient"
    CLIENT = "client"
    COUNSEL = "counsel"
    PARTY = "party"
    WITNESS = "witness"
    INTERPRETER = "interpreter"
    OBSERVER = "observer"


GUEST_ROLES = tuple(r for r in ParticipantRole if r is not ParticipantRole.HOST)


class LobbyState(enum.StrEnum):
    INVITED = "invited"
    WAITING = "waiting"
    ADMITTED = "admitted"
    DENIED = "denied"
    LEFT = "left"


class Appointment(Base):
    """One booked consult or hearing, owned by one host."""

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[Kind] = mapped_column(_enum(Kind))
    title: Mapped[str] = mapped_column(String(200))
    host_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: Start and end, UTC.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.SCHEDULED)
    recording_policy: Mapped[RecordingPolicy] = mapped_column(_enum(RecordingPolicy))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: A call through Janus (a hearing): the Janus instance its room lives on, pinned when the
    #: first participant joins (rooms live in one instance's memory).
    janus_url: Mapped[str | None] = mapped_column(String(200))

    host: Mapped[User] = relationship()
    participants: Mapped[list[Participant]] = relationship(
        back_populates="appointment", order_by="Participant.id", cascade="all, delete-orphan"
    )

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

    @property
    def guests(self) -> list[Participant]:
        return [p for p in self.participants if p.role is not ParticipantRole.HOST]


class Participant(Base):
    """Someone in an appointment: the host, or a guest who joins with an invite link."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[ParticipantRole] = mapped_column(_enum(ParticipantRole))
    #: Guest's e-mail address for the invitation; optional.
    email: Mapped[str | None] = mapped_column(String(254))
    #: For the host's own row: the staff account.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: SHA-256 of the invite token, hex; the token is shown once and never stored.
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    invite_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lobby_state: Mapped[LobbyState] = mapped_column(_enum(LobbyState), default=LobbyState.INVITED)
    #: Socket.IO id of the one connection that waits in the lobby or sits in the call.
    presence_sid: Mapped[str | None] = mapped_column(String(64))
    #: When the guest started waiting in the lobby.
    waiting_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Microphone and camera as the participant last said (others show "muted").
    audio_on: Mapped[bool] = mapped_column(default=True, server_default=true())
    video_on: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: When the participant entered the call; None while not in it.
    joined_call_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When that connection dropped; the participant may come back within the grace period.
    away_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    appointment: Mapped[Appointment] = relationship(back_populates="participants")

    @property
    def invite_revoked(self) -> bool:
        return self.invite_revoked_at is not None


class RetiredInvite(Base):
    """The hash of an invite link that a new link replaced: it answers "replaced" (410), not
    "unknown" (404)."""

    __tablename__ = "retired_invites"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    participant: Mapped[Participant] = relationship()


class ChatMessage(Base):
    """A line of the call's text chat, kept with the appointment for its participants."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    body: Mapped[str] = mapped_column(String(2000))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    participant: Mapped[Participant] = relationship()
