"""A hearing's media on Janus, as one web worker sees it (app.extensions["hearing"]).

The portal owns every Janus handle; browsers never reach Janus. For each participant whose
socket is on this worker (a `Seat`) there is a publisher handle, joined in the room from the
moment the participant enters the call (so it hears the room's events), and, once there is
something the participant may receive, a subscriber handle carrying exactly the streams that
`procedure.allowed_feeds` allows (per feed, its audio, its video or both) of the feeds
publishing now. The subscriptions are computed
again whenever a feed comes or goes (Janus tells every worker that has handles in the room)
or who is in the call changes (`changed`: the socket layer calls it on every worker).

Everything a hearing does runs in order on the hearing's own thread (`Serial`): the socket
handlers and Janus's reader thread only queue work, so neither waits on Janus, and an ICE
candidate cannot overtake the offer it belongs to. What the browsers are told goes out
through the `Outbox` the socket layer gives; this module imports no socket code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from flask import Flask
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal.extensions import db
from portal.hearing import procedure, videoroom
from portal.hearing.janus import JanusError, JanusGone
from portal.hearing.seats import Room, Seat
from portal.hearing.serial import Serial
from portal.models import Appointment, Participant, Recording, RecordingStatus

log = logging.getLogger(__name__)

Task = Callable[[Room], None]


class Outbox(Protocol):
    """How the media layer talks to browsers (the socket layer implements it)."""

    def to_socket(self, sid: str, event: str, data: dict[str, Any]) -> None: ...

    def to_call(self, appointment_id: int, event: str, data: dict[str, Any]) -> None: ...


class Pool(Protocol):
    """The Janus instances (portal.hearing.instances.JanusPool)."""

    @property
    def available(self) -> bool: ...

    @property
    def configured(self) -> bool: ...

    def client(self, url: str) -> Any: ...


class Refused(Exception):
    """A request this participant may not make now: `error` {code, message} to its socket."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class HearingMedia:
    """This worker's hearings on Janus."""

    def __init__(self, app: Flask, pool: Pool, outbox: Outbox, *,
                 retry_seconds: float = 1.0) -> None:
        self.app = app
        self.pool = pool
        self.outbox = outbox
        #: After Janus was lost, how often to try to make the room again (besides the pool's
        #: own notice that the instance is back).
        self.retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._rooms: dict[int, Room] = {}
        #: Handle -> (appointment, participant, "publisher" | "subscriber").
        self._handles: dict[int, tuple[int, int, str]] = {}
        #: Per instance: the client and its handle for room requests (create, list, kick, ...).
        self._control: dict[str, tuple[Any, int]] = {}

    @property
    def available(self) -> bool:
        """Janus is configured and an instance answers: a hearing can start."""
        return bool(self.pool.available)

    @property
    def configured(self) -> bool:
        return bool(self.pool.configured)

    # --- what the socket layer asks (any thread; queued, never waits on Janus) ---------------

    def join(self, appointment_id: int, url: str, participant_id: int, sid: str,
             locale: str) -> None:
        """The participant entered the call on socket sid: its place in the room, then
        `hearing:media {ready}` (publish now) and an offer of what it may receive."""
        self._queue(appointment_id, partial(self._join, participant_id, sid, locale), url=url)

    def publish(self, appointment_id: int, participant_id: int, sid: str, sdp: str) -> None:
        self._queue(appointment_id, partial(self._publish, participant_id, sid, sdp),
                    sid=sid, event="hearing:publish")

    def answer(self, appointment_id: int, participant_id: int, sid: str, sdp: str) -> None:
        self._queue(appointment_id, partial(self._answer, participant_id, sid, sdp),
                    sid=sid, event="hearing:subscribe")

    def candidate(self, appointment_id: int, participant_id: int, sid: str, pc: str,
                  candidate: dict[str, Any] | None) -> None:
        self._queue(appointment_id, partial(self._candidate, participant_id, sid, pc, candidate),
                    sid=sid, event="hearing:candidate")

    def layer(self, appointment_id: int, participant_id: int, sid: str, feed: int,
              substream: int) -> None:
        self._queue(appointment_id, partial(self._layer, participant_id, sid, feed, substream),
                    sid=sid, event="hearing:layer")

    def unpublish(self, appointment_id: int, participant_id: int, sid: str) -> None:
        self._queue(appointment_id, partial(self._unpublish, participant_id, sid),
                    sid=sid, event="hearing:unpublish")

    def leave(self, appointment_id: int, participant_id: int, sid: str) -> None:
        """The participant left the call, or its socket closed: its handles go."""
        self._queue(appointment_id, partial(self._leave, participant_id, sid))

    def changed(self, appointment_id: int) -> None:
        """Who may receive whom in this hearing may have changed: subscriptions again."""
        self._queue(appointment_id, self._recompute)

    def end(self, appointment_id: int) -> None:
        """The hearing is over: its room is destroyed (everyone's handles with it)."""
        self._queue(appointment_id, self._end, url="")

    def subscriber(self, appointment_id: int, participant_id: int) -> int | None:
        """The Janus handle of the participant's subscription on this worker, if any (for
        diagnostics and the tests that check what Janus was asked)."""
        with self._lock:
            room = self._rooms.get(appointment_id)
        seat = room.seats.get(participant_id) if room is not None else None
        return seat.subscriber if seat is not None else None

    # --- what Janus says (its reader thread and the pool's: hand off, never block) ------------

    def on_event(self, url: str, handle: int, message: dict[str, Any]) -> None:
        with self._lock:
            owner = self._handles.get(handle)
        if owner is not None:
            appointment_id, participant_id, role = owner
            self._queue(appointment_id, partial(self._event, handle, participant_id, role,
                                                message))

    def on_lost(self, url: str) -> None:
        """The instance's WebSocket closed (Janus stopped or restarted)."""
        with self._lock:
            self._control.pop(url, None)
            for room in self._rooms.values():
                if room.url == url:
                    room.serial.submit(partial(self._guarded, room, self._lost))

    def on_back(self, url: str) -> None:
        """The instance answers again: its hearings are made again."""
        with self._lock:
            for room in self._rooms.values():
                if room.url == url:  # runs after that room's _lost, if still queued
                    room.serial.submit(partial(self._guarded, room, self._recover))

    # --- the queue ----------------------------------------------------------------------------

    def _queue(self, appointment_id: int, task: Task, *, url: str | None = None,
               sid: str | None = None, event: str = "") -> None:
        with self._lock:
            room = self._rooms.get(appointment_id)
            if room is None:
                if url is None:
                    return  # nothing of this hearing here: nothing to do
                room = self._rooms[appointment_id] = Room(
                    appointment_id, url, Serial(f"hearing-{appointment_id}"))
            # Under the lock: a room forgotten meanwhile (_forget_if_empty) gets no more work.
            room.serial.submit(partial(self._guarded, room, task, sid, event))

    def _guarded(self, room: Room, task: Task, sid: str | None = None,
                 event: str = "") -> None:
        """Run a task in the app's context; its failure is said to the socket that asked."""
        with self.app.app_context():
            try:
                task(room)
            except Refused as refused:
                if sid:
                    self._error(room, sid, event, refused.code, refused.message)
            except JanusGone as gone:
                log.warning("hearing %s: Janus %s lost: %s", room.appointment_id, room.url, gone)
                self._lost(room)
            except JanusError as refused:
                log.warning("hearing %s: Janus refused %s: %s", room.appointment_id,
                            event or "a request", refused)
                if sid:
                    self._error(room, sid, event, "media_server")
            except Exception:
                log.exception("hearing %s: %s failed", room.appointment_id, event or "a task")
                if sid:
                    self._error(room, sid, event, "internal")
            finally:
                db.session.remove()

    def _error(self, room: Room, sid: str, event: str, code: str,
               message: str | None = None) -> None:
        seat = room.seat_of(sid)
        with force_locale(seat.locale if seat else self.app.config["BABEL_DEFAULT_LOCALE"]):
            text = message or (
                _("The media server could not connect you. Try again in a moment.")
                if code == "media_server" else _("Something went wrong on our side."))
        self.outbox.to_socket(sid, "error", {"code": code, "message": text, "event": event})

    # --- the room on Janus --------------------------------------------------------------------

    def _client(self, room: Room) -> Any:
        """The room's Janus client, with the room made on it. A client other than the one
        the room was made with means Janus was lost since: JanusGone, and the room's lost."""
        if room.lost:
            raise JanusGone("Janus is being reconnected")
        client = self.pool.client(room.url)
        if room.client is client:
            return client
        if room.client is not None:
            self._lost(room)
            raise JanusGone("Janus restarted")
        try:
            self._control_request(client, room.url, videoroom.create(self.app,
                                                                     room.appointment_id))
        except JanusGone:
            raise
        except JanusError as exc:
            if exc.code != videoroom.ROOM_EXISTS:  # made by another worker, or the recorder
                raise
        room.client = client
        return client

    def _control_request(self, client: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found = self._control.get(url)
        if found is not None and found[0] is client:
            handle = int(found[1])
        else:
            handle = int(client.attach())
            with self._lock:
                self._control[url] = (client, handle)
        return dict(client.request(handle, body))

    def _attach(self, room: Room, client: Any, participant_id: int, role: str) -> int:
        handle = int(client.attach())
        with self._lock:
            self._handles[handle] = (room.appointment_id, participant_id, role)
        return handle

    def _detach(self, room: Room, *handles: int | None) -> None:
        for handle in handles:
            if handle is None:
                continue
            with self._lock:
                self._handles.pop(handle, None)
            if room.client is None or room.lost:
                continue
            try:
                room.client.detach(handle)
            except JanusGone:
                raise
            except JanusError as exc:  # gone already (kicked, room destroyed)
                log.info("hearing %s: detaching %s: %s", room.appointment_id, handle, exc)

    def _forget_handles(self, room: Room) -> None:
        """Janus is gone with every handle: the seats keep only who and where."""
        room.streams.clear()
        for seat in room.seats.values():
            for handle in seat.let_go():
                with self._lock:
                    self._handles.pop(handle or 0, None)

    def _sit(self, room: Room, client: Any, seat: Seat) -> None:
        """The seat's publisher handle, joined in the room (not yet publishing)."""
        handle = self._attach(room, client, seat.participant_id, "publisher")
        seat.publisher, seat.published = handle, False
        body = videoroom.join_publisher(room.appointment_id, seat.participant_id)
        try:
            joined, _jsep = client.message(handle, body)
        except JanusError as exc:
            if exc.code != videoroom.ID_EXISTS:
                raise
            # The participant's earlier place (another tab, another worker): this one wins.
            try:
                self._control_request(client, room.url, videoroom.kick(
                    self.app, room.appointment_id, seat.participant_id))
            except JanusGone:
                raise
            except JanusError as kick:
                log.info("hearing %s: kicking %s: %s", room.appointment_id,
                         seat.participant_id, kick)
            joined, _jsep = client.message(handle, body)
        room.streams.update(videoroom.published_streams(joined))

    def _seat(self, room: Room, participant_id: int, sid: str) -> Seat:
        seat = room.seats.get(participant_id)
        if seat is None or seat.sid != sid:
            raise Refused("not_in_call", _("Join the call first."))
        return seat

    # --- the tasks (on the room's thread) -----------------------------------------------------

    def _join(self, participant_id: int, sid: str, locale: str, room: Room) -> None:
        old = room.seats.pop(participant_id, None)
        seat = room.seats[participant_id] = Seat(participant_id, sid, locale)
        if room.lost:
            self.outbox.to_socket(sid, "hearing:media", {"state": "reconnecting"})
            return
        try:
            client = self._client(room)
            if old is not None:  # another tab or a reload: its handles go
                self._detach(room, *old.let_go())
            self._sit(room, client, seat)
        except JanusGone:
            raise
        except JanusError:
            self._error(room, sid, "call:join", "media_server")
            raise
        self.outbox.to_socket(sid, "hearing:media", {"state": "ready"})
        self._recompute(room)

    def _publish(self, participant_id: int, sid: str, sdp: str, room: Room) -> None:
        seat = self._seat(room, participant_id, sid)
        client = self._client(room)
        if seat.publisher is None or seat.published:
            # A fresh connection from the browser: a fresh handle (the old one leaves).
            self._detach(room, seat.publisher)
            seat.publisher = None
            self._sit(room, client, seat)
        assert seat.publisher is not None
        seat.published = True
        _data, jsep = client.message(seat.publisher, {"request": "publish"},
                                     jsep={"type": "offer", "sdp": sdp})
        if not jsep or jsep.get("type") != "answer":
            raise JanusError(0, "Janus gave no answer to the publication")
        self.outbox.to_socket(sid, "hearing:answer", {"sdp": jsep["sdp"]})

    def _unpublish(self, participant_id: int, sid: str, room: Room) -> None:
        seat = self._seat(room, participant_id, sid)
        if seat.publisher is None or not seat.published:
            return
        try:
            self._client(room).message(seat.publisher, {"request": "unpublish"})
        except JanusGone:
            raise
        except JanusError as exc:
            if exc.code != videoroom.NOT_PUBLISHED:
                raise

    def _answer(self, participant_id: int, sid: str, sdp: str, room: Room) -> None:
        seat = self._seat(room, participant_id, sid)
        if seat.subscriber is None:
            raise Refused("conflict", _("There is no offer to answer."))
        self._client(room).message(seat.subscriber, {"request": "start"},
                                   jsep={"type": "answer", "sdp": sdp})

    def _candidate(self, participant_id: int, sid: str, pc: str,
                   candidate: dict[str, Any] | None, room: Room) -> None:
        seat = self._seat(room, participant_id, sid)
        handle = seat.publisher if pc == "publish" else seat.subscriber
        if handle is not None:  # else that connection is gone here: its candidates too
            self._client(room).trickle(handle, videoroom.candidate(candidate))

    def _layer(self, participant_id: int, sid: str, feed: int, substream: int,
               room: Room) -> None:
        seat = self._seat(room, participant_id, sid)
        mid = seat.videos.get(feed)
        if seat.subscriber is None or mid is None:
            raise Refused("unknown_peer", _("You do not receive that participant's video."))
        self._client(room).message(seat.subscriber, {
            "request": "configure", "streams": [{"mid": mid, "substream": substream}]})

    def _leave(self, participant_id: int, sid: str, room: Room) -> None:
        seat = room.seats.get(participant_id)
        if seat is None or seat.sid != sid:
            return  # another socket holds the place now
        del room.seats[participant_id]
        self._detach(room, *seat.let_go())
        self._forget_if_empty(room)

    def _forget_if_empty(self, room: Room) -> None:
        with self._lock:
            if not room.seats and room.serial.idle and \
                    self._rooms.get(room.appointment_id) is room:
                del self._rooms[room.appointment_id]

    def _end(self, room: Room) -> None:
        self._forget_handles(room)
        room.seats.clear()
        if not room.url:  # no seat here: the room is where the hearing was pinned
            appointment = db.session.get(Appointment, room.appointment_id)
            room.url = (appointment.janus_url or "") if appointment is not None else ""
        if room.url and not room.lost:
            try:
                self._control_request(self.pool.client(room.url), room.url,
                                      videoroom.destroy(self.app, room.appointment_id))
            except JanusError as exc:  # never made there, or Janus is gone: nothing left
                log.info("hearing %s: destroying the room: %s", room.appointment_id, exc)
        with self._lock:
            if self._rooms.get(room.appointment_id) is room:
                del self._rooms[room.appointment_id]

    # --- subscriptions ------------------------------------------------------------------------

    def _recompute(self, room: Room) -> None:
        """Each seat's subscription: exactly the allowed feeds that are publishing now."""
        if not room.seats or room.lost:
            return
        client = self._client(room)
        publishing = videoroom.publishing(self._control_request(
            client, room.url, {"request": "listparticipants", "room": room.appointment_id}))
        appointment = db.session.get(Appointment, room.appointment_id)
        if appointment is None:
            return
        if _recording(appointment):
            self._hold_the_record(room, client, appointment)
        for seat in list(room.seats.values()):
            participant = db.session.get(Participant, seat.participant_id)
            allowed = (procedure.allowed_feeds(appointment, participant)
                       if participant is not None else {})
            want = {feed: media for feed, media in allowed.items() if feed in publishing}
            try:
                self._subscribe(room, client, seat, want)
            except JanusGone:
                raise
            except JanusError as exc:  # one seat's trouble is not the others'
                log.warning("hearing %s: subscribing %s: %s", room.appointment_id,
                            seat.participant_id, exc)
                if exc.code != videoroom.NO_SUCH_FEED:  # one just left: its event follows
                    self._error(room, seat.sid, "hearing:offer", "media_server")
        db.session.rollback()

    def _hold_the_record(self, room: Room, client: Any, appointment: Appointment) -> None:
        """Stop at once every forward to the recorder of media the record must not hold now
        (someone went into a private room, was muted, dismissed; the hearing paused), before
        anyone is subscribed anew. The recorder would at its next turn, up to
        PORTAL_RECORDER_POLL_MS later: a private room's first second must not reach it."""
        recorded = procedure.recorded_feeds(appointment)
        listed = self._control_request(client, room.url, videoroom.list_forwarders(
            self.app, room.appointment_id))
        for feed, stream_id, kind in videoroom.forwarders(listed):
            if kind in recorded.get(feed, set()):
                continue
            try:
                self._control_request(client, room.url, videoroom.stop_forward(
                    self.app, room.appointment_id, feed, stream_id))
            except JanusGone:
                raise
            except JanusError as exc:  # the recorder (or another worker) stopped it first
                log.info("hearing %s: stopping forward %s of %s: %s", room.appointment_id,
                         stream_id, feed, exc)
            else:
                log.info("hearing %s: stopped forwarding %s of %s to the recorder",
                         room.appointment_id, kind, feed)

    def _subscribe(self, room: Room, client: Any, seat: Seat, want: procedure.Feeds) -> None:
        """Stream by stream: a whole feed as `{feed}`, one medium of it by its mid (one not
        known yet is left out until the room's event names it, and a recompute follows)."""
        add: list[dict[str, Any]] = []
        asked: procedure.Feeds = {}
        for feed in sorted(want):
            have = seat.media.get(feed, set())
            asked[feed] = set(have & want[feed])
            new = want[feed] - have
            if not new:
                continue
            if not have and new == procedure.BOTH:
                add.append({"feed": feed})
                asked[feed] |= new
                continue
            for kind in sorted(new):
                mid = room.streams.get(feed, {}).get(kind)
                if mid is not None:
                    add.append({"feed": feed, "mid": mid})
                    asked[feed].add(kind)
        remove: list[dict[str, Any]] = []
        for feed in sorted(seat.media):
            drop = seat.media[feed] - want.get(feed, set())
            if drop == seat.media[feed]:
                remove.append({"feed": feed})
                continue
            for kind in sorted(drop):
                mid = seat.mids.get((feed, kind))
                if mid is not None:
                    remove.append({"sub_mid": mid})
        asked = {feed: media for feed, media in asked.items() if media}
        if seat.subscriber is None:
            if not add:
                return
            handle = self._attach(room, client, seat.participant_id, "subscriber")
            try:
                data, jsep = client.message(handle, videoroom.join_subscriber(
                    room.appointment_id, add))
            except JanusError:
                self._detach(room, handle)
                raise
            seat.subscriber = handle
        elif add or remove:
            data, jsep = client.message(seat.subscriber, videoroom.update(add, remove))
        else:
            return
        seat.media = asked  # until Janus describes it
        self._offered(seat, data, jsep)

    def _offered(self, seat: Seat, data: dict[str, Any], jsep: dict[str, Any] | None) -> None:
        """Janus described the subscription (and may offer it): the browser gets the offer."""
        streams = videoroom.streams(data)
        if streams is None:
            return
        seat.receives(streams)
        if jsep and jsep.get("type") == "offer":
            self.outbox.to_socket(seat.sid, "hearing:offer",
                                  {"sdp": jsep["sdp"], "streams": streams})

    # --- Janus's events -----------------------------------------------------------------------

    def _event(self, handle: int, participant_id: int, role: str, message: dict[str, Any],
               room: Room) -> None:
        seat = room.seats.get(participant_id)
        if seat is None or handle not in (seat.publisher, seat.subscriber):
            return  # a handle let go meanwhile
        kind = message.get("janus")
        data = message.get("plugindata", {}).get("data", {})
        if kind == "hangup" and role == "subscriber":
            # The receiving connection failed or was closed: a fresh one, offered anew.
            self._detach(room, seat.subscriber)
            seat.subscriber = None
            seat.receives([])
            self._recompute(room)
        elif kind != "event" or not isinstance(data, dict):
            return
        elif role == "subscriber":
            self._offered(seat, data, message.get("jsep"))
        elif data.get("videoroom") == "talking" and data.get("id") == participant_id:
            # Every handle in the room hears it; the speaker's own is on one worker only,
            # which tells the call, once.
            self.outbox.to_call(room.appointment_id, "hearing:speaker",
                                {"participant_id": participant_id})
        elif videoroom.changes_feeds(data):
            room.streams.update(videoroom.published_streams(data))
            gone = videoroom.gone_feed(data)
            if gone is not None:
                room.streams.pop(gone, None)
            # Every seat's publisher handle hears the same event: one recompute for all.
            room.due = True
            room.serial.submit(partial(self._guarded, room, self._recompute_due))

    def _recompute_due(self, room: Room) -> None:
        if room.due:
            room.due = False
            self._recompute(room)

    # --- Janus lost and back ------------------------------------------------------------------

    def _lost(self, room: Room) -> None:
        """Every handle of the room died with Janus: the browsers hear it, and the room is
        made again as soon as the instance answers."""
        if not room.lost:
            room.lost, room.client = True, None
            self._forget_handles(room)
            for seat in room.seats.values():
                self.outbox.to_socket(seat.sid, "hearing:media", {"state": "reconnecting"})
        self._retry_later(room)

    def _retry_later(self, room: Room) -> None:
        if room.retrying:
            return
        room.retrying = True

        def again() -> None:
            room.retrying = False
            room.serial.submit(partial(self._guarded, room, self._recover))

        timer = threading.Timer(self.retry_seconds, again)
        timer.daemon = True
        timer.start()

    def _recover(self, room: Room) -> None:
        """The room made again, everyone's place in it, then `ready`: they publish again."""
        if not room.lost:
            return
        if not room.seats:
            self._forget_if_empty(room)
            return
        room.lost = False
        try:
            client = self._client(room)
            for seat in room.seats.values():
                self._sit(room, client, seat)
        except JanusError as exc:
            log.info("hearing %s: Janus %s not back yet: %s", room.appointment_id, room.url,
                     exc)
            room.lost, room.client = True, None
            self._forget_handles(room)
            self._retry_later(room)
            return
        for seat in room.seats.values():
            self.outbox.to_socket(seat.sid, "hearing:media", {"state": "ready"})
        self._recompute(room)


def _recording(appointment: Appointment) -> bool:
    """A recording of the call is running (its recorder forwards from Janus)."""
    return db.session.scalars(select(Recording.id).where(
        Recording.appointment_id == appointment.id,
        Recording.status.in_((RecordingStatus.RECORDING, RecordingStatus.PAUSED))).limit(1),
    ).first() is not None
