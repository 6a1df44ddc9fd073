"""A lean Socket.IO client for the load generator: asyncio and wsproto, the websocket transport
only, text packets only (engine.io 4, Socket.IO 5).

python-socketio's client spends a thread and most of a millisecond of CPU per message; on a
2-core machine that is CPU the server under test does not get. This one spends a fraction of
that, so two workers can show what they add. It answers pings and nothing else on its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

Handler = Callable[[str, Any], None]


class Refused(Exception):
    """The server refused the connection (HTTP) or the namespace (a CONNECT_ERROR)."""


class Client:
    """One socket. `on_event(name, payload)` gets every event; `on_close()` the end."""

    def __init__(self, on_event: Handler, on_close: Callable[[], None]) -> None:
        self.on_event = on_event
        self.on_close = on_close
        self.connected = False
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._writer: asyncio.StreamWriter | None = None
        self._parts: list[str] = []
        self._ready: asyncio.Future[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None

    async def connect(self, url: str, headers: dict[str, str], auth: dict[str, Any] | None,
                      timeout: float) -> None:
        where = urlsplit(url)
        reader, self._writer = await asyncio.open_connection(where.hostname, where.port)
        self._ready = asyncio.get_running_loop().create_future()
        self._send(Request(host=f"{where.hostname}:{where.port}",
                           target="/socket.io/?EIO=4&transport=websocket",
                           extra_headers=[(k.lower().encode(), v.encode())
                                          for k, v in headers.items()]))
        self._auth = auth
        self._reader_task = asyncio.create_task(self._read(reader))
        await asyncio.wait_for(self._ready, timeout)

    def emit(self, event: str, data: Any = None) -> None:
        self._text("42" + json.dumps([event] if data is None else [event, data],
                                      separators=(",", ":")))

    def close(self) -> None:
        if self._writer is None:
            return
        if self.connected:
            self.connected = False
            self._text("41")
            self._send(CloseConnection(code=1000))
        self._writer.close()
        self._writer = None

    # --- the wire -----------------------------------------------------------------------------

    def _send(self, event: Any) -> None:
        if self._writer is not None:
            self._writer.write(self._ws.send(event))

    def _text(self, text: str) -> None:
        self._send(TextMessage(data=text))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self._ws.receive_data(data)
                for event in self._ws.events():
                    if isinstance(event, Message):
                        self._parts.append(str(event.data))
                        if event.message_finished:
                            text, self._parts = "".join(self._parts), []
                            self._packet(text)
                    elif isinstance(event, AcceptConnection):
                        pass  # engine.io's OPEN packet follows
                    elif isinstance(event, RejectConnection):
                        self._fail(Refused(f"HTTP {event.status_code}"))
                        return
                    elif isinstance(event, Ping):
                        self._send(event.response())
                    elif isinstance(event, CloseConnection):
                        return
        except (ConnectionError, OSError):
            pass
        finally:
            was = self.connected
            self.connected = False
            self._fail(Refused("the connection closed"))
            if was:
                self.on_close()

    def _fail(self, error: Exception) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)

    def _packet(self, text: str) -> None:
        kind = text[:1]
        if kind == "2":  # engine.io PING
            self._text("3")
        elif kind == "0":  # engine.io OPEN: connect to the default namespace
            self._text("40" + (json.dumps(self._auth) if self._auth is not None else ""))
        elif kind == "4":
            self._message(text[1:])
        elif kind == "1":  # engine.io CLOSE
            self._gone()

    def _message(self, text: str) -> None:
        kind = text[:1]
        if kind == "2":  # EVENT
            name, *args = json.loads(text[1:])
            self.on_event(name, args[0] if len(args) == 1 else (args or None))
        elif kind == "0":  # CONNECT accepted
            self.connected = True
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "4":  # CONNECT_ERROR
            self._fail(Refused(text[1:]))
        elif kind == "1":  # DISCONNECT by the server
            self._gone()

    def _gone(self) -> None:
        """The server ended it."""
        if self.connected:
            self.connected = False
            self.on_close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
