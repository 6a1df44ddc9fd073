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

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.gthread import ThreadWorker

from portal import logs
from portal.notifications import background as notifications

log = logging.getLogger(__name__)

#: s: how long the WebSockets have to answer the close before the stop cuts them
CLOSE_WAIT = 2
#: s: how long a stopped worker waits for its connection threads before it goes without them
EXIT_WAIT = 3
#: s: how long the stop may still run once the loop has ended (sealing comes before; closing
#: the sockets and cutting those that do not answer come after)
STOP_WAIT = 10


def portal_of(wsgi: Any) -> Flask | None:
    """The Flask app behind a loaded WSGI callable (middleware may wrap it)."""
    return wsgi if isinstance(wsgi, Flask) else None


def seal_recordings(app: Flask) -> None:
    """Seal this process's recordings as complete and stop the recorder."""
    app.extensions["recording"].close()


def close_sockets() -> None:
    """Close this process's Socket.IO connections: browsers reconnect to the next server."""
    from portal.extensions import socketio

    server = getattr(socketio, "server", None)
    if server is None:
        return
    eio = server.eio
    for sid, socket_ in list(eio.sockets.items()):
        try:
            # Not engine.io's disconnect(), which waits until the close is sent: a polling
            # connection with no request open never takes it, and the wait has no end.
            socket_.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
        except Exception:  # one broken socket must not keep the others open
            log.exception("closing socket %s failed", sid)
        eio.sockets.pop(sid, None)


class QuietResponse(gunicorn_wsgi.Response):
    """gunicorn's response without its `Server:` header, which gunicorn cannot be told to
    leave out: nothing tells a scanner which server and version to try."""

    def default_headers(self) -> list[str]:
        headers: list[str] = super().default_headers()
        return [line for line in headers if not line.lower().startswith("server:")]
class AccessLogger(Logger):
    """gunicorn's logger with invite tokens taken out: an access log (off by default; an
    operator may turn it on) shows `/j/<redacted>` in the request line, path, Referer and every
    other field, and so does the error log ("Error handling request /j/...")."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        logs.redact_logger(self.error_log)  # the access log's fields are redacted in atoms()

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        found = super().atoms(resp, req, environ, request_time)
        return {key: logs.redact_value(value) for key, value in found.items()}


def redact_access_log(log: Any) -> None:
    """A worker given gunicorn's plain logger (an operator's own command line without
    `--logger-class portal.serve.AccessLogger`) still leaves tokens out of its access log."""
    if isinstance(log, AccessLogger) or not isinstance(log, Logger):
        return
    plain = log.atoms
    log.atoms = lambda *args: {k: logs.redact_value(v) for k, v in plain(*args).items()}
    logs.redact_logger(log.error_log)


class Worker(ThreadWorker):
    """gunicorn's `gthread` worker that starts and stops the portal's background parts.

    A stop signal (SIGTERM, SIGINT, SIGQUIT) is handled in a thread of its own, not in the
    signal handler: the handler interrupts the main thread wherever it is, perhaps holding a
    lock that sealing needs. The thread seals the recordings, ends the accept loop, and once no
    new connection is taken closes the open ones, so that gunicorn's graceful drain is quick.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        redact_access_log(self.log)
        self._stopping = False  # only ever set on the main thread (signal handlers, run())
        self._stopper: threading.Thread | None = None
        self._websockets: set[Any] = set()  # gunicorn's TConn of each WebSocket being served
        self._websockets_lock = threading.Lock()

    def init_process(self) -> None:
        # In the worker process only: gunicorn builds each response by this module name.
        gunicorn_wsgi.Response = QuietResponse
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = portal_of(self.wsgi)
        if app is not None:
            # First marks what a crash left as incomplete, then records.
            app.extensions["recording"].start()
            notifications.start(app)  # guests' e-mail, when SMTP is configured
        # What the app loaded lives as long as the worker: out of the collector's full passes,
        # which otherwise walk it all every few seconds under load (pauses of 100-300 ms).
        gc.collect()
        gc.freeze()

    def _stop(self) -> None:
        app = portal_of(getattr(self, "wsgi", None))
        try:
            if app is not None:
                seal_recordings(app)
                notifications.stop(app)
        except Exception:  # still exit: gunicorn's master would kill us later anyway
            log.exception("sealing the recordings at shutdown failed")
        ThreadWorker.handle_exit(self, signal.SIGTERM, None)  # ends the loop; wakes it
        deadline = time.monotonic() + 2
        while self._accepting and time.monotonic() < deadline:
            time.sleep(0.02)
        close_sockets()
        self._cut_websockets()

    def handle_request(self, req: Any, conn: Any) -> Any:
        """gunicorn's, keeping note of the WebSocket connections being served."""
        if not any(name == "UPGRADE" and value.lower() == "websocket"
                   for name, value in req.headers):
            return super().handle_request(req, conn)
        with self._websockets_lock:
            self._websockets.add(conn)
        try:
            return super().handle_request(req, conn)
        finally:
            with self._websockets_lock:
                self._websockets.discard(conn)

    def _cut_websockets(self) -> None:
        """After close_sockets: a WebSocket's thread waits for the other end's reply to the
        close, which a phone gone off the network never sends. gunicorn's drain waits for that
        thread up to its graceful timeout. Give the replies CLOSE_WAIT s, then cut the rest."""
        deadline = time.monotonic() + CLOSE_WAIT
        while self._websockets and time.monotonic() < deadline:
            time.sleep(0.02)
        with self._websockets_lock:
            left = list(self._websockets)
        for conn in left:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)  # its reader sees the end and returns
        if left:
            log.info("stop: cut %d WebSocket connections that did not answer the close", len(left))

    def _begin_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stopper = threading.Thread(target=self._stop, name="portal-stop", daemon=True)
            self._stopper.start()

    def handle_exit(self, sig: int, frame: Any) -> None:  # SIGTERM
        self._begin_stop()

    def handle_quit(self, sig: int, frame: Any) -> None:  # SIGINT (Ctrl+C), SIGQUIT
        self._begin_stop()  # graceful too: the recordings must be sealed first

    def run(self) -> None:
        try:
            super().run()
        finally:  # the master died (no signal): seal what is still open, here
            if not self._stopping:
                self._stopping = True
                self._stop()
            self._leave()

    def _leave(self) -> None:
        """Once the loop has ended: let the stop finish (STOP_WAIT s at most), then give the
        threads that are not daemons (gunicorn's connection handlers) EXIT_WAIT s. Python
        would wait for them without end, and the master kill the worker after its graceful
        timeout; one still running is named in the log with its stack, and the worker goes
        without it (the recordings are sealed and the sockets closed by then)."""
        if self._stopper is not None:
            self._stopper.join(STOP_WAIT)
        deadline = time.monotonic() + EXIT_WAIT
        me = threading.current_thread()
        for thread in threading.enumerate():
            if thread is not me and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t for t in threading.enumerate()
                 if t is not me and t.is_alive() and (not t.daemon or t is self._stopper)]
        if not stuck:
            return
        frames = sys._current_frames()
        for thread in stuck:
            stack = "".join(traceback.format_stack(frames[thread.ident])) \
                if thread.ident in frames else "(no stack)\n"
            log.warning("worker exit: thread %r still running after %g s:\n%s",
                        thread.name, EXIT_WAIT, stack)
        for handler in logging.getLogger().handlers + self.log.error_log.handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
        # Sealing a long recording (a remux per track) may take a while; the master waits.
        "graceful_timeout": 30,
        # No access log; one turned on shows invite tokens as /j/<redacted> (AccessLogger).
        "accesslog": None,
        "logger_class": "portal.serve.AccessLogger",
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
