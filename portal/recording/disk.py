"""Disk work off the media loop: sealing (AES-GCM), writing and fsync of track files.

Measured on main (issue 17): each chunk's fsync on the recorder's loop stalled it 8-10 ms on a
quiet machine and 47-82 ms on a busy one, while the sockets of every other publication filled
up. A `QueuedSink` stands where the muxer expects a file: `write` and `tick` only queue the
bytes (the writes of COALESCE seconds as one job), and a small pool of disk threads runs each
sink's queue in order (one sink's work never runs on two threads at once, so its chunks stay in
order). The ChunkWriter itself (its file is created and fsync'd too) is made by the first job.

A failure on the disk (no space, I/O error) is raised by the sink's next `write` or `tick` on
the loop, where the recorder fails the publication as before. A disk that falls further behind
than `max_pending` bytes fails the sink too: media piling up in memory would be lost in a crash.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portal import private
from portal.recording.store import ChunkWriter, FileSummary, StoreError

WORKERS = 4  # disk threads per recorder process
#: s: the muxer's writes within this time go to the disk thread as one job. The muxer writes
#: once or more per packet; handing each write over woke a disk thread (and moved the GIL) every
#: few packets. 50 ms adds at most that to the time a chunk is sealed.
COALESCE = 0.05
MAX_PENDING = 32 * 1024 * 1024  # bytes a sink may have queued (about 3 min of a 1.5 Mbit/s call)


@dataclass(frozen=True)
class TrackFile:
    """Where and how a publication's encrypted track is written; called, it opens the file
    (on a disk thread: creating and fsync'ing it blocks)."""

    path: Path
    recording_id: str
    track: str
    data_key: bytes = field(repr=False)
    flush_interval: float = 0.5

    def __call__(self) -> ChunkWriter:
        private.folder(self.path.parent)
        return ChunkWriter(self.path, recording_id=self.recording_id, track=self.track,
                           data_key=self.data_key, flush_interval=self.flush_interval)


class Disk:
    """The disk threads of one recorder process."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="recording-disk")

    def sink(self, open_writer: Callable[[], ChunkWriter],
             max_pending: int = MAX_PENDING) -> QueuedSink:
        """A sink whose writer `open_writer()` makes on a disk thread."""
        return QueuedSink(self._pool, open_writer, max_pending)

    def shutdown(self) -> None:
        """Finish the queued work (every sink's close included), then stop the threads."""
        self._pool.shutdown(wait=True)


class QueuedSink:
    """A write-only file object for the muxer that hands its bytes to a disk thread."""

    def __init__(self, pool: concurrent.futures.Executor,
                 open_writer: Callable[[], ChunkWriter], max_pending: int) -> None:
        self._pool = pool
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._jobs: deque[Callable[[], None]] = deque()
        self._running = False
        self._pending = 0  # bytes queued
        self._error: BaseException | None = None
        self._closing = False
        self._batch: list[bytes] = []  # written on the loop, not yet handed to a disk thread
        self._batch_since: float | None = None
        self.writer: ChunkWriter | None = None
        #: The file's summary once closed (or the error that ended it).
        self.done: concurrent.futures.Future[FileSummary] = concurrent.futures.Future()

        def start() -> None:
            self.writer = open_writer()
        self._submit(start)

    # -- file object (the loop) ----------------------------------------------------------------

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closing

    def flush(self) -> None:
        """No-op, as ChunkWriter's."""

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if not chunk:
            return 0
        with self._lock:
            self._raise()
            if self._pending + len(chunk) > self._max_pending:
                self._error = StoreError(
                    f"the disk is {self._pending} bytes behind: it cannot keep up")
                self._raise()
            self._pending += len(chunk)
        self._batch.append(chunk)
        now = time.monotonic()
        if self._batch_since is None:
            self._batch_since = now
        elif now - self._batch_since >= COALESCE:
            self._hand_over()
        return len(chunk)

    def tick(self) -> None:
        """Seal what waited long enough (ChunkWriter.tick), on a disk thread."""
        with self._lock:
            self._raise()
        self._hand_over()
        self._submit(lambda: self.writer.tick() if self.writer is not None else None)

    def _hand_over(self) -> None:
        """Queue the batched writes as one job."""
        if not self._batch:
            return
        data = b"".join(self._batch)
        self._batch, self._batch_since = [], None

        def write() -> None:
            assert self.writer is not None
            self.writer.write(data)
            with self._lock:
                self._pending -= len(data)
        self._submit(write)

    def close(self) -> None:
        """Queue the final chunk and the close; `done` resolves when they are on disk."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        self._hand_over()

        def close() -> None:
            if self.writer is None:
                raise StoreError("the track file was never opened")
            self.done.set_result(self.writer.close())
        self._submit(close, always=True)

    def finish(self, timeout: float | None = None) -> FileSummary:
        """Close and wait until the file is complete on disk (not on the media loop)."""
        self.close()
        return self.done.result(timeout)

    # -- the disk threads ----------------------------------------------------------------------

    def _raise(self) -> None:
        if self._error is not None:
            raise StoreError(f"cannot write the track: {self._error}") from self._error

    def _submit(self, job: Callable[[], None], *, always: bool = False) -> None:
        with self._lock:
            if self._error is not None and not always:
                return
            self._jobs.append(job)
            if self._running:
                return
            self._running = True
        self._pool.submit(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                job = self._jobs.popleft()
                failed = self._error
            if failed is not None:  # after a failure only the close runs: it ends the file
                self._end(failed)
                continue
            try:
                job()
            except BaseException as exc:
                with self._lock:
                    self._error = exc
                self._end(exc)

    def _end(self, exc: BaseException) -> None:
        if self.writer is not None and not self.writer.closed:
            # It raises (the file needs recover(), as after a crash); the first error is the one
            # reported.
            with contextlib.suppress(Exception):
                self.writer.close()
        if not self.done.done():
            error = exc if isinstance(exc, StoreError) else StoreError(
                f"cannot write the track: {exc}")
            error.__cause__ = exc if error is not exc else None
            self.done.set_exception(error)


async def closed(sink: Any) -> str | None:
    """Wait (without blocking the loop) until a queued sink is on disk; its error, if any."""
    if not isinstance(sink, QueuedSink):
        return None
    try:
        await asyncio.wrap_future(sink.done)
    except Exception as exc:
        return f"sink: {exc}"
    return None
