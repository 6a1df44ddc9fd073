"""Recorder workers (workers.py): publications recorded in separate processes, each new one on
the least-loaded worker; a worker that dies fails only its own publications. Real aiortc
publishers, real worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from live import LOOPBACK
from recording_peers import ColourVideo, SineAudio

from portal.recording.disk import TrackFile
from portal.recording.endpoint import PublicationResult, UnknownPublicationError
from portal.recording.store import ChunkReader
from portal.recording.workers import EngineSettings, WorkerPool

pytestmark = [pytest.mark.webrtc]
KEY = bytes(range(32))
RECORDING = "rec-w"


async def publish(pool: WorkerPool, key: str, path: Path) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()
    pc.on("connectionstatechange",
          lambda: connected.set() if pc.connectionState == "connected" else None)
    pc.addTransceiver(ColourVideo(), direction="sendonly")
    pc.addTransceiver(SineAudio(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await asyncio.wrap_future(pool.publish(
        key, pc.localDescription.sdp, TrackFile(path, RECORDING, path.stem, KEY)))
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await asyncio.wait_for(connected.wait(), 15)
    return pc


def plaintext_size(path: Path) -> int:
    with ChunkReader(path, recording_id=RECORDING, data_key=KEY) as reader:
        return sum(len(part) for part in reader.iter_plaintext())


@pytest.fixture
def pool() -> Any:
    failed: list[tuple[str, str]] = []
    made = WorkerPool(2, EngineSettings(allowed_networks=list(LOOPBACK)),
                      on_failed=lambda key, reason: failed.append((key, reason)))
    made.failed = failed  # type: ignore[attr-defined]
    made.start(wait=True)
    yield made
    made.shutdown()


def test_publications_go_to_the_least_loaded_worker_in_other_processes(
        pool: WorkerPool, tmp_path: Path) -> None:
    pids = pool.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids

    async def run() -> list[PublicationResult]:
        clients = []
        for n in range(3):
            clients.append(await publish(pool, f"{RECORDING}/p{n}", tmp_path / f"p{n}.smr"))
        assert sorted(pool.loads()) == [1, 2]
        await asyncio.sleep(2)
        results = [await asyncio.wrap_future(pool.stop(f"{RECORDING}/p{n}")) for n in range(3)]
        for pc in clients:
            await pc.close()
        return results

    results = asyncio.run(run())
    assert pool.loads() == [0, 0]
    for n, result in enumerate(results):
        assert result.key == f"{RECORDING}/p{n}" and result.error is None
        assert result.frames["video"] > 20 and result.frames["audio"] > 20
        assert result.loss is not None and "window_seconds" in result.loss
        assert plaintext_size(tmp_path / f"p{n}.smr") > 10_000  # complete: the final chunk
    with pytest.raises(UnknownPublicationError):
        pool.stop(f"{RECORDING}/p0").result(5)


def test_a_worker_that_dies_fails_only_its_publications(pool: WorkerPool,
                                                        tmp_path: Path) -> None:
    failed: list[tuple[str, str]] = pool.failed  # type: ignore[attr-defined]

    async def run() -> tuple[PublicationResult, list[int]]:
        clients = [await publish(pool, f"{RECORDING}/p{n}", tmp_path / f"p{n}.smr")
                   for n in range(2)]
        assert pool.loads() == [1, 1]
        await asyncio.sleep(1)
        os.kill(pool.pids()[0], signal.SIGKILL)  # p0's worker
        deadline = time.monotonic() + 10
        while not failed:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        survivor = await asyncio.wrap_future(pool.stop(f"{RECORDING}/p1"))
        # A new publication goes to the worker still alive.
        clients.append(await publish(pool, f"{RECORDING}/p2", tmp_path / "p2.smr"))
        loads = pool.loads()
        await asyncio.wrap_future(pool.stop(f"{RECORDING}/p2"))
        for pc in clients:
            await pc.close()
        return survivor, loads

    survivor, loads = asyncio.run(run())
    assert failed == [(f"{RECORDING}/p0", "failed")]
    assert survivor.error is None and survivor.frames["video"] > 0
    assert loads == [0, 1] and pool.loads() == [0, 0]
