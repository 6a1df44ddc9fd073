"""The web process's side of recording: the media engine, its publications and the data keys
they write with, per app (app.extensions["recording"]).

State changes reach it through `apply(change)` inside their transaction; it acts on the media
once the transaction has committed and announces the new state (portal.signals), so the
socket layer, not this module, tells the browsers. It never blocks a caller on aiortc: the
engine answers through futures. Sealing a finished recording is portal.recording.sealing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from flask import Flask, current_app
from sqlalchemy import select

from portal import signals
from portal.audit import services as audit
from portal.database import after_commit
from portal.extensions import db
from portal.hearing import policy
from portal.models import Participant, Recording, RecordingStatus, RecordingTrack, utcnow
from portal.recording import archive, losing, sealing, services
from portal.recording.disk import Disk, QueuedSink, TrackFile

if TYPE_CHECKING:  # aiortc is imported only when something is recorded
    from aiortc import RTCIceServer

    from portal.recording.endpoint import PublicationResult, Recorder

log = logging.getLogger(__name__)
STOP_TIMEOUT = 15.0
CHUNK_INTERVAL = 0.5  # s: the longest a track's media waits in memory before it is sealed
FORWARDED_POLL = 0.5  # s between looks at a Janus call's recording, for its end
#: A track whose negotiation failed: it has no file, and the participant's next offer reuses it.
FAILED = "failed"
#: reply(answer_sdp, None) or reply(None, error message): the engine's answer to an offer.
Reply = Callable[[str | None, str | None], None]


def get() -> RecordingManager:
    manager = current_app.extensions["recording"]
    assert isinstance(manager, RecordingManager)
    return manager


def _in_background(target: Callable[..., None], *args: Any) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


class RecordingManager:
    """Publications of this process: one engine, one encrypted writer per publication."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._engine: Recorder | None = None
        self._writers: dict[str, QueuedSink] = {}  # publication key -> its file
        self._disk = Disk()  # sealing, writing and fsync, off the media loop
        self._publications: dict[str, dict[int, str]] = {}  # recording -> participant -> key
        self._retiring: dict[str, dict[str, Future[PublicationResult | None]]] = {}
        self._data_keys: dict[str, bytes] = {}  # in memory only, while a recording runs
        # Requests made here, still waiting for consent: stamped alive like running ones, or
        # the heartbeat would cancel a request whose guest takes a while to read the prompt.
        self._asking: set[str] = set()
        self._forwarded: set[str] = set()  # Janus calls' recordings whose end is awaited
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
        """Start the engine and the heartbeat (which first recovers crashed recordings).

        The engine is RECORDER_WORKERS recorder processes (workers.py; the web process then
        runs no media), or with 0 an engine on a thread of this process (the embedded mode).
        """
        from portal.recording.endpoint import RecordingEngine
        from portal.recording.workers import EngineSettings, WorkerPool

        with self._lock:
            if self._engine is None:
                workers = self.workers
                allowed = list(self.app.config["RECORDER_ALLOW_ADDRESSES"])
                engine: Recorder
                if workers:
                    pool = WorkerPool(workers, EngineSettings(self._ice_servers(), allowed),
                                      on_failed=self._publication_failed,
                                      on_loss=self._publication_losing)
                    pool.start()
                    engine = pool
                else:
                    embedded = RecordingEngine(
                        ice_servers=self._ice_servers(), on_failed=self._publication_failed,
                        on_loss=self._publication_losing, allowed_networks=allowed)
                    embedded.start()
                    engine = embedded
                self._engine = engine
            if self._heartbeat_started:
                return
            self._heartbeat_started = True
        _in_background(self._heartbeat)

    @property
    def workers(self) -> int:
        """Recorder processes to run (0: the engine runs in this process)."""
        configured = self.app.config["RECORDER_WORKERS"]
        return int(configured) if configured is not None else (os.cpu_count() or 1)

    def _ice_servers(self) -> list[RTCIceServer]:
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
        self._disk.shutdown()

    def _heartbeat(self) -> None:
        interval = float(self.app.config["RECORDING_HEARTBEAT_SECONDS"])
        while not self._closed.is_set():
            with self.app.app_context():
                self.beat()
            self._closed.wait(interval)

    def beat(self) -> None:
        """One heartbeat (in an app context): recover what crashed, stamp what is ours."""
        try:
            self.recover_stale()
            self._stamp()
        except Exception:  # a background thread: log, keep beating
            db.session.rollback()
            log.exception("recording heartbeat failed")

    def _mine(self) -> set[str]:
        with self._lock:
            return set(self._publications) | set(self._data_keys) | self._asking

    def _stamp(self) -> None:
        with self._lock:
            running = set(self._publications) | set(self._data_keys)
            asking = set(self._asking)
        if not running | asking:
            return
        answered = set(asking)  # until found still waiting: answered elsewhere, or rolled back
        for recording in db.session.scalars(
                select(Recording).where(Recording.id.in_(running | asking))):
            if recording.id in running:
                recording.alive_at = utcnow()
            elif recording.status is RecordingStatus.REQUESTED:
                recording.alive_at = utcnow()
                answered.discard(recording.id)
        db.session.commit()
        with self._lock:
            self._asking -= answered

    def recover_stale(self) -> list[str]:
        """Recordings whose recorder stopped stamping them: incomplete, readable, sealed."""
        beat = float(self.app.config["RECORDING_HEARTBEAT_SECONDS"])
        found = sealing.stale(utcnow() - timedelta(seconds=3 * beat), self._mine())
        for recording in found:
            sealing.recover_recording(recording)
            signals.announce(signals.recording_changed, appointment_id=recording.appointment_id,
                             recording_id=recording.id, state=services.state_json(recording),
                             publish=[])
            db.session.commit()
        return [r.id for r in found]

    # --- after a state change -----------------------------------------------------------------

    def _data_key(self, recording: Recording) -> bytes:
        """The recording's data key: made and wrapped when it starts, then kept in memory."""
        with self._lock:  # a key made in a transaction that rolled back is not reused
            key = self._data_keys.get(recording.id) if recording.key_id is not None else None
        if key is None:
            if recording.key_id is None:
                key = os.urandom(32)
                recording.key_id, recording.wrapped_key = archive.keyring().wrap(
                    key, recording.id)
            else:
                key = archive.data_key(recording)
            with self._lock:
                self._data_keys[recording.id] = key
        return key

    def apply(self, change: services.Change) -> None:
        """Call inside the transaction; acts on the media and announces after commit."""
        recording = change.recording
        if policy.uses_janus(recording.appointment):
            self._apply_forwarded(change)
            return
        if change.publish or recording.key_id is not None:
            self._data_key(recording)
        recording_id = recording.id
        publish = [p.presence_sid for p in recording.appointment.participants
                   if p.id in change.publish and p.presence_sid
                   and p.id not in self._publications.get(recording_id, {})]

        asking = recording.status is RecordingStatus.REQUESTED

        def act() -> None:
            if asking:
                with self._lock:
                    self._asking.add(recording_id)
            if change.pause or change.resume:
                for key in self._keys_of(recording_id):
                    (self.engine.pause if change.pause else self.engine.resume)(key)
            if change.stop:
                _in_background(self._finish_in_app, recording_id)

        after_commit(act)
        signals.announce(signals.recording_changed, appointment_id=recording.appointment_id,
                         recording_id=recording_id, state=services.state_json(recording),
                         publish=publish)

    def _apply_forwarded(self, change: services.Change) -> None:
        """A call through Janus: the recorder process (`flask recorder run`,
        hearing_recorder.py) forwards the media from Janus and seals; no browser publishes
        to this process. Here the data key is made, in the transaction that starts the
        recording, and the state announced; the end (sealed, or incomplete if the recorder
        died) is announced too: the recorder's own notice reaches the browsers only through
        a message queue."""
        recording = change.recording
        if recording.key_id is None and recording.status in sealing.RUNNING:
            recording.key_id, recording.wrapped_key = archive.keyring().wrap(
                os.urandom(32), recording.id)
        if recording.status in sealing.RUNNING:
            recording_id = recording.id
            after_commit(lambda: self._watch_forwarded(recording_id))
        signals.announce(signals.recording_changed, appointment_id=recording.appointment_id,
                         recording_id=recording.id, state=services.state_json(recording),
                         publish=[])

    def _watch_forwarded(self, recording_id: str) -> None:
        with self._lock:
            if recording_id in self._forwarded:
                return
            self._forwarded.add(recording_id)
        _in_background(self._announce_end, recording_id)

    def _announce_end(self, recording_id: str) -> None:
        """Poll until the recorder process has sealed the recording (or it was recovered as
        incomplete), then tell the call."""
        try:
            while not self._closed.wait(FORWARDED_POLL):
                with self.app.app_context():
                    try:
                        recording = db.session.get(Recording, recording_id)
                        if recording is None:
                            return
                        if recording.status not in sealing.RUNNING:
                            signals.announce(
                                signals.recording_changed,
                                appointment_id=recording.appointment_id,
                                recording_id=recording_id,
                                state=services.state_json(recording), publish=[])
                            db.session.commit()
                            return
                        db.session.rollback()
                    except Exception:
                        db.session.rollback()
                        log.exception("watching recording %s failed", recording_id)
        finally:
            with self._lock:
                self._forwarded.discard(recording_id)

    def _keys_of(self, recording_id: str) -> list[str]:
        with self._lock:
            return list(self._publications.get(recording_id, {}).values())

    # --- publications -------------------------------------------------------------------------

    def publish(self, recording: Recording, me: Participant, offer_sdp: str,
                reply: Reply) -> None:
        """A consenting participant's browser offers its media; reply gets the answer. The
        track row is added now (or a failed attempt's row is taken again, so that offers that
        fail do not pile up rows), the engine is asked once it has committed."""
        mine = [t for t in recording.tracks if t.participant_id == me.id]
        track = next((t for t in reversed(mine) if t.mode == FAILED), None)
        if track is None:
            track = RecordingTrack(recording_id=recording.id, participant_id=me.id,
                                   name=f"p{me.id}-{len(mine) + 1}")
            db.session.add(track)
        else:  # never had a file: a negotiation that fails opens none
            track.mode, track.details, track.stopped_at = None, "{}", None
            track.started_at = utcnow()
        key = f"{recording.id}/{track.name}"
        path = archive.track_path(track)
        data_key = self._data_key(recording)
        recording_id, track_name, participant_id = recording.id, track.name, me.id
        paused = recording.status is RecordingStatus.PAUSED

        # Sealed every half second: a crash loses about a second of media at most.
        track_file = TrackFile(path, recording_id, track_name, data_key, CHUNK_INTERVAL)

        def open_sink() -> BinaryIO:  # on the embedded engine's loop: only queues
            sink = self._disk.sink(track_file)
            with self._lock:
                self._writers[key] = sink
            return cast(BinaryIO, sink)  # file-like enough for PyAV (write/flush/close)

        def answered(done: Future[str]) -> None:
            try:
                answer = done.result()
            except Exception as exc:  # the browser shows it; the recording goes on without
                log.warning("publication %s failed: %s", key, exc)
                _in_background(self._negotiation_failed, recording_id, participant_id,
                               track_name, str(exc), reply)
            else:
                reply(answer, None)

        def start() -> None:
            with self._lock:
                pubs = self._publications.setdefault(recording_id, {})
                old, pubs[participant_id] = pubs.get(participant_id), key
            if old is not None:  # republishing: the old connection is over (finish waits)
                self._retire(recording_id, old)
            from portal.recording.workers import WorkerPool

            engine = self.engine
            if isinstance(engine, WorkerPool):  # the worker opens the file
                future = engine.publish(key, offer_sdp, track_file)
            else:
                future = engine.publish(key, offer_sdp, open_sink)
            if paused:
                self.engine.pause(key)
            future.add_done_callback(answered)

        after_commit(start)

    def _negotiation_failed(self, recording_id: str, participant_id: int, track_name: str,
                            reason: str, reply: Reply) -> None:
        """The engine could not answer: forget the publication, mark its track `failed` (the
        next offer takes the row again), then tell the browser."""
        key = f"{recording_id}/{track_name}"
        with self._lock:
            pubs = self._publications.get(recording_id, {})
            if pubs.get(participant_id) == key:
                del pubs[participant_id]
            writer = self._writers.pop(key, None)
        if writer is not None:
            writer.close()
        with self.app.app_context():
            try:
                track = db.session.scalars(select(RecordingTrack).where(
                    RecordingTrack.recording_id == recording_id,
                    RecordingTrack.name == track_name)).first()
                if track is not None and track.recording.status in sealing.RUNNING \
                        and not archive.track_path(track).exists():
                    track.mode = FAILED
                    track.details = json.dumps({"error": reason[:200]})
                    track.stopped_at = utcnow()
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("marking publication %s failed did not work", key)
        reply(None, "The recorder could not connect.")

    def _retire(self, recording_id: str, key: str) -> None:
        """Stop a publication in the background; its result is kept for finish()."""
        result: Future[PublicationResult | None] = Future()
        with self._lock:
            self._retiring.setdefault(recording_id, {})[key] = result
        _in_background(lambda: result.set_result(self._stop_publication(key)))

    def _stop_publication(self, key: str) -> PublicationResult | None:
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
        _in_background(self._stop_in_app, key.split("/", 1)[0], reason)

    def _publication_losing(self, key: str, total: dict[str, dict[str, int]]) -> None:
        """From the engine's thread: a publication is losing media; the host is told."""
        recording_id, track = key.split("/", 1)
        _in_background(self._tell_loss, self.app, recording_id, track, total)

    @staticmethod
    def _tell_loss(app: Flask, recording_id: str, track: str,
                   total: dict[str, dict[str, int]]) -> None:
        with app.app_context():
            try:
                losing.tell(recording_id, track, total)
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("telling recording %s's loss failed", recording_id)

    def _stop_in_app(self, recording_id: str, reason: str) -> None:
        with self.app.app_context():
            try:
                recording = db.session.get(Recording, recording_id)
                if recording is None:
                    return
                self.apply(services.stop(recording, f"connection_{reason}", audit.SYSTEM))
                db.session.commit()
            except Exception:
                db.session.rollback()
                log.exception("stopping recording %s failed", recording_id)

    # --- the end ------------------------------------------------------------------------------

    def _finish_in_app(self, recording_id: str) -> None:
        with self.app.app_context():
            try:
                self.finish(recording_id)
            except Exception:
                db.session.rollback()
                log.exception("finishing recording %s failed", recording_id)

    def finish(self, recording_id: str) -> None:
        """Stop every publication, then seal (summaries, signed manifest, status complete)."""
        with self._lock:
            keys = self._publications.pop(recording_id, {})
            retiring = self._retiring.pop(recording_id, {})
        results = {key: self._stop_publication(key) for key in keys.values()}
        results.update({key: _waited(key, done) for key, done in retiring.items()})
        with self._lock:
            self._data_keys.pop(recording_id, None)
        recording = db.session.get(Recording, recording_id)
        if recording is None or recording.status not in sealing.RUNNING:
            return
        sealing.seal_complete(recording, results)
        signals.announce(signals.recording_changed, appointment_id=recording.appointment_id,
                         recording_id=recording_id, state=services.state_json(recording),
                         publish=[])
        db.session.commit()


def _waited(key: str, done: Future[PublicationResult | None]) -> PublicationResult | None:
    """A retired publication's stop result; a stop that hangs must not keep a recording open."""
    try:
        return done.result(2 * STOP_TIMEOUT)
    except TimeoutError:
        log.warning("publication %s did not stop in time; sealing without its summary", key)
        return None


def init_app(app: Flask) -> None:
    app.extensions["recording"] = RecordingManager(app)
