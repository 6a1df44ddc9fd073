"""Appointments (consults and hearings) and the people invited to them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, false, true
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
    # A hearing's bench and staff (docs/hearings.md): they join with a staff account.
    JUDGE = "judge"
    CLERK = "clerk"
    PANEL = "panel"
    EXPERT = "expert"


#: Roles that join with a staff account (Participant.user_id), not an invite link.
STAFF_ROLES = (ParticipantRole.HOST, ParticipantRole.JUDGE, ParticipantRole.CLERK,
               ParticipantRole.PANEL)
#: Roles with a host's rights in their appointment (admit, call, mute, record, end).
HOST_ROLES = (ParticipantRole.HOST, ParticipantRole.JUDGE, ParticipantRole.CLERK)
GUEST_ROLES = tuple(r for r in ParticipantRole if r not in STAFF_ROLES)


class HearingStage(enum.StrEnum):
    """Where a hearing is in its course; a consult stays OPENING."""

    OPENING = "opening"  # not started: everyone is in the waiting room
    IN_SESSION = "in_session"
    PAUSED = "paused"


class Place(enum.StrEnum):
    """Where an admitted participant of a hearing is."""

    WAITING = "waiting"  # the waiting room (before the start; a witness until called)
    HEARING = "hearing"
    CONSULTATION = "consultation"  # a private room: Participant.consultation_room_id


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
    #: A hearing's course; and its observer link (name-only, revocable, off by default).
    hearing_stage: Mapped[HearingStage] = mapped_column(
        _enum(HearingStage), default=HearingStage.OPENING, server_default="opening")
    observer_link_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: SHA-256 of the observer link's token, hex (the token is shown once, as invites are).
    observer_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Reminders by e-mail before the start (PORTAL_REMINDER_MINUTES); off per appointment.
    reminders: Mapped[bool] = mapped_column(default=True, server_default=true())

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
    #: The language of the e-mail the guest gets ("en", "nb"), and the time zone it states.
    message_language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    #: The guest's calendar entry's SEQUENCE: raised on every change sent to them.
    ics_sequence: Mapped[int] = mapped_column(default=0, server_default="0")
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
    #: An interpreter's principal (a participant of the same appointment) and language.
    interprets_for_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"))
    language: Mapped[str | None] = mapped_column(String(35))
    #: In a hearing: where the participant is, and which private room when there.
    place: Mapped[Place] = mapped_column(_enum(Place), default=Place.WAITING,
                                         server_default="waiting")
    consultation_room_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultation_rooms.id", use_alter=True,
                   name="fk_participants_consultation_room_id_consultation_rooms"))
    #: When the participant confirmed the hearing's declaration (no recording, no photos).
    declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: A host muted this participant and locked it: they cannot unmute themselves.
    mute_locked: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    appointment: Mapped[Appointment] = relationship(back_populates="participants")
    interprets_for: Mapped[Participant | None] = relationship(remote_side=[id])
    #: For counsel: the parties they represent (and for a party, their counsel).
    represents: Mapped[list[Participant]] = relationship(
        secondary="representations", primaryjoin="Participant.id == Representation.counsel_id",
        secondaryjoin="Participant.id == Representation.party_id", order_by="Participant.id",
        viewonly=True)
    #: People who must never receive this participant's video (screening).
    screened_from: Mapped[list[Participant]] = relationship(
        secondary="screenings", primaryjoin="Participant.id == Screening.protected_id",
        secondaryjoin="Participant.id == Screening.hidden_from_id", order_by="Participant.id",
        viewonly=True)

    @property
    def is_host(self) -> bool:
        return self.role in HOST_ROLES

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
    #: "all": everyone in the call; "hosts": the judge and the clerk only (a hearing's bench notes).
    audience: Mapped[str] = mapped_column(String(16), default="all", server_default="all")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    participant: Mapped[Participant] = relationship()
