"""The recorder's view of one hearing's Janus room: who publishes which streams, and the RTP
forwards the recorder asks Janus for.

The recorder joins the room as a participant that never publishes (VideoRoom sends such a
handle every publisher's streams when it joins, then "publishers", "unpublished" and
"leaving" events), with a fixed id of its own so that the web workers can tell it from the
participants. A publication's streams (their mids, whether video is simulcast) are what
`rtp_forward` needs; forwarding a simulcast video as one stream (`simulcast: true`) gives
the best layer Janus has, switching layers on keyframes.

Requests block (the Janus client waits for the answer): call them from the recorder's loop,
never from Janus's reader thread. Events (`on_event`) only update the table, under a lock.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from portal.hearing.janus import JanusClient, JanusError, JanusGone
from portal.recording.forwarded import SRTP_SUITE, Endpoint

log = logging.getLogger(__name__)

#: The recorder's participant id in every room (2^53 - 1: no participant's, exact in JSON).
RECORDER_ID = 9007199254740991
NO_SUCH_ROOM, NO_SUCH_FEED, ID_EXISTS = 426, 428, 436
#: Codecs the pass-through muxer stores as received.
RECORDABLE = {"audio": "opus", "video": "vp8"}


@dataclass(frozen=True)
class Publication:
    """One publisher's streams as Janus announced them. `number` grows with each new
    publication of the room, so a republish (new streams) is never taken for the old one."""

    participant_id: int
    number: int
    streams: tuple[dict[str, Any], ...]

    def recordable(self) -> dict[str, dict[str, Any]]:
        """kind -> the first active stream of that kind in a codec the recorder stores."""
        found: dict[str, dict[str, Any]] = {}
        for stream in self.streams:
            kind = stream.get("type")
            if (kind in RECORDABLE and kind not in found and not stream.get("disabled")
                    and str(stream.get("codec", "")).lower() == RECORDABLE[kind]
                    and isinstance(stream.get("mid"), str)):
                found[kind] = stream
        return found


@dataclass(frozen=True)
class Forwarders:
    """What Janus made for one publication: kind -> the forwarder's stream id, and kind -> the
    port of Janus's RTCP socket for it (video: where keyframe requests go)."""

    stream_ids: dict[str, int]
    rtcp_ports: dict[str, int]


@dataclass
class RoomWatch:
    """The recorder in one room on one Janus client (`join` first; `leave` at the end)."""

    client: JanusClient
    room: int
    secret: str
    admin_key: str
    handle: int | None = None
    joined: bool = False
    gone: bool = False  # the room or the handle is no more (destroyed, kicked, Janus lost)
    _publications: dict[int, Publication] = field(default_factory=dict)
    _numbered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- joining and leaving ---------------------------------------------------------------------

    def attach(self) -> int:
        """The watch's handle (attached on first use): events come to it from now on."""
        return self._handle()

    def join(self) -> None:
        """Join as the silent participant. JanusError 426 if the room does not exist (yet):
        try again later. A recorder that died may still sit in the room under the same id
        until Janus drops its session: it is kicked out first."""
        body = {"request": "join", "ptype": "publisher", "room": self.room,
                "id": RECORDER_ID, "display": "recorder"}
        try:
            try:
                joined, _ = self.client.message(self._handle(), body)
            except JanusError as exc:
                if exc.code != ID_EXISTS:
                    raise
                self._request({"request": "kick", "id": RECORDER_ID})
                joined, _ = self.client.message(self._handle(), body)
        except JanusError:
            self._detach()
            raise
        self.joined = True
        with self._lock:
            for publisher in joined.get("publishers", []):
                self._publish(publisher)

    def leave(self) -> None:
        """Out of the room, the handle detached; Janus errors are logged, not raised."""
        if self.handle is None:
            return
        if self.joined and not self.gone:
            try:
                self.client.message(self.handle, {"request": "leave"})
            except JanusError as exc:
                log.info("room %s: leaving: %s", self.room, exc)
        self._detach()

    def _detach(self) -> None:
        handle, self.handle = self.handle, None
        self.gone = True
        if handle is not None and self.client.alive:
            try:
                self.client.detach(handle)
            except JanusError as exc:
                log.info("room %s: detaching: %s", self.room, exc)

    # -- what Janus tells the handle (reader thread: quick) --------------------------------------

    def on_event(self, message: dict[str, Any]) -> bool:
        """Take one of the handle's messages into account; True if the publishers changed."""
        kind = message.get("janus")
        if kind in ("detached", "hangup"):
            self.gone = True
            return True
        data = message.get("plugindata", {}).get("data", {})
        if kind != "event" or not isinstance(data, dict):
            return False
        if data.get("videoroom") == "destroyed":
            self.gone = True
            return True
        with self._lock:
            changed = False
            for publisher in data.get("publishers", []) or []:
                changed |= self._publish(publisher)
            for key in ("unpublished", "leaving", "kicked"):
                who = data.get(key)
                if isinstance(who, int) and who != RECORDER_ID:
                    changed |= self._publications.pop(who, None) is not None
                elif who == RECORDER_ID:
                    self.gone = changed = True
            return changed

    def _publish(self, publisher: dict[str, Any]) -> bool:
        who = publisher.get("id")
        if not isinstance(who, int) or who == RECORDER_ID or publisher.get("dummy"):
            return False
        self._numbered += 1
        self._publications[who] = Publication(who, self._numbered,
                                               tuple(publisher.get("streams") or ()))
        return True

    def publications(self) -> dict[int, Publication]:
        with self._lock:
            return dict(self._publications)

    # -- forwarding --------------------------------------------------------------------------

    def forward(self, publication: Publication, endpoints: dict[str, Endpoint]) -> Forwarders:
        """Ask Janus to forward each stream to its endpoint (each with its own SRTP key). On
        an error the forwards made so far are stopped and the error raised."""
        streams = publication.recordable()
        made: dict[str, int] = {}
        rtcp_ports: dict[str, int] = {}
        try:
            for kind, endpoint in sorted(endpoints.items()):
                stream = streams[kind]
                target: dict[str, Any] = {"mid": stream["mid"], "port": endpoint.port}
                if endpoint.rtcp_port is not None:
                    target["rtcp_port"] = endpoint.rtcp_port
                if kind == "video" and stream.get("simulcast"):
                    target["simulcast"] = True
                answer = self._request({
                    "request": "rtp_forward", "publisher_id": publication.participant_id,
                    "host": endpoint.host, "streams": [target], "srtp_suite": SRTP_SUITE,
                    "srtp_crypto": endpoint.srtp_crypto})
                forwarders = answer.get("forwarders") or []
                if not forwarders:  # Janus skips a mid it does not know instead of failing
                    raise JanusError(NO_SUCH_FEED, f"no {kind} stream {stream['mid']} to forward")
                made[kind] = int(forwarders[0]["stream_id"])
                if forwarders[0].get("local_rtcp_port"):
                    rtcp_ports[kind] = int(forwarders[0]["local_rtcp_port"])
        except JanusError:
            self.stop_forwards(publication.participant_id, made.values())
            raise
        return Forwarders(made, rtcp_ports)

    def stop_forwards(self, participant_id: int, stream_ids: Any) -> None:
        """Stop these forwarders; one already gone (the publisher left) is no error."""
        for stream_id in stream_ids:
            try:
                self._request({"request": "stop_rtp_forward", "publisher_id": participant_id,
                               "stream_id": stream_id})
            except JanusGone:
                return
            except JanusError as exc:
                log.info("room %s: stopping forward %s of %s: %s", self.room, stream_id,
                         participant_id, exc)

    def clear_forwards(self, keep: frozenset[int] = frozenset()) -> int:
        """Stop every forwarder in the room but `keep` (a recorder that died left its own
        sending to ports nobody reads). Only the portal can forward (lock_rtp_forward)."""
        listed = self._request({"request": "listforwarders"})
        stopped = 0
        for publisher in listed.get("publishers", []) or []:
            stale = [f["stream_id"] for f in publisher.get("forwarders", []) or []
                     if f.get("stream_id") not in keep]
            self.stop_forwards(int(publisher["publisher_id"]), stale)
            stopped += len(stale)
        return stopped

    def _handle(self) -> int:
        if self.handle is None:
            self.handle = self.client.attach()
        return self.handle

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """A room request with the room's secret and VideoRoom's admin key (rtp_forward is
        locked to it)."""
        return self.client.request(self._handle(), {**body, "room": self.room,
                                                    "secret": self.secret,
                                                    "admin_key": self.admin_key})
