"""All models, so that Alembic and the app see one complete metadata."""

from portal.models.appointment import (
    GUEST_ROLES,
    HOST_ROLES,
    STAFF_ROLES,
    Appointment,
    ChatMessage,
    HearingStage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Place,
    RecordingPolicy,
    RetiredInvite,
    Status,
)
from portal.models.audit import AuditEvent, AuditHead
from portal.models.base import Base, utcnow
from portal.models.court import ConsultationRoom, Representation, RoomKind, Screening
from portal.models.outbox import LinkSecret, MessageKind, MessageStatus, OutboxMessage
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
    "HOST_ROLES",
    "STAFF_ROLES",
    "ConsultationRoom",
    "HearingStage",
    "Place",
    "Representation",
    "RoomKind",
    "Screening",
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
    "LinkSecret",
    "LobbyState",
    "MessageKind",
    "MessageStatus",
    "OutboxMessage",
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
