"""The production server: gunicorn's threaded worker, with the recorder's life bound to it.

`python -m portal.serve` (and `python app.py`, and `scripts/start`) serve the portal on
PORTAL_HOST:PORTAL_PORT. Operators who run gunicorn themselves pass `--worker-class
portal.serve.Worker` (docs/operations.md). One worker process per gunicorn: Flask-SocketIO
needs sticky sessions, which gunicorn cannot give between its own workers.

The worker starts the recorder after the fork (its threads must not be forked), and on SIGTERM,
SIGINT (Ctrl+C) or SIGQUIT it first seals every recording it holds as `complete`, then closes
the Socket.IO connections so that browsers reconnect to the next server at once.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger(__name__)


def portal_of(wsgi: Any) -> Flask | None:
    """The Flask app behind a loaded WSGI callable (middleware may wrap it)."""
    return wsgi if isinstance(wsgi, Flask) else None


def stop_portal(app: Flask) -> None:
    """Seal this process's recordings and close its Socket.IO connections."""
    from portal.extensions import socketio

    app.extensions["recording"].close()
    server = getattr(socketio, "server", None)
    if server is None:
        return
    for sid in list(server.eio.sockets):
        try:
            server.eio.disconnect(sid)
        except Exception:  # one broken socket must not keep the others open
            log.exception("closing socket %s failed", sid)


class Worker(ThreadWorker):
    """gunicorn's `gthread` worker that starts and stops the portal's background parts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Signal handlers run on the main thread, one inside another: a second signal while
        # the first is sealing must neither wait for it (a lock would deadlock) nor exit.
        self._stopping = False
        self._stopped = False

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = portal_of(self.wsgi)
        if app is not None:
            # First marks what a crash left as incomplete, then records.
            app.extensions["recording"].start()

    def _stop_portal(self) -> None:
        if self._stopping or self._stopped:
            return
        self._stopping = True
        app = portal_of(getattr(self, "wsgi", None))
        try:
            if app is not None:
                stop_portal(app)
        except Exception:  # still exit: gunicorn's master would kill us later anyway
            log.exception("stopping the portal cleanly failed")
        finally:
            self._stopping, self._stopped = False, True

    def handle_exit(self, sig: int, frame: Any) -> None:  # SIGTERM: graceful
        if self._stopping:
            return
        self._stop_portal()
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: Any) -> None:  # SIGINT, SIGQUIT: quick
        if self._stopping:
            return
        self._stop_portal()
        super().handle_quit(sig, frame)

    def run(self) -> None:
        try:
            super().run()
        finally:  # the master died, or the loop ended some other way
            self._stop_portal()


class Server(BaseApplication):
    """gunicorn, configured in code rather than by a command line."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def options(app: Flask) -> dict[str, Any]:
    """gunicorn's settings for this portal (docs/operations.md gives the command line)."""
    url = f"http://{app.config['HOST']}:{app.config['PORT']}/"

    def when_ready(_arbiter: Any) -> None:  # the master listens: now the address is true
        print(f"Samtale is running at {url}  (Ctrl+C stops it)", flush=True)

    return {
        "when_ready": when_ready,
        "bind": f"{app.config['HOST']}:{app.config['PORT']}",
        "workers": 1,
        "worker_class": "portal.serve.Worker",
        # Each open Socket.IO connection holds a thread for as long as it lasts.
        "threads": app.config["SERVER_THREADS"],
        "graceful_timeout": 10,
        # No access log: invite links carry their token in the path.
        "accesslog": None,
        "proc_name": "samtale",
        # gunicorn's control socket is one per user: two portals on one machine would clash.
        "control_socket_disable": True,
    }


def serve(app: Flask) -> None:
    """Serve until stopped (SIGTERM or Ctrl+C)."""
    Server(app, options(app)).run()


def main() -> None:
    from portal import create_app

    serve(create_app())


if __name__ == "__main__":
    main()
