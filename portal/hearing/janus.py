"""A thread-based client of Janus's WebSocket API: one WebSocket, one Janus session.

The portal runs Flask-SocketIO in threading mode, so this is plain threads: a reader thread
that hands each answer to the request waiting for it (by transaction id) and everything else
to `on_event`, and a keepalive thread (Janus ends a session that is silent for its
`session_timeout`). A lost socket, a session Janus timed out, or an unanswered keepalive make
the client dead: every waiting request raises `JanusGone` and `on_close(reason)` is called once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import websocket

log = logging.getLogger(__name__)

SUBPROTOCOL = "janus-protocol"
VIDEOROOM = "janus.plugin.videoroom"

EventHandler = Callable[[int, dict[str, Any]], None]
CloseHandler = Callable[[str], None]


class JanusError(Exception):
    """Janus refused a request: `code` is Janus's (or the plugin's) error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (Janus error {code})" if code else reason)
        self.code = code
        self.reason = reason


class JanusTimeout(JanusError):
    """No answer within the timeout; the client may still be alive."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


class JanusGone(JanusError):
    """The WebSocket or the session is lost: this client is dead, make a new one."""

    def __init__(self, reason: str) -> None:
        super().__init__(0, reason)


@dataclass
class _Pending:
    finals: frozenset[str]  # the kinds of answer that end the request ("ack" alone does not)
    done: threading.Event = field(default_factory=threading.Event)
    answer: dict[str, Any] | None = None
    error: JanusError | None = None


def _plugin_data(answer: dict[str, Any]) -> dict[str, Any]:
    """The plugin's answer; a plugin-level error (VideoRoom's `error_code`) raises."""
    data = answer.get("plugindata", {}).get("data", {})
    if not isinstance(data, dict):
        raise JanusError(0, f"Janus answered without plugin data: {answer.get('janus')}")
    if "error_code" in data or "error" in data:
        raise JanusError(int(data.get("error_code") or 0), str(data.get("error", "")))
    return data


class JanusClient:
    """One Janus session over one WebSocket, `apisecret` on every request."""

    def __init__(self, url: str, api_secret: str, *, timeout: float = 10.0,
                 keepalive: float = 25.0, on_event: EventHandler | None = None,
                 on_close: CloseHandler | None = None) -> None:
        self.url = url
        self.timeout = timeout
        self.keepalive = keepalive
        self._secret = api_secret
        self._on_event = on_event
        self._on_close = on_close
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._ws: websocket.WebSocket | None = None
        self._session: int | None = None
        self._gone: str | None = None  # why the client is dead, once it is
        self._closing = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- life -------------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the WebSocket, create the session, start the reader and keepalive threads.
        Raises JanusGone when Janus cannot be reached, JanusError when it refuses."""
        if self._ws is not None:
            raise RuntimeError("a JanusClient connects once; make a new one")
        try:
            self._ws = websocket.create_connection(
                self.url, subprotocols=[SUBPROTOCOL], timeout=self.timeout,
                enable_multithread=True, suppress_origin=True)
        except (OSError, websocket.WebSocketException) as exc:
            self._gone = f"cannot reach Janus at {self.url}: {exc}"
            raise JanusGone(self._gone) from exc
        self._ws.settimeout(None)  # the reader waits as long as it takes; requests time out
        self._start(self._read, "reader")
        try:
            answer = self._call({"janus": "create"}, {"success"}, session=False)
        except JanusError:
            self._shut("the session could not be created")
            self._join()
            raise
        self._session = int(answer["data"]["id"])
        self._start(self._keep_alive, "keepalive")

    @property
    def alive(self) -> bool:
        return self._session is not None and self._gone is None

    @property
    def session_id(self) -> int | None:
        return self._session

    def close(self) -> None:
        """Destroy the session, close the socket, stop the threads (on_close is not called).
        Safe to call more than once, and from on_close or on_event."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self.alive:
            # A courtesy: Janus also drops the session when the socket closes.
            with contextlib.suppress(JanusError):
                self._call({"janus": "destroy"}, {"success"}, timeout=min(self.timeout, 1.0))
        self._shut("closed")
        self._join()

    # --- requests ---------------------------------------------------------------------------

    def attach(self, plugin: str = VIDEOROOM) -> int:
        """A new handle on the plugin; its id."""
        answer = self._call({"janus": "attach", "plugin": plugin}, {"success"})
        return int(answer["data"]["id"])

    def request(self, handle: int, body: dict[str, Any],
                timeout: float | None = None) -> dict[str, Any]:
        """A synchronous plugin request (VideoRoom's create, exists, listparticipants, ...):
        the plugin's data. JanusError if Janus or the plugin refuses."""
        answer = self._call({"janus": "message", "body": body}, {"success", "event"},
                            handle=handle, timeout=timeout)
        return _plugin_data(answer)

    def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None,
                timeout: float | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """An asynchronous plugin request (join, configure, start, ...): Janus acks, then
        answers with an event of the same transaction. (the plugin's data, its jsep or None)."""
        payload: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            payload["jsep"] = jsep
        answer = self._call(payload, {"success", "event"}, handle=handle, timeout=timeout)
        return _plugin_data(answer), answer.get("jsep")

    def trickle(self, handle: int, candidate: dict[str, Any] | None) -> None:
        """Hand Janus a browser's ICE candidate; None: the browser has gathered them all."""
        self._call({"janus": "trickle", "candidate": candidate or {"completed": True}},
                   {"ack"}, handle=handle)

    def detach(self, handle: int) -> None:
        self._call({"janus": "detach"}, {"success"}, handle=handle)

    def _call(self, payload: dict[str, Any], finals: set[str], *, session: bool = True,
              handle: int | None = None, timeout: float | None = None) -> dict[str, Any]:
        transaction = secrets.token_urlsafe(12)
        message = {**payload, "transaction": transaction, "apisecret": self._secret}
        if session:
            message["session_id"] = self._session
        if handle is not None:
            message["handle_id"] = handle
        pending = _Pending(frozenset(finals))
        with self._lock:
            if self._gone is not None or self._ws is None:
                raise JanusGone(self._gone or "not connected")
            self._pending[transaction] = pending
            ws = self._ws
        try:
            ws.send(json.dumps(message))
        except (OSError, websocket.WebSocketException) as exc:
            self._shut(f"sending to Janus failed: {exc}")
        wait = self.timeout if timeout is None else timeout
        if not pending.done.wait(wait):
            with self._lock:
                self._pending.pop(transaction, None)
            if not pending.done.is_set():  # an answer may have come just now
                raise JanusTimeout(f"Janus did not answer {payload['janus']} within {wait:g} s")
        if pending.error is not None:
            raise pending.error
        assert pending.answer is not None
        return pending.answer

    # --- the threads ------------------------------------------------------------------------

    def _start(self, target: Callable[[], None], role: str) -> None:
        thread = threading.Thread(target=target, name=f"janus-{role} {self.url}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _join(self) -> None:
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=self.timeout + 1)

    def _read(self) -> None:
        assert self._ws is not None
        reason = "Janus closed the WebSocket"
        try:
            while True:
                opcode, data = self._ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self._dispatch(data)
        except (OSError, websocket.WebSocketException) as exc:
            reason = f"the WebSocket to Janus was lost: {exc or type(exc).__name__}"
        finally:
            self._shut(reason)
            self._ws.shutdown()

    def _dispatch(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            kind = message["janus"]
        except (ValueError, KeyError, TypeError):
            log.warning("Janus %s sent something that is not a Janus message", self.url)
            return
        if kind == "timeout" and self._session is not None \
                and message.get("session_id") == self._session:
            self._shut("Janus timed the session out")
            return
        transaction = message.get("transaction")
        with self._lock:
            pending = self._pending.get(transaction) if transaction else None
            if pending is not None and (kind == "error" or kind in pending.finals):
                del self._pending[transaction]
            elif pending is not None:
                return  # an "ack" before the event that answers
        if pending is not None:
            if kind == "error":
                error = message.get("error", {})
                pending.error = JanusError(int(error.get("code", 0)), str(error.get("reason")))
            else:
                pending.answer = message
            pending.done.set()
            return
        if transaction is not None:
            log.info("Janus %s answered %s late (the request had timed out)", self.url, kind)
            return
        if self._on_event is not None:
            try:
                self._on_event(int(message.get("sender") or 0), message)
            except Exception:
                log.exception("on_event failed for a Janus %s message", kind)

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.keepalive):
            try:
                self._call({"janus": "keepalive"}, {"ack"})
            except JanusTimeout:
                self._shut(f"Janus did not answer a keepalive within {self.timeout:g} s")
                return
            except JanusError:
                return  # gone: _shut has run

    def _shut(self, reason: str) -> None:
        """The client is dead from now on: fail what waits, wake the reader, tell on_close
        (once, and not when close() is the reason)."""
        with self._lock:
            if self._gone is not None:
                return
            self._gone = reason
            waiting = list(self._pending.values())
            self._pending.clear()
            tell = not self._closing and self._session is not None
        self._stop.set()
        for pending in waiting:
            pending.error = JanusGone(reason)
            pending.done.set()
        ws = self._ws
        if ws is not None and ws.sock is not None:
            try:  # wakes the reader blocked in recv; it closes the socket on its way out
                if self._closing:
                    ws.send_close()
                ws.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, websocket.WebSocketException):
                pass
        if tell and self._on_close is not None:
            try:
                self._on_close(reason)
            except Exception:
                log.exception("on_close failed for Janus %s", self.url)
