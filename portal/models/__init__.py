"""All models, so that Alembic and the app see one complete metadata."""

from portal.models.appointment import (
    GUEST_ROLES,
    Appointment,
    ChatMessage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    RetiredInvite,
    Status,
)
from portal.models.audit import AuditEvent, AuditHead
from portal.models.base import Base, utcnow
from portal.models.recording import (
    AppendOnlyError,
    Consent,
    Decision,
    Playback,
    Recording,
    RecordingStatus,
    RecordingTrack,
)
from portal.models.session import StoredSession
from portal.models.user import ApiToken, LoginThrottle, RecoveryCode, Role, User

__all__ = [
    "GUEST_ROLES",
    "AppendOnlyError",
    "ApiToken",
    "Appointment",
    "AuditEvent",
    "AuditHead",
    "ChatMessage",
    "Consent",
    "Decision",
    "Base",
    "Kind",
    "LobbyState",
    "LoginThrottle",
    "Participant",
    "ParticipantRole",
    "Playback",
    "Recording",
    "RecordingPolicy",
    "RecordingStatus",
    "RecordingTrack",
    "RecoveryCode",
    "RetiredInvite",
    "Role",
    "Status",
    "StoredSession",
    "User",
    "utcnow",
]
