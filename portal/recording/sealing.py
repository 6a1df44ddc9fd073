"""The end of a recording, in the database and the store: describe each track, make it
seekable, write the signed manifest and the final status (`complete`, or `incomplete` after a
crash). Runs after the media has stopped; knows nothing of the engine or of sockets."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from portal.audit import services as audit
from portal.extensions import db
from portal.models import AuditEvent, Consent, Recording, RecordingStatus, RecordingTrack, utcnow
from portal.recording import archive
from portal.recording.seekable import make_seekable
from portal.recording.store import ChunkReader, FileSummary, StoreError, recover

if TYPE_CHECKING:  # aiortc is imported only when something is recorded
    from portal.recording.endpoint import PublicationResult

log = logging.getLogger(__name__)
#: Statuses in which media may still be coming: such a recording is sealed at its end.
RUNNING = (RecordingStatus.RECORDING, RecordingStatus.PAUSED)


def seal_complete(recording: Recording,
                  results: Mapping[str, PublicationResult | None]) -> None:
    """Every publication has stopped (results by publication key): seal as `complete`."""
    for track in recording.tracks:
        _describe(recording, track, results.get(f"{recording.id}/{track.name}"))
    recording.status = RecordingStatus.COMPLETE
    recording.stopped_at = recording.stopped_at or utcnow()
    archive.seal(recording, consents_json(recording), absences_json(recording))
    audit.record("recording.complete", object_type="recording", object_id=recording.id,
                 actor=audit.SYSTEM, details={"tracks": len(recording.tracks),
                                              "manifest": recording.manifest_digest})


def _describe(recording: Recording, track: RecordingTrack,
              result: PublicationResult | None) -> None:
    details = archive.track_details(track)
    path = archive.track_path(track)
    if result is not None:
        track.mode = result.mode
        track.video_frames = int(result.frames.get("video", 0))
        track.audio_frames = int(result.frames.get("audio", 0))
        details["codecs"] = result.codecs
        if result.loss is not None:
            details["loss"] = result.loss
        if result.reason:
            details["transcode_reason"] = result.reason
        first = result.first_media_at
        if first is not None and recording.started_at is not None:
            details["offset_ms"] = max(0, int((first - recording.started_at.timestamp())
                                              * 1000))
    if path.exists() and "file" not in details:
        try:
            details["file"] = make_seekable(
                path, recording_id=recording.id, track=track.name,
                data_key=archive.data_key(recording)).to_dict()
        except Exception as exc:  # keep what was recorded: it plays, without seeking
            log.warning("track %s stays as recorded (not seekable): %s", track.name, exc)
            details["seekable"] = False
            try:
                details["file"] = _summary(recording, path).to_dict()
            except StoreError as err:
                details["error"] = str(err)
    track.stopped_at = track.stopped_at or utcnow()
    track.details = _json(details)


def _summary(recording: Recording, path: Path) -> FileSummary:
    with ChunkReader(path, recording_id=recording.id, data_key=archive.data_key(recording),
                     allow_incomplete=True) as source:
        return source.verify()


def stale(cutoff: datetime, exclude: set[str]) -> list[Recording]:
    """Recordings no recorder has stamped since cutoff (their recorder is gone)."""
    return [r for r in db.session.scalars(select(Recording).where(
        Recording.status.in_((RecordingStatus.REQUESTED, *RUNNING)),
        Recording.alive_at < cutoff)) if r.id not in exclude]


def recover_recording(recording: Recording) -> None:
    """Mark a crashed recording incomplete; keep every sealed chunk readable."""
    if recording.status is RecordingStatus.REQUESTED:
        recording.status = RecordingStatus.CANCELLED
        recording.stop_reason = "recorder_stopped"
        audit.record("recording.cancelled", object_type="recording", object_id=recording.id,
                     actor=audit.SYSTEM, details={"reason": "recorder_stopped"})
        return
    key = archive.data_key(recording)
    for track in recording.tracks:
        details = archive.track_details(track)
        path = archive.track_path(track)
        if path.exists():
            try:
                details["file"] = recover(path, recording_id=recording.id,
                                          data_key=key).to_dict()
            except StoreError as exc:
                details["error"] = str(exc)
            # Its counts died with the recorder: say so rather than nothing.
            details.setdefault("loss", {"accounted": False, "complete": False})
        track.stopped_at = track.stopped_at or utcnow()
        track.details = _json(details)
    recording.status = RecordingStatus.INCOMPLETE
    recording.stop_reason = recording.stop_reason or "recorder_stopped"
    recording.stopped_at = recording.stopped_at or recording.alive_at or utcnow()
    archive.seal(recording, consents_json(recording), absences_json(recording))
    audit.record("recording.incomplete", object_type="recording", object_id=recording.id,
                 actor=audit.SYSTEM, details={"tracks": len(recording.tracks)})


def consents_json(recording: Recording) -> list[dict[str, Any]]:
    rows = db.session.scalars(select(Consent).where(
        Consent.appointment_id == recording.appointment_id).order_by(Consent.id)).all()
    return [{"participant": c.participant_id, "decision": c.decision.value,
             "recording": c.recording_id, "wording_version": c.wording_version,
             "at": c.decided_at.isoformat()}
            for c in rows if c.recording_id in (recording.id, None)]


#: The recorder's audit event of a change in what the record holds of one participant.
COVERAGE = "recording.coverage"


def absences_json(recording: Recording) -> list[dict[str, Any]] | None:
    """When each participant's audio and video were not in the record, and why, from the
    recorder's `recording.coverage` audit events: [{participant, media, reason, from, to}]
    (`to` null: until the recording stopped). None for a recording made without them (a
    consult's, by the web process's recorder)."""
    rows = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == COVERAGE, AuditEvent.object_type == "recording",
        AuditEvent.object_id == recording.id).order_by(AuditEvent.seq)).all()
    if not rows:
        return None
    found: list[dict[str, Any]] = []
    gaps: dict[tuple[int, str], dict[str, Any]] = {}  # open ones
    for row in rows:
        said = json.loads(row.details)
        participant, at, absent = said["participant"], said["at"], said["absent"]
        for media in ("audio", "video"):
            reason = absent.get(media)
            gap = gaps.get((participant, media))
            if gap is not None and gap["reason"] == reason:
                continue
            if gap is not None:
                gap["to"] = at
                found.append(gaps.pop((participant, media)))
            if reason is not None:
                gaps[(participant, media)] = {"participant": participant, "media": media,
                                              "reason": reason, "from": at, "to": None}
    found.extend(gaps.values())
    return sorted(found, key=lambda g: (g["participant"], g["media"], g["from"]))


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)
