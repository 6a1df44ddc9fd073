"""Enough of Janus's VideoRoom, behind tests/fake_janus.py's WebSocket, for the portal's
hearing media layer to run against in a socket test: rooms, publishers (each publishing an
audio stream, mid "0", and a video stream, mid "1"), subscriptions of whole feeds (`{feed}`) or
single streams (`{feed, mid}`), updates (`subscribe`, `unsubscribe` by feed or `sub_mid`), the
room events publishers hear, and the recorder's RTP forwards (`rtp_forward` of one mid,
`stop_rtp_forward`, `listforwarders`; no packets are sent). It keeps what each subscriber
handle holds and every stream it ever held, so a test can say what someone received, and
never received. Not Janus: the live
tests (e2e/test_hearing_live.py) run the same requests against the real one."""

from __future__ import annotations

import threading
import time
from itertools import count
from typing import Any

from fake_janus import SESSION, FakeJanus

#: What each publisher publishes: kind -> the publisher's mid (and its codec).
PUBLISHED = {"audio": "0", "video": "1"}
CODECS = {"audio": "opus", "video": "vp8"}
ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=answer\r\nt=0 0\r\n"
OFFER = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=offer\r\nt=0 0\r\n"


class FakeVideoRoom:
    """The plugin's state, and `answer()` for FakeJanus."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._handles = count(5000)
        #: Publisher handle -> feed (participant id); feeds publishing now.
        self.publishers: dict[int, int] = {}
        self.publishing: set[int] = set()
        #: Subscriber handle -> [(sub mid, feed, kind)] now; and every (feed, kind) ever held.
        self.subscriptions: dict[int, list[tuple[str, int, str]]] = {}
        self.ever: dict[int, set[tuple[int, str]]] = {}
        self._mids: dict[int, count[int]] = {}
        #: Every plugin request body, in order.
        self.requests: list[dict[str, Any]] = []
        #: RTP forwards now: stream id -> (feed, kind).
        self.forwards: dict[int, tuple[int, str]] = {}
        self._stream_ids = count(700)
        self.janus = FakeJanus(self.answer)

    @property
    def url(self) -> str:
        return self.janus.url

    def close(self) -> None:
        self.janus.close()

    # --- what a test reads --------------------------------------------------------------------

    def holds(self, handle: int | None) -> set[tuple[int, str]]:
        with self.lock:
            return {(feed, kind) for _mid, feed, kind in self.subscriptions.get(handle or 0, [])}

    def ever_held(self, handle: int | None) -> set[tuple[int, str]]:
        with self.lock:
            return set(self.ever.get(handle or 0, set()))

    def settle(self, check: Any, show: Any, timeout: float = 5.0) -> None:
        """Until check() is true: looked at after each request, and every 50 ms (the portal
        notes a handle once Janus's answer is in)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not check():
                assert time.monotonic() < deadline, f"never settled: {show()}"
                self.lock.wait(0.05)

    def wait(self, check: Any, timeout: float = 5.0) -> None:
        """Until check() is true (it runs under the lock, after each request)."""
        with self.lock:
            assert self.lock.wait_for(check, timeout), "the fake VideoRoom never got there"

    # --- Janus ----------------------------------------------------------------------------------

    def answer(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        with self.lock:
            try:
                return self._answer(message)
            finally:
                self.lock.notify_all()

    def _answer(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        tx = message.get("transaction")
        kind = message.get("janus")
        base = {"transaction": tx, "session_id": SESSION}
        if kind == "create":
            return [{"janus": "success", "transaction": tx, "data": {"id": SESSION}}]
        if kind == "attach":
            return [{"janus": "success", **base, "data": {"id": next(self._handles)}}]
        if kind in ("keepalive", "trickle"):
            return [{"janus": "ack", **base}]
        if kind == "destroy":
            return [{"janus": "success", **base}]
        if kind == "detach":
            return [{"janus": "success", **base}, *self._gone(message["handle_id"])]
        if kind != "message":
            return [{"janus": "error", **base, "error": {"code": 453, "reason": "unknown"}}]
        handle, body = message["handle_id"], message["body"]
        self.requests.append(body)
        request = body.get("request")
        if request in ("create", "destroy", "kick"):
            return [self._success(handle, tx, {"videoroom": request + "d", "room": body["room"]})]
        if request in ("rtp_forward", "stop_rtp_forward", "listforwarders"):
            return [self._success(handle, tx, self._forward(body))]
        if request == "listparticipants":
            return [self._success(handle, tx, {"videoroom": "participants", "participants": [
                {"id": feed, "display": str(feed), "publisher": feed in self.publishing}
                for feed in self.publishers.values()]})]
        ack = {"janus": "ack", **base}
        if request == "join" and body.get("ptype") == "publisher":
            self.publishers[handle] = body["id"]
            return [ack, self._event(handle, tx, {
                "videoroom": "joined", "room": body["room"], "id": body["id"],
                "publishers": [self._publisher(f) for f in sorted(self.publishing)]})]
        if request == "publish":
            feed = self.publishers[handle]
            self.publishing.add(feed)
            news = {"videoroom": "event", "room": 1, "publishers": [self._publisher(feed)]}
            return [ack, self._event(handle, tx, {"videoroom": "event", "configured": "ok"},
                                     {"type": "answer", "sdp": ANSWER}),
                    *self._tell_others(handle, news)]
        if request == "unpublish":
            return [ack, self._event(handle, tx, {"videoroom": "event", "unpublished": "ok"}),
                    *self._unpublished(handle, "unpublished")]
        if request == "join":  # a subscriber
            self.subscriptions[handle] = []
            self._mids[handle] = count()
            self._add(handle, body.get("streams", []))
            return [ack, self._described(handle, tx, "attached")]
        if request == "update":
            self._remove(handle, body.get("unsubscribe", []))
            self._add(handle, body.get("subscribe", []))
            return [ack, self._described(handle, tx, "updated")]
        return [ack, self._event(handle, tx, {"videoroom": "event", request: "ok"})]

    def forwarded(self) -> set[tuple[int, str]]:
        """(feed, kind) forwarded now."""
        with self.lock:
            return set(self.forwards.values())

    def _forward(self, body: dict[str, Any]) -> dict[str, Any]:
        feed = body.get("publisher_id")
        if body["request"] == "listforwarders":
            feeds: dict[int, list[dict[str, Any]]] = {}
            for stream_id, (fed, kind) in self.forwards.items():
                feeds.setdefault(fed, []).append({"stream_id": stream_id, "type": kind})
            return {"videoroom": "forwarders", "publishers": [
                {"publisher_id": f, "forwarders": found} for f, found in feeds.items()]}
        if body["request"] == "stop_rtp_forward":
            self.forwards.pop(body["stream_id"], None)
            return {"videoroom": "stop_rtp_forward", "publisher_id": feed,
                    "stream_id": body["stream_id"]}
        made = []
        for stream in body.get("streams", []):
            kind = next(k for k, mid in PUBLISHED.items() if mid == stream["mid"])
            stream_id = next(self._stream_ids)
            self.forwards[stream_id] = (feed, kind)
            made.append({"stream_id": stream_id, "type": kind, "host": body["host"],
                         "port": stream["port"]})
        return {"videoroom": "rtp_forward", "publisher_id": feed, "forwarders": made}

    def _success(self, handle: int, tx: Any, data: dict[str, Any]) -> dict[str, Any]:
        return {"janus": "success", "transaction": tx, "session_id": SESSION, "sender": handle,
                "plugindata": {"plugin": "janus.plugin.videoroom", "data": data}}

    def _event(self, handle: int, tx: Any, data: dict[str, Any],
               jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        event = {"janus": "event", "session_id": SESSION, "sender": handle,
                 "plugindata": {"plugin": "janus.plugin.videoroom", "data": data}}
        if tx is not None:
            event["transaction"] = tx
        if jsep is not None:
            event["jsep"] = jsep
        return event

    def _publisher(self, feed: int) -> dict[str, Any]:
        return {"id": feed, "display": str(feed), "streams": [
            {"type": kind, "mindex": int(mid), "mid": mid, "codec": CODECS[kind]}
            for kind, mid in PUBLISHED.items()]}

    def _tell_others(self, handle: int, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._event(other, None, data) for other in self.publishers if other != handle]

    def _unpublished(self, handle: int, key: str) -> list[dict[str, Any]]:
        feed = self.publishers.get(handle)
        if feed is None or feed not in self.publishing:
            return []
        self.publishing.discard(feed)
        self.forwards = {i: f for i, f in self.forwards.items() if f[0] != feed}
        for held in self.subscriptions.values():
            held[:] = [s for s in held if s[1] != feed]
        return self._tell_others(handle, {"videoroom": "event", "room": 1, key: feed})

    def _gone(self, handle: int) -> list[dict[str, Any]]:
        self.subscriptions.pop(handle, None)
        told = self._unpublished(handle, "leaving")
        self.publishers.pop(handle, None)
        return told

    def _add(self, handle: int, streams: list[dict[str, Any]]) -> None:
        held = self.subscriptions[handle]
        for wanted in streams:
            feed = wanted["feed"]
            if feed not in self.publishing:  # left meanwhile (Janus: an error; here: ignored)
                continue
            kinds = [k for k, mid in PUBLISHED.items() if wanted.get("mid") in (None, mid)]
            for kind in kinds:
                if not any(s[1:] == (feed, kind) for s in held):
                    held.append((str(next(self._mids[handle])), feed, kind))
                    self.ever.setdefault(handle, set()).add((feed, kind))

    def _remove(self, handle: int, streams: list[dict[str, Any]]) -> None:
        held = self.subscriptions[handle]
        for gone in streams:
            held[:] = [s for s in held if not (s[1] == gone.get("feed") and "mid" not in gone
                                               or s[0] == gone.get("sub_mid"))]

    def _described(self, handle: int, tx: Any, what: str) -> dict[str, Any]:
        streams = [{"type": kind, "active": True, "mid": mid, "feed_id": feed,
                    "feed_mid": PUBLISHED[kind]} for mid, feed, kind in self.subscriptions[handle]]
        return self._event(handle, tx, {"videoroom": what, "room": 1, "streams": streams},
                           {"type": "offer", "sdp": OFFER})
