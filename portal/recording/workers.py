"""Recorder workers: consults' media recorded in separate processes, one per core by default.

One asyncio loop under the GIL records at most about one core's worth of media (issue 17: past
that the sockets overflow). So the web process runs no media at all: a `WorkerPool` starts
`workers` processes, each with its own RecordingEngine (loop, sockets, muxers) and disk threads,
and gives each new publication to the worker with the fewest. It is a `Recorder` like the
engine: thread-safe methods that return futures at once.

Between the web process and a worker: a multiprocessing pipe carrying tuples, answered by
number. The worker opens each track file itself from a `TrackFile` (path, ids, data key: the
key stays in memory, as in the embedded engine). A worker dies with its parent: the socket to it
ends, and the worker exits at once, as in a crash, leaving its files for recovery as before.
A worker that dies on its own fails its publications (on_failed "failed"), so their
recordings stop and are sealed with what reached the disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, BinaryIO, cast

from portal.recording import endpoint
from portal.recording.disk import TrackFile
from portal.recording.endpoint import (
    EngineStoppedError,
    OnFailed,
    OnLoss,
    PublicationResult,
    RecordingError,
)

log = logging.getLogger(__name__)
START_TIMEOUT = 120.0  # s for a worker to start its loop (2-3 s idle; a busy machine: 30+)
_ERRORS: dict[str, type[RecordingError]] = {
    cls.__name__: cls for cls in (RecordingError, endpoint.UnknownPublicationError,
                                  endpoint.NegotiationError, EngineStoppedError)}


@dataclass(frozen=True)
class EngineSettings:
    """What a worker's RecordingEngine is made with (picklable)."""

    ice_servers: list[Any] = field(default_factory=list)
    allowed_networks: list[str] = field(default_factory=list)
    receive_buffer: int = 4 * 1024 * 1024


# --- the worker process -----------------------------------------------------------------------


def worker_main(conn: Connection) -> None:
    """A worker: its own engine and disk threads, driven over `conn` until "shutdown".
    The first message is (settings, index)."""
    # Ctrl+C reaches the whole process group: the web process stops this worker in order
    # (sealing what it records); dying on the signal would fail its publications instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings, index = conn.recv()
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(levelname)s [recorder worker {index}] %(name)s: %(message)s")
    from portal.recording.disk import Disk
    from portal.recording.endpoint import RecordingEngine

    sending = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with sending:
            conn.send(message)

    disk = Disk()
    engine = RecordingEngine(
        ice_servers=settings.ice_servers, allowed_networks=settings.allowed_networks,
        receive_buffer=settings.receive_buffer,
        on_failed=lambda key, reason: send(("failed", key, reason)),
        on_loss=lambda key, total: send(("loss", key, total)))
    engine.start()
    send(("ready", os.getpid()))

    def answer(number: int) -> Callable[[concurrent.futures.Future[Any]], None]:
        def done(future: concurrent.futures.Future[Any]) -> None:
            try:
                send(("done", number, True, future.result()))
            except Exception as exc:
                send(("done", number, False, (type(exc).__name__, str(exc))))
        return done

    def sink(track_file: TrackFile) -> Callable[[], BinaryIO]:
        return lambda: cast(BinaryIO, disk.sink(track_file))

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the web process is gone: stop as a crash would
            os._exit(1)
        verb, number, *args = message
        if verb == "shutdown":
            results = engine.shutdown(args[0])
            disk.shutdown()
            send(("done", number, True, results))
            conn.close()
            return
        if verb == "publish":
            key, offer, track_file = args
            future: concurrent.futures.Future[Any] = engine.publish(key, offer, sink(track_file))
        elif verb in ("pause", "resume", "stop"):
            future = getattr(engine, verb)(args[0])
        else:
            future = concurrent.futures.Future()
            future.set_exception(RecordingError(f"unknown request {verb!r}"))
        future.add_done_callback(answer(number))


# --- the web process's side -------------------------------------------------------------------


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Connection
    pid: int | None = None
    keys: set[str] = field(default_factory=set)
    alive: bool = True
    sending: threading.Lock = field(default_factory=threading.Lock)


class WorkerPool:
    """`workers` recorder processes behind the engine's interface (see the module doc)."""

    def __init__(self, workers: int, settings: EngineSettings, *,
                 on_failed: OnFailed | None = None, on_loss: OnLoss | None = None) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._count = workers
        self._settings = settings
        self._on_failed = on_failed
        self._on_loss = on_loss
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._owner: dict[str, _Worker] = {}  # publication key -> its worker
        self._pending: dict[int, tuple[_Worker, concurrent.futures.Future[Any]]] = {}
        self._numbers = itertools.count(1)
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, wait: bool = False) -> None:
        """Start the processes (a fresh interpreter each: never fork a threaded web process,
        and never import its main module, as multiprocessing's spawn would). Requests sent
        before a worker is up wait in its pipe; `wait` waits until every worker runs."""
        ready: list[concurrent.futures.Future[Any]] = []
        for index in range(self._count):
            mine, theirs = socket.socketpair()
            process = subprocess.Popen(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "portal.recording.workers", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
            theirs.close()
            conn = Connection(mine.detach())
            conn.send((self._settings, index))
            worker = _Worker(index, process, conn, pid=process.pid)
            started: concurrent.futures.Future[Any] = concurrent.futures.Future()
            ready.append(started)
            threading.Thread(target=self._read, args=(worker, started), daemon=True,
                             name=f"recorder-worker-{index}-reader").start()
            self._workers.append(worker)
        if wait:
            for started in ready:
                started.result(START_TIMEOUT)

    @property
    def running(self) -> bool:
        with self._lock:
            return bool(self._workers) and not self._stopped

    def pids(self) -> list[int | None]:
        """The workers' process ids (for tests and the operator)."""
        return [w.pid for w in self._workers]

    def loads(self) -> list[int]:
        """Publications per worker."""
        with self._lock:
            return [len(w.keys) for w in self._workers]

    def shutdown(self, timeout: float = 10.0) -> list[PublicationResult]:
        """Stop every publication and every worker; the results of those still running."""
        with self._lock:
            if self._stopped:
                return []
            self._stopped = True
            workers = [w for w in self._workers if w.alive]
        asked = [(w, self._ask(w, "shutdown", timeout, force=True)) for w in workers]
        results: list[PublicationResult] = []
        for worker, future in asked:
            try:
                results += future.result(timeout + 5)
            except Exception as exc:
                log.error("recorder worker %s: shutdown failed: %s", worker.index, exc)
            try:
                worker.process.wait(5)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(5)
        return results

    # -- the Recorder interface ----------------------------------------------------------------

    def publish(self, key: str, offer_sdp: str,
                open_sink: Callable[[], BinaryIO] | TrackFile) -> concurrent.futures.Future[str]:
        """As RecordingEngine.publish, on the least-loaded worker; `open_sink` must be a
        TrackFile (the worker opens the file)."""
        if not isinstance(open_sink, TrackFile):
            raise TypeError("a worker pool writes TrackFiles only")
        with self._lock:
            live = [w for w in self._workers if w.alive]
            if self._stopped or not live:
                return _failed(EngineStoppedError("the recorder workers are not running"))
            if key in self._owner:
                return _failed(RecordingError(f"publication {key!r} already exists"))
            worker = min(live, key=lambda w: (len(w.keys), w.index))
            worker.keys.add(key)
            self._owner[key] = worker
        future: concurrent.futures.Future[str] = self._ask(worker, "publish", key, offer_sdp,
                                                           open_sink)
        future.add_done_callback(lambda done: self._forget(key) if done.exception() else None)
        return future

    def pause(self, key: str) -> concurrent.futures.Future[None]:
        return self._to_owner("pause", key)

    def resume(self, key: str) -> concurrent.futures.Future[None]:
        return self._to_owner("resume", key)

    def stop(self, key: str) -> concurrent.futures.Future[PublicationResult]:
        future: concurrent.futures.Future[PublicationResult] = self._to_owner("stop", key)
        future.add_done_callback(lambda _done: self._forget(key))
        return future

    # -- inside ---------------------------------------------------------------------------------

    def _to_owner(self, verb: str, key: str) -> concurrent.futures.Future[Any]:
        with self._lock:
            worker = self._owner.get(key)
        if worker is None:
            return _failed(endpoint.UnknownPublicationError(f"no publication {key!r}"))
        return self._ask(worker, verb, key)

    def _forget(self, key: str) -> None:
        with self._lock:
            worker = self._owner.pop(key, None)
            if worker is not None:
                worker.keys.discard(key)

    def _ask(self, worker: _Worker, verb: str, *args: Any,
             force: bool = False) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if not worker.alive or (self._stopped and not force):
                return _failed(EngineStoppedError(f"recorder worker {worker.index} is gone"))
            number = next(self._numbers)
            self._pending[number] = (worker, future)
        try:
            with worker.sending:
                worker.conn.send((verb, number, *args))
        except (OSError, ValueError) as exc:
            with self._lock:
                self._pending.pop(number, None)
            return _failed(EngineStoppedError(f"recorder worker {worker.index}: {exc}"))
        return future

    def _read(self, worker: _Worker, started: concurrent.futures.Future[Any]) -> None:
        try:
            while True:
                message = worker.conn.recv()
                kind = message[0]
                if kind == "ready":
                    started.set_result(True)
                elif kind == "done":
                    _, number, ok, value = message
                    with self._lock:
                        _asked, future = self._pending.pop(number, (worker, None))
                    if future is not None:
                        if ok:
                            future.set_result(value)
                        else:
                            name, text = value
                            future.set_exception(_ERRORS.get(name, RecordingError)(text))
                elif kind == "failed" and self._on_failed is not None:
                    self._on_failed(message[1], message[2])
                elif kind == "loss" and self._on_loss is not None:
                    self._on_loss(message[1], message[2])
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("recorder worker %s: reading its messages failed", worker.index)
        self._lost(worker, started)

    def _lost(self, worker: _Worker, started: concurrent.futures.Future[Any]) -> None:
        """The worker's pipe ended: its publications failed (unless we shut it down)."""
        with self._lock:
            worker.alive = False
            stopped = self._stopped
            keys = sorted(worker.keys)
            worker.keys.clear()
            for key in keys:
                self._owner.pop(key, None)
            pending = [(n, f) for n, (w, f) in self._pending.items() if w is worker]
            for number, _future in pending:
                del self._pending[number]
        if not started.done():
            started.set_exception(EngineStoppedError(f"recorder worker {worker.index} "
                                                     "did not start"))
        for _number, future in pending:
            if not future.done():
                future.set_exception(EngineStoppedError(
                    f"recorder worker {worker.index} died"))
        if stopped:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):  # reap it
            worker.process.wait(5)
        log.error("recorder worker %s (pid %s) died; its %d publications failed",
                  worker.index, worker.pid, len(keys))
        for key in keys:
            if self._on_failed is not None:
                self._on_failed(key, "failed")


def _failed(exc: BaseException) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_exception(exc)
    return future


if __name__ == "__main__":  # python -m portal.recording.workers FD (WorkerPool.start)
    worker_main(Connection(int(sys.argv[1])))
