"""Recordings of a call, their tracks, and every consent decision (append-only)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from portal.models.appointment import Appointment, Participant, _enum
from portal.models.base import Base, UTCDateTime, utcnow


class RecordingStatus(enum.StrEnum):
    REQUESTED = "requested"  # the host asked; waiting for everyone's consent
    RECORDING = "recording"
    PAUSED = "paused"  # someone new in the call has not answered yet
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"  # the recorder died; readable up to its last sealed chunk
    DECLINED = "declined"  # someone said no before anything was recorded
    CANCELLED = "cancelled"  # the host stopped, or the call ended, before it started
    DELETED = "deleted"  # data key destroyed, files removed


ACTIVE = (RecordingStatus.REQUESTED, RecordingStatus.RECORDING, RecordingStatus.PAUSED)
STORED = (RecordingStatus.COMPLETE, RecordingStatus.INCOMPLETE)


class Decision(enum.StrEnum):
    GRANTED = "granted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    ACKNOWLEDGED = "acknowledged"  # policy notice: the notice was read before joining


class Recording(Base):
    """One recording of an appointment's call; its media lives in encrypted files."""

    __tablename__ = "recordings"

    #: Random, 32 hex digits; bound into every chunk's associated data.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    status: Mapped[RecordingStatus] = mapped_column(_enum(RecordingStatus))
    #: Version of the consent or notice wording that was shown.
    wording_version: Mapped[str] = mapped_column(String(40))
    #: The data key, wrapped by master key `key_id`; both None once crypto-shredded.
    key_id: Mapped[str | None] = mapped_column(String(40))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    #: The recorder process writing it says it is alive; a stale stamp means it died.
    alive_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: SHA-256 of the signed manifest file, hex.
    manifest_digest: Mapped[str | None] = mapped_column(String(64))

    appointment: Mapped[Appointment] = relationship()
    tracks: Mapped[list[RecordingTrack]] = relationship(
        back_populates="recording", order_by="RecordingTrack.id", cascade="all, delete-orphan")


class RecordingTrack(Base):
    """One participant's published audio and video: one encrypted WebM/Matroska file."""

    __tablename__ = "recording_tracks"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"))
    #: File name stem inside the recording's directory, e.g. "p12-1".
    name: Mapped[str] = mapped_column(String(40))
    #: "passthrough" (stored as received) or "transcode" (with the reason in `details`);
    #: "failed": the negotiation failed, there is no file (the next offer reuses the row).
    mode: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    video_frames: Mapped[int] = mapped_column(Integer, default=0)
    audio_frames: Mapped[int] = mapped_column(Integer, default=0)
    #: Codecs, file summary (chunks, chain head, sizes) as JSON.
    details: Mapped[str] = mapped_column(Text, default="{}")

    recording: Mapped[Recording] = relationship(back_populates="tracks")
    participant: Mapped[Participant] = relationship()


class Playback(Base):
    """One person's reading of one track: opened by their first read of any byte range (which
    writes the audit event named here), extended by each later read within a few minutes.
    `ranges` keeps every byte range served, merged, so the trail says what was disclosed."""

    __tablename__ = "playbacks"

    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("recording_tracks.id"), index=True)
    #: Who reads: the audit actor (type and id).
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    #: A download (Content-Disposition: attachment) rather than playing in the page.
    download: Mapped[bool] = mapped_column(default=False)
    #: The audit event that opened it ("recording.played" or "recording.downloaded").
    audit_seq: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_read_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: How many requests it served.
    reads: Mapped[int] = mapped_column(Integer, default=0)
    #: Byte ranges served, merged and inclusive, as JSON: [[0, 1023], [50000, 99999]].
    ranges: Mapped[str] = mapped_column(Text, default="[]")

    track: Mapped[RecordingTrack] = relationship()


class Consent(Base):
    """One decision of one participant; never changed or removed (a withdrawal is a new row)."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    #: None for a notice acknowledged before joining (it covers every recording).
    recording_id: Mapped[str | None] = mapped_column(ForeignKey("recordings.id"), index=True)
    decision: Mapped[Decision] = mapped_column(_enum(Decision))
    wording_version: Mapped[str] = mapped_column(String(40))
    #: The exact text shown, in the language it was shown in.
    wording: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(300))

    participant: Mapped[Participant] = relationship()


class AppendOnlyError(RuntimeError):
    """Something tried to change or delete a consent decision."""


@event.listens_for(Session, "before_flush")
def _consents_are_append_only(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Consent) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyError("consent decisions are append-only")
