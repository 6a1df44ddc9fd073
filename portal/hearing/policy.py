"""Which calls go through Janus. What each participant of such a call may receive is
decided on the server too, in `portal.hearing.procedure.allowed_feeds`."""

from __future__ import annotations

from portal.models import Appointment, Kind

#: The most people a consult carries peer to peer (a mesh); more go through Janus.
MESH_MOST = 4


def uses_janus(appointment: Appointment) -> bool:
    """A hearing, or an appointment with more people than a mesh carries."""
    return needs_janus(appointment.kind, len(appointment.participants))


def needs_janus(kind: Kind, people: int) -> bool:
    """uses_janus from the appointment's kind and how many people it has (the host too)."""
    return kind is Kind.HEARING or people > MESH_MOST

