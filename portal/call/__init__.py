"""The consult itself: Socket.IO signaling between the participants' browsers."""

from __future__ import annotations

from flask import Flask

from portal.extensions import socketio


def init_app(app: Flask) -> None:
    from portal.call import events  # noqa: F401 - registers the handlers
    from portal.recording import manager

    manager.init_app(app)

    base_url = app.config["BASE_URL"]
    socketio.init_app(
        app,
        async_mode="threading",
        message_queue=app.config["SOCKETIO_MESSAGE_QUEUE"],
        channel=app.config["SOCKETIO_CHANNEL"],
        # Same origin only (the default when None); behind a proxy, the public address.
        cors_allowed_origins=[base_url] if base_url else None,
        # Events of one socket are handled in order: an ICE candidate must not overtake
        # the offer it belongs to.
        async_handlers=False,
        max_http_buffer_size=1024 * 1024,
        ping_interval=10,
        ping_timeout=10,
        logger=False,
        engineio_logger=False,
    )
