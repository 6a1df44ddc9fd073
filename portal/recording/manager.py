"""The web process's side of recording: keys, files and the media engine, per app.

It lives in app.extensions["recording"]. Socket.IO handlers call it after their commit; it
never blocks them on aiortc: the engine answers through futures whose callbacks emit.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from flask import Flask, current_app
from sqlalchemy import select

from portal.audit import services as audit
from portal.call import presence
from portal.database import after_commit
from portal.extensions import db, socketio
from portal.models import (
    Consent,
    Participant,
    Recording,
    RecordingStatus,
    RecordingTrack,
    utcnow,
)
from portal.recording import archive, services
from portal.recording.seekable import make_seekable
from portal.recording.store import ChunkWriter, FileSummary, StoreError, recover

if TYPE_CHECKING:  # aiortc is imported only when something is recorded
    from portal.recording.endpoint import Recorder

log = logging.getLogger(__name__)
STOP_TIMEOUT = 15.0


def get() -> RecordingManager:
    manager = current_app.extensions["recording"]
    assert isinstance(manager, RecordingManager)
    return manager


class RecordingManager:
    """Publications of this process: one engine, one encrypted writer per publication."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._engine: Recorder | None = None
        self._writers: dict[str, ChunkWriter] = {}  # publication key -> writer
        self._publications: dict[str, dict[int, str]] = {}  # recording -> participant -> key
        self._retiring: dict[str, dict[str, Future[Any]]] = {}  # recording -> key -> result
        self._data_keys: dict[str, bytes] = {}  # in memory only, while a recording runs
        self._heartbeat_started = False
        self._closed = threading.Event()

    # --- the engine ---------------------------------------------------------------------------

    @property
    def engine(self) -> Recorder:
        """The engine, started on first use together with the heartbeat."""
        with self._lock:
            engine = self._engine
        if engine is None:
            self.start()
            engine = self._engine
        assert engine is not None
        return engine

    def start(self) -> None:
        """Start the engine and the heartbeat (which first recovers crashed recordings)."""
        from portal.recording.endpoint import RecordingEngine

        with self._lock:
            if self._engine is None:
                engine = RecordingEngine(ice_servers=self._ice_servers(),
                                         on_failed=self._publication_failed)
                engine.start()
                self._engine = engine
            if self._heartbeat_started:
                return
            self._heartbeat_started = True
        socketio.start_background_task(self._heartbeat)

    def _ice_servers(self) -> list[Any]:
        """STUN lets a recorder behind NAT learn its public address; no TURN for a server."""
        from aiortc import RTCIceServer

        urls = self.app.config["STUN_URLS"]
        return [RTCIceServer(urls=urls)] if urls else []

    def close(self) -> None:
        """A clean stop of this process: seal every recording it holds as `complete`, then
        shut the engine down. Without this a restart would find them `incomplete`."""
        with self._lock:
            mine = set(self._publications) | set(self._retiring) | set(self._data_keys)
        with self.app.app_context():
            for recording_id in sorted(mine):
                try:
                    recording = db.session.get(Recording, recording_id)
                    if recording is not None and services.stop(
                            recording, "recorder_stopped", audit.SYSTEM).stop:
                        self.finish(recording_id)  # commits the stop with the seal
                except Exception:
                    db.session.rollback()
                    log.exception("sealing recording %s at shutdown failed", recording_id)
        self.shutdown()

    def shutdown(self, timeout: float = 10.0) -> None:
        self._closed.set()
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown(timeout)
        for writer in list(self._writers.values()):
            writer.close()

    def _heartbeat(self) -> None:
        interval = float(self.app.config["RECORDING_HEARTBEAT_SECONDS"])
        while not self._closed.is_set():
            with self.app.app_context():
                try:
                    self.recover_stale()
                    self._stamp()
                except Exception:  # a background thread: log, keep beating
                    db.session.rollback()
                    log.exception("recording heartbeat failed")
            self._closed.wait(interval)

    def _stamp(self) -> None:
        with self._lock:
            mine = list(self._publications) + list(self._data_keys)
        if mine:
            for recording in db.session.scalars(
                    select(Recording).where(Recording.id.in_(set(mine)))):
                recording.alive_at = utcnow()
            db.session.commit()

    # --- after a state change -----------------------------------------------------------------

    def begin(self, recording: Recording) -> None:
        """A recording starts: make and wrap its data key (before the commit)."""
        key = os.urandom(32)
        recording.key_id, recording.wrapped_key = archive.keyring().wrap(key, recording.id)
        with self._lock:
            self._data_keys[recording.id] = key

    def apply(self, change: services.Change) -> None:
        """Call inside the transaction; acts on the media and tells everyone after commit."""
        recording = change.recording
        if change.publish and recording.key_id is None:
            self.begin(recording)
        with self._lock:
            known = recording.id in self._data_keys
        if recording.key_id is not None and not known:
            key = archive.data_key(recording)
            with self._lock:
                self._data_keys[recording.id] = key
        state = services.state_json(recording)
        recording_id, appointment_id = recording.id, recording.appointment_id
        publish = [p.presence_sid for p in recording.appointment.participants
                   if p.id in change.publish and p.presence_sid
                   and p.id not in self._publications.get(recording_id, {})]
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def act() -> None:
            if change.pause or change.resume:
                for key in self._keys_of(recording_id):
                    (self.engine.pause if change.pause else self.engine.resume)(key)
            if change.stop:
                socketio.start_background_task(self._finish_in_app, app, recording_id)
            socketio.emit("record:state", state, to=presence.appointment_room(appointment_id))
            for sid in publish:
                socketio.emit("record:publish", {"id": recording_id}, to=sid)

        after_commit(act)

    def _keys_of(self, recording_id: str) -> list[str]:
        with self._lock:
            return list(self._publications.get(recording_id, {}).values())

    # --- publications -------------------------------------------------------------------------

    def publish(self, recording: Recording, me: Participant, sid: str, offer_sdp: str) -> None:
        """A consenting participant's browser offers its media; answer it on `sid`."""
        old = self._publications.get(recording.id, {}).get(me.id)
        if old is not None:  # republishing: the old connection is over (finish() waits for it)
            self._retire(recording.id, old)
        count = sum(1 for t in recording.tracks if t.participant_id == me.id)
        track = RecordingTrack(recording_id=recording.id, participant_id=me.id,
                               name=f"p{me.id}-{count + 1}")
        db.session.add(track)
        db.session.commit()
        key = f"{recording.id}/{track.name}"
        path = archive.track_path(track)
        data_key = self._data_keys.get(recording.id) or archive.data_key(recording)
        recording_id, track_name = recording.id, track.name

        def open_sink() -> BinaryIO:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Sealed every half second: a crash loses about a second of media at most.
            writer = ChunkWriter(path, recording_id=recording_id, track=track_name,
                                 data_key=data_key, flush_interval=0.5)
            with self._lock:
                self._writers[key] = writer
            return cast(BinaryIO, writer)  # file-like enough for PyAV (write/flush/close)

        with self._lock:
            self._publications.setdefault(recording.id, {})[me.id] = key
        future: Future[str] = self.engine.publish(key, offer_sdp, open_sink)
        paused = recording.status is RecordingStatus.PAUSED
        if paused:
            self.engine.pause(key)

        def answered(done: Future[str]) -> None:
            try:
                socketio.emit("record:answer", {"id": recording_id, "sdp": done.result()},
                              to=sid)
            except Exception as exc:  # the browser shows it; the recording goes on without
                log.warning("publication %s failed: %s", key, exc)
                socketio.emit("error", {"code": "recording_failed", "event": "record:offer",
                                        "message": "The recorder could not connect."}, to=sid)

        future.add_done_callback(answered)

    def _retire(self, recording_id: str, key: str) -> None:
        """Stop a publication in the background; its result is kept for finish()."""
        result: Future[Any] = Future()
        with self._lock:
            self._retiring.setdefault(recording_id, {})[key] = result

        def run() -> None:
            try:
                result.set_result(self._stop_publication(key))
            except Exception:
                log.exception("stopping publication %s failed", key)
                result.set_result(None)

        socketio.start_background_task(run)

    def _stop_publication(self, key: str) -> Any:
        try:
            return self.engine.stop(key).result(STOP_TIMEOUT)
        except Exception:
            log.exception("stopping publication %s failed", key)
            return None
        finally:
            with self._lock:
                writer = self._writers.pop(key, None)
                for pubs in self._publications.values():
                    for pid, k in list(pubs.items()):
                        if k == key:
                            del pubs[pid]
            if writer is not None:
                writer.close()

    def _publication_failed(self, key: str, reason: str) -> None:
        """From the engine's thread: a publication's connection died; stop the recording."""
        recording_id = key.split("/", 1)[0]
        socketio.start_background_task(self._stop_in_app, self.app, recording_id, reason)

    def _stop_in_app(self, app: Flask, recording_id: str, reason: str) -> None:
        with app.app_context():
            try:
                recording = db.session.get(Recording, recording_id)
                if recording is None:
                    return
                change = services.stop(recording, f"connection_{reason}", audit.SYSTEM)
                self.apply(change)
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("stopping recording %s failed", recording_id)

    # --- the end ------------------------------------------------------------------------------

    def _finish_in_app(self, app: Flask, recording_id: str) -> None:
        with app.app_context():
            try:
                self.finish(recording_id)
            except Exception:
                db.session.rollback()
                log.exception("finishing recording %s failed", recording_id)

    def finish(self, recording_id: str) -> None:
        """Stop every publication, then seal: summaries, signed manifest, status complete."""
        with self._lock:
            keys = self._publications.pop(recording_id, {})
            retiring = self._retiring.pop(recording_id, {})
        results = {key: self._stop_publication(key) for key in keys.values()}
        results.update({key: _waited(key, done) for key, done in retiring.items()})
        with self._lock:
            self._data_keys.pop(recording_id, None)
        recording = db.session.get(Recording, recording_id)
        if recording is None or recording.status not in (RecordingStatus.RECORDING,
                                                         RecordingStatus.PAUSED):
            return
        for track in recording.tracks:
            self._describe(recording, track, results.get(f"{recording_id}/{track.name}"))
        recording.status = RecordingStatus.COMPLETE
        recording.stopped_at = recording.stopped_at or utcnow()
        archive.seal(recording, consents_json(recording))
        audit.record("recording.complete", object_type="recording", object_id=recording.id,
                     actor=audit.SYSTEM, details={"tracks": len(recording.tracks),
                                                  "manifest": recording.manifest_digest})
        state = services.state_json(recording)
        db.session.commit()
        socketio.emit("record:state", state,
                      to=presence.appointment_room(recording.appointment_id))

    def _describe(self, recording: Recording, track: RecordingTrack, result: Any) -> None:
        details = archive.track_details(track)
        path = archive.track_path(track)
        if result is not None:
            track.mode = result.mode
            track.video_frames = int(result.frames.get("video", 0))
            track.audio_frames = int(result.frames.get("audio", 0))
            details["codecs"] = result.codecs
            if getattr(result, "reason", None):
                details["transcode_reason"] = result.reason
            first = getattr(result, "first_media_at", None)
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
                    details["file"] = self._summary(recording, path).to_dict()
                except StoreError as err:
                    details["error"] = str(err)
        track.stopped_at = track.stopped_at or utcnow()
        track.details = _json(details)

    def _summary(self, recording: Recording, path: Any) -> FileSummary:
        from portal.recording.store import ChunkReader

        with ChunkReader(path, recording_id=recording.id, data_key=archive.data_key(recording),
                         allow_incomplete=True) as source:
            return source.verify()

    # --- after a crash ------------------------------------------------------------------------

    def recover_stale(self) -> list[str]:
        """Recordings whose recorder stopped stamping them: incomplete, readable, sealed."""
        beat = float(self.app.config["RECORDING_HEARTBEAT_SECONDS"])
        cutoff = utcnow() - timedelta(seconds=3 * beat)
        with self._lock:
            mine = set(self._publications) | set(self._data_keys)
        stale = [r for r in db.session.scalars(select(Recording).where(
            Recording.status.in_((RecordingStatus.REQUESTED, RecordingStatus.RECORDING,
                                  RecordingStatus.PAUSED)),
            Recording.alive_at < cutoff)) if r.id not in mine]
        for recording in stale:
            recover_recording(recording)
            db.session.commit()
        return [r.id for r in stale]


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
        track.stopped_at = track.stopped_at or utcnow()
        track.details = _json(details)
    recording.status = RecordingStatus.INCOMPLETE
    recording.stop_reason = recording.stop_reason or "recorder_stopped"
    recording.stopped_at = recording.stopped_at or recording.alive_at or utcnow()
    archive.seal(recording, consents_json(recording))
    audit.record("recording.incomplete", object_type="recording", object_id=recording.id,
                 actor=audit.SYSTEM, details={"tracks": len(recording.tracks)})


def _waited(key: str, done: Future[Any]) -> Any:
    """A retired publication's stop result; a stop that hangs must not keep a recording open."""
    try:
        return done.result(2 * STOP_TIMEOUT)
    except TimeoutError:
        log.warning("publication %s did not stop in time; sealing without its summary", key)
        return None


def consents_json(recording: Recording) -> list[dict[str, Any]]:
    rows = db.session.scalars(select(Consent).where(
        Consent.appointment_id == recording.appointment_id).order_by(Consent.id)).all()
    return [{"participant": c.participant_id, "decision": c.decision.value,
             "recording": c.recording_id, "wording_version": c.wording_version,
             "at": c.decided_at.isoformat()}
            for c in rows if c.recording_id in (recording.id, None)]


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def init_app(app: Flask) -> None:
    app.extensions["recording"] = RecordingManager(app)

