"""Which calls go through Janus, and what each participant of such a call may receive.

Both are decided here, on the server, and nowhere else: the browser gets only the streams
`allowed_feeds` lets through (issue 12 adds screening and private rooms to it).
"""

from __future__ import annotations

from portal import presence
from portal.models import Appointment, Kind, Participant

#: The most people a consult carries peer to peer (a mesh); more go through Janus.
MESH_MOST = 4


def uses_janus(appointment: Appointment) -> bool:
    """A hearing, or an appointment with more people than a mesh carries."""
    return needs_janus(appointment.kind, len(appointment.participants))


def needs_janus(kind: Kind, people: int) -> bool:
    """uses_janus from the appointment's kind and how many people it has (the host too)."""
    return kind is Kind.HEARING or people > MESH_MOST


def allowed_feeds(appointment: Appointment, participant: Participant) -> set[int]:
    """The participant ids whose media this participant may receive: everyone else in the
    call now; nobody's while the participant is not in the call itself."""
    members = presence.members(appointment)
    if participant.id not in {p.id for p in members}:
        return set()
    return {p.id for p in members if p.id != participant.id}
