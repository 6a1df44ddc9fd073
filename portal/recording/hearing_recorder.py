"""The recorder of calls through Janus (hearings): `flask --app app recorder run`, one process
next to Janus, so that recording does not depend on which web worker holds whose socket.

It learns what to record from the database: every recording of a Janus call (on the
instances it serves) that is running. For each, it sits in the hearing's room
(janus_room.RoomWatch) and has Janus forward what the record holds over SRTP to its receiver
(forwarded.py), one track (file) per publication, as consults have. What the record holds is
procedure.recorded_feeds (a hearing: the hearing itself in session, not private rooms, the
waiting room or a muted microphone; per medium) of those who agreed (services.publishers,
or a hearing's notice). When that changes for someone (into a private room, muted, called,
dismissed) their forward stops and, if anything of theirs is recorded again, a new track
starts with what is: the media of a private room never leaves Janus for the recorder. Each
change of what the record holds of someone, and why not the rest (procedure.unrecorded), is
an audit event `recording.coverage` at the portal's clock: the signed manifest lists the
gaps from them (sealing.absences_json). A paused recording keeps its forwards and drops
their media. When the recording
has stopped (stopped_at set, by the host, the call's end, a withdrawal) it stops the forwards
and seals the recording (sealing.seal_complete) into the same signed manifest as a consult.

Crashes: it stamps its recordings (alive_at) like the web process's recorder; if it dies,
the web workers' heartbeat marks them incomplete (manager.recover_stale). A recording it
finds with a track it does not hold was being written by a recorder that died: it is
recovered as incomplete at once (its files keep every sealed chunk), and the dead
recorder's forwards are stopped. One recorder per Janus instance.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select

from portal import private, signals
from portal.audit import services as audit
from portal.clock import clock
from portal.extensions import db
from portal.hearing import config as janus_config
from portal.hearing import policy, procedure
from portal.hearing.janus import JanusClient, JanusError, JanusGone, JanusTimeout
from portal.models import (
    Appointment,
    Recording,
    RecordingStatus,
    RecordingTrack,
    Status,
    utcnow,
)
from portal.recording import archive, losing, sealing, services
from portal.recording.disk import Disk
from portal.recording.forwarded import ForwardReceiver, ForwardResult
from portal.recording.janus_room import NO_SUCH_ROOM, RECORDABLE, Publication, RoomWatch
from portal.recording.store import ChunkWriter

log = logging.getLogger(__name__)
#: The audit event of a change in what the record holds of one participant.
COVERAGE = sealing.COVERAGE
STOP_TIMEOUT = 15.0  # s for the receiver to finish one publication's container


@dataclass
class _Forwarding:
    """One publication being forwarded into one track."""

    participant_id: int
    number: int  # the Publication's number: a republish is a new one
    track: str
    key: str  # "<recording id>/<track>", the receiver's and sealing's key
    stream_ids: dict[str, int]
    kinds: frozenset[str]  # what it forwards: "audio", "video"


@dataclass
class _Held:
    """A recording this process writes."""

    recording_id: str
    appointment_id: int
    url: str
    data_key: bytes = field(repr=False)
    watch: RoomWatch | None = None
    forwards: dict[int, _Forwarding] = field(default_factory=dict)  # by participant
    results: dict[str, ForwardResult | None] = field(default_factory=dict)  # ended ones
    refused: set[int] = field(default_factory=set)  # publication numbers that cannot forward
    unsure: bool = False  # a forward request timed out: Janus may hold a forwarder we lost
    paused: bool = False
    #: By participant: the media the record lacks and why, as last written to the audit.
    absent: dict[int, dict[str, str]] = field(default_factory=dict)


class HearingRecorder:
    """The loop of `flask recorder run`: `run()` blocks until `stop()`."""

    def __init__(self, app: Flask, *, poll_seconds: float | None = None) -> None:
        self.app = app
        config = app.config
        self.poll = poll_seconds if poll_seconds is not None \
            else float(config["RECORDER_POLL_MS"]) / 1000
        self.urls = list(config.get("RECORDER_JANUS_URLS") or janus_config.urls(app))
        self.receiver = ForwardReceiver(host=config["RECORDER_FORWARD_HOST"],
                                        on_failed=self._forward_failed,
                                        on_loss=self._forward_losing)
        self.disk = Disk()  # sealing, writing and fsync, off the receiver's loop
        self._clients: dict[str, JanusClient] = {}
        self._held: dict[str, _Held] = {}  # the loop thread's, by recording id
        self._lock = threading.Lock()
        self._watches: dict[tuple[str, int], RoomWatch] = {}  # (url, handle): for events
        self._mine: set[str] = set()  # held or being sealed: stamped by the heartbeat
        self._sealing: dict[str, threading.Thread] = {}
        self._failed: dict[str, str] = {}  # recording id -> why its writing failed
        self._down: set[str] = set()  # Janus instances found unreachable (said once)
        self._wake = threading.Event()
        self._stopped = threading.Event()

    # --- the process ------------------------------------------------------------------------

    def run(self) -> None:
        """Record until stop(); then seal what is held as complete and let go of Janus."""
        self.receiver.start()
        beat = threading.Thread(target=self._heartbeat, name="recorder-heartbeat", daemon=True)
        beat.start()
        with self.app.app_context():
            self._clear_rooms()
        log.info("recorder: recording hearings on %s, forwarded media to %s",
                 ", ".join(self.urls) or "(no Janus configured)", self.receiver.host)
        try:
            while not self._stopped.is_set():
                with self.app.app_context():
                    try:
                        self.sync()
                    except Exception:  # a bad turn must not end the recorder
                        db.session.rollback()
                        log.exception("recorder: a turn failed")
                self._wake.wait(self.poll)
                self._wake.clear()
        finally:
            with self.app.app_context():
                self._close()
            beat.join(5)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _heartbeat(self) -> None:
        interval = float(self.app.config["RECORDING_HEARTBEAT_SECONDS"])
        while not self._stopped.wait(interval):
            with self._lock:
                mine = set(self._mine)
            if not mine:
                continue
            with self.app.app_context():
                try:
                    for row in db.session.scalars(select(Recording).where(
                            Recording.id.in_(mine))):
                        row.alive_at = utcnow()
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    log.exception("recorder: stamping recordings failed")

    def _close(self) -> None:
        for recording_id in list(self._held):
            try:
                recording = db.session.get(Recording, recording_id)
                if recording is not None and recording.stopped_at is None:
                    services.stop(recording, "recorder_stopped", audit.SYSTEM)
                    db.session.flush()
                if recording is not None:
                    self._finish(recording, background=False)
            except Exception:
                db.session.rollback()
                log.exception("recorder: sealing %s at shutdown failed", recording_id)
        for thread in list(self._sealing.values()):
            thread.join(60)
        self.receiver.shutdown()
        self.disk.shutdown()
        for client in self._clients.values():
            client.close()

    # --- one turn -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring the forwards in line with the database and Janus (the loop's one turn)."""
        running = self._running()
        ids = {r.id for r in running}
        for recording_id in [r for r in self._held if r not in ids]:
            self._drop(self._held.pop(recording_id))  # ended elsewhere (recovered, deleted)
        for recording in running:
            recording_id, url = recording.id, self._url(recording)
            try:
                self._turn(recording)
                db.session.commit()
                self._down.discard(url or "")
            except JanusGone as exc:
                db.session.commit()  # what was done before Janus went (tracks ended)
                if url not in self._down:  # said once, not at every turn until it is back
                    self._down.add(url or "")
                    log.warning("recorder: Janus %s is unreachable: %s", url, exc)
            except JanusError as exc:
                db.session.commit()
                log.warning("recorder: recording %s: %s", recording_id, exc)
            except Exception:  # this recording's trouble is not the others'
                db.session.rollback()
                log.exception("recorder: recording %s: a turn failed", recording_id)

    def _running(self) -> list[Recording]:
        rows = db.session.scalars(select(Recording).where(
            Recording.status.in_(sealing.RUNNING)).order_by(Recording.requested_at)).all()
        return [r for r in rows if policy.uses_janus(r.appointment) and r.id not in
                self._sealing and self._url(r) in self.urls]

    @staticmethod
    def _url(recording: Recording) -> str | None:
        return recording.appointment.janus_url

    def _turn(self, recording: Recording) -> None:
        failure = self._failed.pop(recording.id, None)
        if failure is not None and recording.stopped_at is None:
            services.stop(recording, f"connection_{failure}", audit.SYSTEM)
            self._announce(recording)
            db.session.flush()
        if recording.stopped_at is not None:
            self._finish(recording)
            return
        held = self._held.get(recording.id)
        if held is None:
            if self._orphaned(recording):
                return
            held = self._hold(recording)
        watch = self._watch(held)
        if watch is None:
            return
        self._forward(recording, held, watch)

    # --- picking a recording up ---------------------------------------------------------------

    def _orphaned(self, recording: Recording) -> bool:
        """A track nobody finished: the recorder that wrote it died. Incomplete, at once."""
        if all(t.stopped_at is not None for t in recording.tracks):
            return False
        log.warning("recorder: recording %s was left by a recorder that stopped", recording.id)
        sealing.recover_recording(recording)
        self._announce(recording)
        db.session.commit()
        self._clear_room(recording)
        return True

    def _clear_room(self, recording: Recording) -> None:
        url = self._url(recording)
        if url is not None:
            self._clear(url, recording.appointment_id)

    def _clear_rooms(self) -> None:
        """At the start: nothing forwarded in the rooms of this recorder's instances is its
        own yet. A recorder that died left its forwards sending to ports nobody reads (the web
        workers mark its recordings incomplete, but cannot stop those)."""
        try:
            live = db.session.scalars(select(Appointment).where(
                Appointment.status == Status.LIVE, Appointment.janus_url.in_(self.urls))).all()
            rooms = [(a.janus_url, a.id) for a in live if a.janus_url]
            db.session.rollback()
        except Exception:
            db.session.rollback()
            log.exception("recorder: listing the live hearings failed")
            return
        for url, appointment_id in rooms:
            self._clear(url, appointment_id)

    def _clear(self, url: str, appointment_id: int) -> None:
        """Stop every forward in one room (best effort: a room or a Janus that is gone has
        none)."""
        try:
            watch = self._room(self._client(url), appointment_id)
            stopped = watch.clear_forwards()
            watch.leave()
        except JanusError as exc:
            log.info("recorder: clearing room %s: %s", appointment_id, exc)
            return
        if stopped:
            log.warning("recorder: stopped %d forwards a stopped recorder left in room %s",
                        stopped, appointment_id)

    def _hold(self, recording: Recording) -> _Held:
        if recording.key_id is None:  # made by the web worker when it started; else here
            recording.key_id, recording.wrapped_key = archive.keyring().wrap(
                os.urandom(32), recording.id)
            db.session.flush()
        url = self._url(recording)
        assert url is not None
        held = _Held(recording.id, recording.appointment_id, url, archive.data_key(recording))
        self._held[recording.id] = held
        with self._lock:
            self._mine.add(recording.id)
        log.info("recorder: recording %s of hearing %s", recording.id, held.appointment_id)
        return held

    # --- Janus ------------------------------------------------------------------------------

    def _client(self, url: str) -> JanusClient:
        client = self._clients.get(url)
        if client is None or not client.alive:
            config = self.app.config
            client = JanusClient(url, janus_config.api_secret(self.app),
                                 timeout=float(config["JANUS_TIMEOUT_SECONDS"]),
                                 keepalive=float(config["JANUS_KEEPALIVE_SECONDS"]),
                                 on_event=partial(self._on_event, url),
                                 on_close=partial(self._on_close, url))
            client.connect()
            self._clients[url] = client
        return client

    def _room(self, client: JanusClient, appointment_id: int) -> RoomWatch:
        return RoomWatch(client, appointment_id,
                         janus_config.room_secret(self.app, appointment_id),
                         janus_config.admin_key(self.app))

    def _on_event(self, url: str, handle: int, message: dict[str, Any]) -> None:
        with self._lock:
            watch = self._watches.get((url, handle))
        if watch is not None and watch.on_event(message):
            self._wake.set()

    def _on_close(self, url: str, reason: str) -> None:
        log.warning("recorder: Janus %s: %s", url, reason)
        self._wake.set()

    def _watch(self, held: _Held) -> RoomWatch | None:
        """The recorder in the hearing's room; None while the room does not exist."""
        watch = held.watch
        if watch is not None and not watch.gone and watch.client.alive:
            return watch
        if watch is not None:  # the room was destroyed or Janus lost: its forwards are over
            self._end_all(held)
            self._unwatch(held)
        client = self._client(held.url)
        watch = self._room(client, held.appointment_id)
        with self._lock:  # before joining: no event about a publisher may slip by
            self._watches[(held.url, watch.attach())] = watch
        held.watch = watch
        try:
            watch.join()
        except JanusError as exc:
            self._unwatch(held)
            if exc.code == NO_SUCH_ROOM:
                return None  # nobody has made it yet (or again, after a restart)
            raise
        stale = watch.clear_forwards()
        if stale:
            log.info("recorder: stopped %d forwards a stopped recorder left in room %s",
                     stale, held.appointment_id)
        return watch

    def _unwatch(self, held: _Held) -> None:
        watch, held.watch = held.watch, None
        if watch is None:
            return
        with self._lock:
            for key in [k for k, w in self._watches.items() if w is watch]:
                del self._watches[key]
        watch.leave()

    # --- forwards ---------------------------------------------------------------------------

    def _forward(self, recording: Recording, held: _Held, watch: RoomWatch) -> None:
        if held.unsure:  # a forward request timed out: drop what Janus may have made of it
            keep = frozenset(i for f in held.forwards.values() for i in f.stream_ids.values())
            watch.clear_forwards(keep)
            held.unsure = False
        agreed = set(services.publishers(recording))
        wanted = {pid: media for pid, media in
                  procedure.recorded_feeds(recording.appointment).items() if pid in agreed}
        published = watch.publications()
        for forwarding in list(held.forwards.values()):
            now = published.get(forwarding.participant_id)
            same = now is not None and now.number == forwarding.number
            if now is None or not same or forwarding.kinds != _kinds(
                    wanted.get(forwarding.participant_id, set()), now):
                self._end(held, forwarding, in_janus=same)
        paused = recording.status is RecordingStatus.PAUSED
        for participant_id in sorted(set(wanted) & set(published) - set(held.forwards)):
            publication = published[participant_id]
            kinds = _kinds(wanted[participant_id], publication)
            if kinds and publication.number not in held.refused:
                self._start(recording, held, watch, publication, kinds, paused)
        if paused != held.paused:
            held.paused = paused
            for forwarding in held.forwards.values():
                change = self.receiver.pause if paused else self.receiver.resume
                change(forwarding.key).result(STOP_TIMEOUT)
        self._note_coverage(recording, held, agreed)

    @staticmethod
    def _note_coverage(recording: Recording, held: _Held, agreed: set[int]) -> None:
        """An audit event for each participant whose part in the record changed: the media
        it lacks now and why (the manifest's gaps are made from these)."""
        at = clock().now().isoformat()
        for pid, why in procedure.unrecorded(recording.appointment).items():
            absent = {kind: str(reason) for kind, reason in why.items()}
            if pid not in agreed:  # a consult's participant who has not agreed (yet)
                absent = {kind: absent.get(kind, "not_agreed") for kind in procedure.BOTH}
            forwarding = held.forwards.get(pid)
            for kind in procedure.BOTH - set(absent) - (forwarding.kinds if forwarding else
                                                          frozenset()):
                absent[kind] = "not_published"  # recorded, but Janus has none of it
            if held.absent.get(pid) != absent:
                held.absent[pid] = absent
                audit.record(COVERAGE, object_type="recording", object_id=recording.id,
                             actor=audit.SYSTEM,
                             details={"participant": pid, "absent": absent, "at": at})

    def _start(self, recording: Recording, held: _Held, watch: RoomWatch,
               publication: Publication, wanted: frozenset[str], paused: bool) -> None:
        kinds = {kind: RECORDABLE[kind] for kind in sorted(wanted)}
        participant_id = publication.participant_id
        mine = [t for t in recording.tracks if t.participant_id == participant_id]
        name = f"p{participant_id}-{len(mine) + 1}"
        key = f"{recording.id}/{name}"
        path = archive.directory(recording.id) / f"{name}.smr"
        data_key, recording_id = held.data_key, recording.id

        def open_writer() -> ChunkWriter:  # on a disk thread
            private.folder(path.parent)
            # Sealed every half second: a crash loses about a second of media at most.
            return ChunkWriter(path, recording_id=recording_id, track=name,
                               data_key=data_key, flush_interval=0.5)

        def open_sink() -> BinaryIO:  # on the receiver's loop: only queues
            return cast(BinaryIO, self.disk.sink(open_writer))

        endpoints = self.receiver.open(key, kinds, open_sink).result(STOP_TIMEOUT)
        try:
            made = watch.forward(publication, endpoints)
        except JanusError as exc:
            self.receiver.stop(key).result(STOP_TIMEOUT)
            if isinstance(exc, JanusTimeout):  # Janus may have made it: cleared, then again
                held.unsure = True
            elif not isinstance(exc, JanusGone):  # refused: not again for this publication
                held.refused.add(publication.number)
            raise
        host = urlsplit(held.url).hostname or "127.0.0.1"
        for kind, port in made.rtcp_ports.items():
            self.receiver.feedback(key, kind, (host, port)).result(STOP_TIMEOUT)
        if paused:
            self.receiver.pause(key).result(STOP_TIMEOUT)
        db.session.add(RecordingTrack(recording_id=recording.id, participant_id=participant_id,
                                      name=name, started_at=clock().now(),
                                      details=json.dumps({"forwarded": True,
                                                          "media": sorted(wanted)})))
        held.forwards[participant_id] = _Forwarding(participant_id, publication.number, name,
                                                    key, made.stream_ids, wanted)
        log.info("recorder: forwarding %s of participant %s into %s", "+".join(sorted(wanted)),
                 participant_id, key)

    def _end(self, held: _Held, forwarding: _Forwarding, *, in_janus: bool) -> None:
        """Stop one publication's forward and finish its file."""
        held.forwards.pop(forwarding.participant_id, None)
        if in_janus and held.watch is not None and held.watch.client.alive:
            held.watch.stop_forwards(forwarding.participant_id, forwarding.stream_ids.values())
        try:
            result: ForwardResult | None = self.receiver.stop(forwarding.key).result(
                STOP_TIMEOUT)
        except Exception:
            log.exception("recorder: finishing %s failed", forwarding.key)
            result = None
        held.results[forwarding.key] = result
        track = db.session.scalars(select(RecordingTrack).where(
            RecordingTrack.recording_id == held.recording_id,
            RecordingTrack.name == forwarding.track)).first()
        if track is not None and track.stopped_at is None:
            track.stopped_at = clock().now()

    def _end_all(self, held: _Held) -> None:
        in_janus = held.watch is not None and not held.watch.gone
        for forwarding in list(held.forwards.values()):
            self._end(held, forwarding, in_janus=in_janus)

    def _forward_losing(self, key: str, total: dict[str, dict[str, int]]) -> None:
        """From the receiver's thread: a forwarded publication is losing media."""
        recording_id, track = key.split("/", 1)

        def tell() -> None:
            with self.app.app_context():
                try:
                    losing.tell(recording_id, track, total)
                    db.session.commit()
                except Exception:
                    db.session.rollback()
                    log.exception("recorder: telling %s's loss failed", recording_id)

        threading.Thread(target=tell, name="recorder-loss", daemon=True).start()

    def _forward_failed(self, key: str, reason: str) -> None:
        """From the receiver's thread: a file could not be written; the loop stops it."""
        self._failed[key.split("/", 1)[0]] = reason
        self._wake.set()

    # --- the end ------------------------------------------------------------------------------

    def _drop(self, held: _Held) -> None:
        """A recording that ended elsewhere: let go of its forwards, seal nothing."""
        self._end_all(held)
        self._unwatch(held)
        with self._lock:
            self._mine.discard(held.recording_id)

    def _finish(self, recording: Recording, *, background: bool = True) -> None:
        """The recording has stopped: end the forwards, leave the room, then seal (remuxing
        each track takes a while: in a thread of its own, still stamped)."""
        held = self._held.pop(recording.id, None)
        if held is None and self._orphaned(recording):
            return
        results: dict[str, ForwardResult | None] = {}
        if held is not None:
            self._end_all(held)
            self._unwatch(held)
            results = held.results
        db.session.commit()
        recording_id = recording.id
        with self._lock:
            self._mine.add(recording_id)
        if not background:
            self._seal(recording_id, results)
            return
        thread = threading.Thread(target=self._seal_in_app, args=(recording_id, results),
                                  name=f"recorder-seal {recording_id}", daemon=True)
        self._sealing[recording_id] = thread
        thread.start()

    def _seal_in_app(self, recording_id: str,
                     results: dict[str, ForwardResult | None]) -> None:
        with self.app.app_context():
            try:
                self._seal(recording_id, results)
            except Exception:
                db.session.rollback()
                log.exception("recorder: sealing %s failed", recording_id)
            finally:
                self._sealing.pop(recording_id, None)
                self._wake.set()

    def _seal(self, recording_id: str, results: dict[str, ForwardResult | None]) -> None:
        try:
            recording = db.session.get(Recording, recording_id)
            if recording is not None and recording.status in sealing.RUNNING:
                sealing.seal_complete(recording, dict(results))
                self._announce(recording)
                db.session.commit()
                log.info("recorder: recording %s sealed", recording_id)
        finally:
            with self._lock:
                self._mine.discard(recording_id)

    @staticmethod
    def _announce(recording: Recording) -> None:
        signals.announce(signals.recording_changed, appointment_id=recording.appointment_id,
                         recording_id=recording.id, state=services.state_json(recording),
                         publish=[])


def _kinds(media: set[str], publication: Publication) -> frozenset[str]:
    """What of a publication to forward: the recorded media it carries in a codec we store."""
    return frozenset(media) & frozenset(publication.recordable())
