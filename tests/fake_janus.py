"""A scripted stand-in for Janus's WebSocket API on 127.0.0.1, for the client's unit tests:
what real Janus cannot be made to do on cue (answer late, answer twice, send garbage, close
mid-request). `answer(message)` returns the replies to each request (none: it never answers).
The live tests against real Janus are in test_janus_client.py; this is not Janus."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

Answer = Callable[[dict[str, Any]], list[dict[str, Any]]]
SESSION = 1111


def janus_like(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Enough of Janus for the client: create, attach, keepalive, trickle, detach, destroy,
    and a plugin that echoes its body back as data (a body with "async" answers ack + event)."""
    tx = message.get("transaction")
    kind = message.get("janus")
    if kind == "create":
        return [{"janus": "success", "transaction": tx, "data": {"id": SESSION}}]
    if kind == "attach":
        return [{"janus": "success", "transaction": tx, "session_id": SESSION,
                 "data": {"id": 2222}}]
    if kind in ("keepalive", "trickle"):
        return [{"janus": "ack", "transaction": tx, "session_id": SESSION}]
    if kind in ("detach", "destroy"):
        return [{"janus": "success", "transaction": tx, "session_id": SESSION}]
    if kind == "message":
        data = {"plugin": "janus.plugin.videoroom", "data": message["body"]}
        if message["body"].get("async"):
            return [{"janus": "ack", "transaction": tx, "session_id": SESSION},
                    {"janus": "event", "transaction": tx, "session_id": SESSION,
                     "sender": message["handle_id"], "plugindata": data,
                     **({"jsep": message["jsep"]} if "jsep" in message else {})}]
        return [{"janus": "success", "transaction": tx, "session_id": SESSION,
                 "sender": message["handle_id"], "plugindata": data}]
    return [{"janus": "error", "transaction": tx, "error": {"code": 453, "reason": "unknown"}}]


class FakeJanus:
    """Serves WebSockets on `url`, each on a thread of its own (a web worker and the recorder
    hold one each); each request is answered on its own connection. `received` holds every
    message; `push()` sends one unasked and `drop()` closes the TCP connection without a
    WebSocket close, both on the latest connection."""

    def __init__(self, answer: Answer = janus_like, *, subprotocol: str = "janus-protocol"
                 ) -> None:
        self.answer = answer
        self.subprotocol = subprotocol
        self.received: list[dict[str, Any]] = []
        self.got = threading.Condition()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._conn: socket.socket | None = None
        self._ws: WSConnection | None = None
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="fake-janus", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._conn, self._ws = conn, WSConnection(ConnectionType.SERVER)
            threading.Thread(target=self._serve_one, args=(conn, self._ws),
                             name="fake-janus-connection", daemon=True).start()

    def _serve_one(self, conn: socket.socket, ws: WSConnection) -> None:
        with conn, contextlib.suppress(OSError):  # the client may go at any moment
            self._talk(conn, ws)

    def _talk(self, conn: socket.socket, ws: WSConnection) -> None:
        while True:
            data = conn.recv(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, Request):
                    chosen = self.subprotocol if self.subprotocol in event.subprotocols else None
                    self._send(ws.send(AcceptConnection(subprotocol=chosen)), conn)
                elif isinstance(event, TextMessage):
                    message = json.loads(event.data)
                    with self.got:
                        self.received.append(message)
                        self.got.notify_all()
                    for reply in self.answer(message):
                        self._send(ws.send(TextMessage(data=json.dumps(reply))), conn)
                elif isinstance(event, Ping):
                    self._send(ws.send(event.response()), conn)
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        self._send(ws.send(event.response()), conn)
                    return
            if not data:
                return

    def _send(self, data: bytes, conn: socket.socket | None = None) -> None:
        conn = conn or self._conn
        assert conn is not None
        with self._send_lock:
            conn.sendall(data)

    def push(self, message: dict[str, Any] | str) -> None:
        """Send a message (a dict as JSON, a str as it is) to the client."""
        assert self._ws is not None
        text = message if isinstance(message, str) else json.dumps(message)
        self._send(self._ws.send(TextMessage(data=text)))

    def drop(self) -> None:
        """Close the TCP connection at once: no WebSocket close frame."""
        if self._conn is not None:
            self._conn.shutdown(socket.SHUT_RDWR)

    def close_websocket(self) -> None:
        """A WebSocket close frame, as Janus sends when it shuts down."""
        assert self._ws is not None
        self._send(self._ws.send(CloseConnection(code=1001)))

    def wait_for(self, kind: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The messages of this kind once `count` of them have arrived."""
        def found() -> list[dict[str, Any]]:
            return [m for m in self.received if m.get("janus") == kind]

        with self.got:
            assert self.got.wait_for(lambda: len(found()) >= count, timeout), \
                f"{count} {kind!r} expected, got {[m.get('janus') for m in self.received]}"
            return found()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes accept() if no client came
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
