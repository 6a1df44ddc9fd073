"""A recording that loses media tells its host while it runs, and the audit trail keeps it.

Both recorders (a consult's engine, a hearing's forward receiver) count what they did not get
(loss.py) and call `tell` from a background thread, at most every few seconds per track.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal import signals
from portal.audit import services as audit
from portal.extensions import db
from portal.models import Recording, RecordingTrack

#: The audit action of one loss notice.
LOSS = "recording.loss"


def tell(recording_id: str, track_name: str, total: dict[str, dict[str, int]]) -> None:
    """Announce (after commit) that this track has lost media: `total` counters by medium."""
    recording = db.session.get(Recording, recording_id)
    if recording is None:
        return
    track = db.session.scalars(select(RecordingTrack).where(
        RecordingTrack.recording_id == recording_id,
        RecordingTrack.name == track_name)).first()
    participant = track.participant if track is not None else None
    notice: dict[str, Any] = {
        "id": recording_id, "track": track_name,
        "participant": participant.id if participant is not None else None,
        "name": participant.display_name if participant is not None else None,
        "total": total,
    }
    audit.record(LOSS, object_type="recording", object_id=recording_id, actor=audit.SYSTEM,
                 details={"track": track_name, "total": total})
    signals.announce(signals.recording_losing, appointment_id=recording.appointment_id,
                     notice=notice)
