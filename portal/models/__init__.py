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
    Status,
)
from portal.models.audit import AuditEvent, AuditHead
from portal.models.base import Base, utcnow
from portal.models.user import ApiToken, Role, User

__all__ = [
    "GUEST_ROLES",
    "ApiToken",
    "Appointment",
    "AuditEvent",
    "AuditHead",
    "ChatMessage",
    "Base",
    "Kind",
    "LobbyState",
    "Participant",
    "ParticipantRole",
    "RecordingPolicy",
    "Role",
    "Status",
    "User",
    "utcnow",
]
