"""Consent and the life of a recording, in the database. Each change writes its audit event.

The rules: a recording runs only while everyone in the call has agreed. One "no" before it
starts means nothing is recorded; a withdrawal, or someone recorded leaving, stops it; someone
new in the call pauses it until they agree. The media side reacts to the returned Change.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from portal import presence
from portal.audit import services as audit
from portal.audit.services import Actor
from portal.errors import Conflict, Forbidden
from portal.extensions import db
from portal.hearing import policy
from portal.models import (
    Appointment,
    Consent,
    Decision,
    Participant,
    Recording,
    RecordingPolicy,
    RecordingStatus,
    utcnow,
)
from portal.models.recording import ACTIVE
from portal.recording.wording import Wording


@dataclass
class Change:
    """What the media side must do once the transaction has committed."""

    recording: Recording
    publish: list[int] = field(default_factory=list)  # participants to start publishing
    pause: bool = False
    resume: bool = False
    stop: bool = False  # stop every publication and finalise


@dataclass(frozen=True)
class Asker:
    """Where a decision came from, for the Consent row."""

    actor: Actor
    ip: str | None
    user_agent: str | None


def active(appointment_id: int) -> Recording | None:
    return db.session.scalars(
        select(Recording).where(Recording.appointment_id == appointment_id,
                                Recording.status.in_(ACTIVE))
        .order_by(Recording.requested_at.desc()).limit(1)).first()


def decisions(recording: Recording) -> dict[int, Decision]:
    """Each participant's latest decision on this recording (or the hearing's notice)."""
    rows = db.session.scalars(
        select(Consent).where(Consent.appointment_id == recording.appointment_id)
        .order_by(Consent.id)).all()
    latest: dict[int, Decision] = {}
    for row in rows:
        if row.recording_id == recording.id or row.decision is Decision.ACKNOWLEDGED:
            latest[row.participant_id] = row.decision
    return latest


def _agreed(decision: Decision | None) -> bool:
    return decision in (Decision.GRANTED, Decision.ACKNOWLEDGED)


def pending(recording: Recording) -> list[Participant]:
    """Who is in the call and has not agreed yet."""
    latest = decisions(recording)
    return [p for p in presence.members(recording.appointment) if not _agreed(latest.get(p.id))]


def publishers(recording: Recording) -> list[int]:
    """Who is recorded now: in the call and agreed."""
    latest = decisions(recording)
    return [p.id for p in presence.members(recording.appointment) if _agreed(latest.get(p.id))]


def state_json(recording: Recording | None) -> dict[str, Any]:
    """The recording state every participant's page shows."""
    if recording is None:
        return {"status": "none"}
    latest = decisions(recording)
    members = presence.members(recording.appointment)
    return {
        "id": recording.id,
        "status": recording.status.value,
        "reason": recording.stop_reason,
        "pending": [{"id": p.id, "name": p.display_name} for p in members
                    if not _agreed(latest.get(p.id))],
        "publishers": [p.id for p in members if _agreed(latest.get(p.id))],
    }


def _consent(me: Participant, recording: Recording | None, decision: Decision,
             shown: Wording, asker: Asker) -> None:
    db.session.add(Consent(
        appointment_id=me.appointment_id, participant_id=me.id,
        recording_id=recording.id if recording else None, decision=decision,
        wording_version=shown.version, wording=shown.text, ip=asker.ip,
        user_agent=(asker.user_agent or "")[:300] or None))
    audit.record(f"consent.{decision.value}", object_type="participant", object_id=me.id,
                 actor=asker.actor,
                 details={"appointment_id": me.appointment_id,
                          "recording_id": recording.id if recording else None,
                          "wording_version": shown.version})


def request(me: Participant, shown: Wording, asker: Asker) -> Change:
    """The host presses Record (having read the wording: that is the host's own consent)."""
    appointment: Appointment = me.appointment
    policy = appointment.recording_policy
    if policy is RecordingPolicy.OFF:
        raise Forbidden(_("This appointment is not to be recorded."))
    if active(appointment.id) is not None:
        raise Conflict(_("A recording is already running or being asked for."))
    recording = Recording(id=secrets.token_hex(16), appointment_id=appointment.id,
                          requested_by_id=me.id, status=RecordingStatus.REQUESTED,
                          wording_version=shown.version, alive_at=utcnow())
    db.session.add(recording)
    db.session.flush()
    audit.record("recording.requested", object_type="recording", object_id=recording.id,
                 actor=asker.actor, details={"appointment_id": appointment.id,
                                             "policy": policy.value})
    if policy is RecordingPolicy.CONSENT:
        _consent(me, recording, Decision.GRANTED, shown, asker)
    db.session.flush()
    return evaluate(recording, asker.actor)


def decide(me: Participant, recording: Recording, decision: Decision, shown: Wording,
           asker: Asker) -> Change:
    """A participant answers the prompt, or withdraws."""
    if recording.appointment.recording_policy is not RecordingPolicy.CONSENT:
        raise Forbidden(_("This recording is by notice; there is no consent to give."))
    if recording.stopped_at is not None:
        raise Conflict(_("This recording has already stopped."))
    if decision is Decision.GRANTED and me not in presence.members(recording.appointment):
        raise Conflict(_("Join the call first."), code="not_in_call")
    _consent(me, recording, decision, shown, asker)
    db.session.flush()
    if decision is Decision.GRANTED:
        return evaluate(recording, asker.actor)
    reason = "declined" if decision is Decision.DECLINED else "withdrawn"
    return stop(recording, reason, asker.actor)


def evaluate(recording: Recording, actor: Actor) -> Change:
    """Start, pause or resume as the consents and the people in the call now stand."""
    change = Change(recording)
    waiting_for = pending(recording)
    status = recording.status
    if status is RecordingStatus.REQUESTED and not waiting_for:
        recording.status = RecordingStatus.RECORDING
        recording.started_at = recording.alive_at = utcnow()
        change.publish = publishers(recording)
        audit.record("recording.started", object_type="recording", object_id=recording.id,
                     actor=actor, details={"participants": change.publish})
    elif status is RecordingStatus.RECORDING and waiting_for:
        recording.status = RecordingStatus.PAUSED
        change.pause = True
        audit.record("recording.paused", object_type="recording", object_id=recording.id,
                     actor=actor, details={"waiting_for": [p.id for p in waiting_for]})
    elif status is RecordingStatus.PAUSED and not waiting_for:
        recording.status = RecordingStatus.RECORDING
        change.resume = True
        change.publish = publishers(recording)
        audit.record("recording.resumed", object_type="recording", object_id=recording.id,
                     actor=actor)
    return change


def stop(recording: Recording, reason: str, actor: Actor) -> Change:
    """Stop at once. Before anything was recorded, nothing is kept."""
    if recording.status not in ACTIVE or recording.stopped_at is not None:
        return Change(recording)  # already stopped (it may still be finalising)
    started = recording.status is not RecordingStatus.REQUESTED
    if not started:
        recording.status = (RecordingStatus.DECLINED if reason == "declined"
                            else RecordingStatus.CANCELLED)
    # A started recording stays "recording" until its files are finalised (finish()).
    recording.stop_reason = reason
    recording.stopped_at = utcnow()
    audit.record("recording.stopped", object_type="recording", object_id=recording.id,
                 actor=actor, details={"reason": reason, "started": started})
    return Change(recording, stop=started)


def participant_left(me: Participant, actor: Actor) -> Change | None:
    """Someone left the call (or lost the connection): stop if they were recorded, in a call
    peer to peer. Through Janus the others are recorded on: only that participant's media
    ends (the recorder process sees them go), and a return is a new track."""
    recording = active(me.appointment_id)
    if recording is None:
        return None
    if recording.status is RecordingStatus.REQUESTED:
        return evaluate(recording, actor)
    if recording.stopped_at is not None:
        return None
    if _agreed(decisions(recording).get(me.id)) and not policy.uses_janus(me.appointment):
        return stop(recording, "participant_left", actor)
    return evaluate(recording, actor)


def participant_joined(me: Participant, actor: Actor) -> Change | None:
    """Someone new in the call: pause until they agree (a hearing's notice already counts)."""
    recording = active(me.appointment_id)
    if recording is None or recording.stopped_at is not None:
        return None
    return evaluate(recording, actor)


def acknowledge_notice(me: Participant, shown: Wording, asker: Asker) -> None:
    """Policy notice: the participant read the notice before joining."""
    _consent(me, None, Decision.ACKNOWLEDGED, shown, asker)


def has_acknowledged(me: Participant) -> bool:
    return db.session.scalars(
        select(Consent.id).where(Consent.participant_id == me.id,
                                 Consent.decision == Decision.ACKNOWLEDGED).limit(1)
    ).first() is not None
