"""The socket layer of a call: Socket.IO signaling between the participants' browsers.

The call's rules are in portal.call.services (and portal.recording.actions); this package
only identifies sockets, checks their events, and carries messages.
"""

from __future__ import annotations

from flask import Flask, abort

from portal import logs
from portal.call.queue import DirectRedisManager
from portal.config import redis_pool_size
from portal.extensions import socketio


def init_app(app: Flask) -> None:
    from portal.call import (  # noqa: F401
        court_events,
        events,
        hearing_events,
        notify,
        recording_events,
    )
    from portal.call.guard import Sockets

    app.extensions["sockets"] = Sockets(app)
    logs.quiet_socket_loggers()
    notify.connect(app)
    hearing_events.init_app(app)

    base_url = app.config["BASE_URL"]
    queue = app.config["SOCKETIO_MESSAGE_QUEUE"]
    # Always said, so that an earlier app's manager in the shared extension is not kept.
    managed: dict[str, object] = {} if queue else {"client_manager": None}
    if queue and queue.startswith(("redis://", "rediss://")):
        # Every socket thread may publish at once: with redis-py's default pool of 100, the
        # 101st raised "Too many connections", and python-socketio took that for a lost Redis,
        # reconnected and unsubscribed its listener for a second or more: messages were lost.
        managed["client_manager"] = DirectRedisManager(
            queue, channel=app.config["SOCKETIO_CHANNEL"],
            redis_options={"max_connections": redis_pool_size(app.config)})
    # Flask-SocketIO handles each event in a request context for the socket's address,
    # /socket.io/. Without a route there each event's context raised and kept a NotFound: a
    # traceback cycle, ~70 objects of garbage per event, and the collector's pauses were the
    # relay's p99 under load. The middleware answers /socket.io/ before Flask routes it.
    for websocket in (False, True):  # long-polling, and the WebSocket upgrade
        app.add_url_rule("/socket.io/", endpoint=f"socket_io_{'ws' if websocket else 'http'}",
                         view_func=_answered_by_socketio,
                         methods=["GET"] if websocket else ["GET", "POST"],
                         strict_slashes=False, websocket=websocket)
    socketio.init_app(
        app,
        async_mode="threading",
        message_queue=queue,
        channel=app.config["SOCKETIO_CHANNEL"],
        **managed,
        # Same origin only (the default when None); behind a proxy, the public address.
        cors_allowed_origins=[base_url] if base_url else None,
        # Events of one socket are handled in order: an ICE candidate must not overtake
        # the offer it belongs to.
        async_handlers=False,
        max_http_buffer_size=1024 * 1024,
        ping_interval=app.config["SOCKET_PING_INTERVAL_SECONDS"],
        ping_timeout=app.config["SOCKET_PING_TIMEOUT_SECONDS"],
        logger=False,
        engineio_logger=False,
    )



def _answered_by_socketio() -> str:
    abort(404)  # (only reached if the Socket.IO middleware is not in front)
