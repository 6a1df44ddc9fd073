"""Disk work off the media loop (disk.py): the muxer's writes only queue; disk threads seal,
write and fsync each track file in order; a disk failure reaches the writer's next call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from portal.recording.disk import Disk, QueuedSink
from portal.recording.store import ChunkReader, ChunkWriter, StoreError

RECORDING = "rec-disk"
KEY = bytes(range(32))


def opener(path: Path, gate: threading.Event | None = None):  # type: ignore[no-untyped-def]
    def open_writer() -> ChunkWriter:
        if gate is not None:
            assert gate.wait(10)
        return ChunkWriter(path, recording_id=RECORDING, track=path.stem, data_key=KEY,
                           chunk_size=1000)
    return open_writer


def plaintext(path: Path) -> bytes:
    with ChunkReader(path, recording_id=RECORDING, data_key=KEY) as reader:
        return b"".join(reader.iter_plaintext())


@pytest.fixture
def disk() -> Disk:
    made = Disk(workers=2)
    yield made  # type: ignore[misc]
    made.shutdown()


def test_writes_queue_while_the_disk_is_busy_and_land_in_order(disk: Disk,
                                                               tmp_path: Path) -> None:
    gate = threading.Event()
    sink = disk.sink(opener(tmp_path / "a.smr", gate))
    parts = [os.urandom(700) for _ in range(20)]
    for part in parts:  # none of these waits for the disk, which is held
        assert sink.write(part) == 700
        sink.tick()
    assert not (tmp_path / "a.smr").exists() and not sink.done.done()
    gate.set()
    summary = sink.finish(10)
    assert summary.complete and summary.plaintext_bytes == 14_000
    assert plaintext(tmp_path / "a.smr") == b"".join(parts)


def test_many_sinks_on_few_threads_keep_each_file_in_order(disk: Disk, tmp_path: Path) -> None:
    sinks = [disk.sink(opener(tmp_path / f"{n}.smr")) for n in range(5)]
    written: list[list[bytes]] = [[] for _ in sinks]
    for round_ in range(30):
        for n, sink in enumerate(sinks):
            part = os.urandom(100 + round_ * 7 + n)
            sink.write(part)
            written[n].append(part)
    threads: set[str] = set()
    for sink in sinks:
        sink.close()
    for n, sink in enumerate(sinks):
        sink.done.result(10)
        assert plaintext(tmp_path / f"{n}.smr") == b"".join(written[n])
    threads = {t.name for t in threading.enumerate()}
    assert any(name.startswith("recording-disk") for name in threads)


def test_writes_close_together_reach_the_disk_thread_as_one_job(disk: Disk,
                                                                 tmp_path: Path) -> None:
    # One job (a disk thread woken) per muxer write cost the media loop (disk.COALESCE).
    calls: list[int] = []

    class Counting(ChunkWriter):
        def write(self, data: bytes) -> int:
            calls.append(len(data))
            return super().write(data)

    path = tmp_path / "b.smr"
    sink = disk.sink(lambda: Counting(path, recording_id=RECORDING, track="b", data_key=KEY))
    parts = [os.urandom(300) for _ in range(50)]
    for part in parts:
        sink.write(part)
    sink.tick()
    assert sink.finish(10).complete
    assert plaintext(path) == b"".join(parts)
    assert sum(calls) == 15_000 and len(calls) <= 2, calls


def test_a_disk_failure_reaches_the_next_write(disk: Disk, tmp_path: Path) -> None:
    (tmp_path / "taken.smr").write_bytes(b"someone else's")  # never overwritten
    gate = threading.Event()
    sink = disk.sink(opener(tmp_path / "taken.smr", gate))
    sink.write(b"x" * 10)  # queued: the file is not opened yet
    gate.set()
    with pytest.raises(StoreError):
        sink.done.result(10)
    with pytest.raises(StoreError, match="cannot write the track"):
        sink.write(b"more")
    with pytest.raises(StoreError):
        sink.tick()
    assert (tmp_path / "taken.smr").read_bytes() == b"someone else's"


def test_a_disk_that_falls_too_far_behind_fails_the_sink(tmp_path: Path) -> None:
    gate = threading.Event()
    disk = Disk(workers=1)
    try:
        sink = disk.sink(opener(tmp_path / "slow.smr", gate), max_pending=5000)
        sink.write(b"a" * 4000)
        with pytest.raises(StoreError, match="behind"):
            sink.write(b"b" * 2000)
        gate.set()
        with pytest.raises(StoreError):
            sink.finish(10)
    finally:
        gate.set()
        disk.shutdown()


def test_the_sink_is_a_write_only_file_for_the_muxer(disk: Disk, tmp_path: Path) -> None:
    sink: QueuedSink = disk.sink(opener(tmp_path / "f.smr"))
    assert sink.writable() and not sink.seekable() and not sink.readable()
    assert sink.write(b"") == 0 and not sink.closed
    sink.close()
    sink.close()  # idempotent
    assert sink.closed and sink.done.result(10).complete
