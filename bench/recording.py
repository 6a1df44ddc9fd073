"""Recording costs, measured in one run (about a minute on 2 cores):

1. CPU per second of recorded media for one consult (two publications, each VP8 640x480 at
   30 fps + Opus): the pass-through RecordingEngine (writing through ChunkWriter) against
   aiortc's MediaRecorder (decode + re-encode, writing a plain WebM file).
   The browsers are aiortc peers in a *separate process*, so the CPU measured here
   (time.process_time of this process: every thread, user + system) is the recorder's alone:
   SRTP, jitter buffers, decoding where any, muxing and writing. The client's CPU is printed
   apart. Each window starts 2 s after the connections are up.
2. Encrypted write throughput of ChunkWriter (AES-256-GCM, one fsync per 64 KiB chunk)
   against raw AESGCM.encrypt of 64 KiB chunks.

Run: .venv/bin/python bench/recording.py [--seconds 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.contrib.media import MediaRecorder
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # netns: the namespace the WebRTC tests use too

import netns  # noqa: E402

from portal.recording.endpoint import RecordingEngine, install_loopback_fallback  # noqa: E402
from portal.recording.store import ChunkReader, ChunkWriter  # noqa: E402

PUBLICATIONS = 2
WIDTH, HEIGHT, FPS = 640, 480, 30
WARMUP = 2.0
CHUNK = 64 * 1024
#: The bench runs in a loopback-only namespace: the recorder may contact loopback there.
LOOPBACK = ("127.0.0.0/8", "::1")


# --- the browsers (child process) -------------------------------------------------------------


class ColourVideo(VideoStreamTrack):
    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.size = (width, height)
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(*self.size, "yuv420p")
        for i, plane in enumerate(frame.planes):
            # A moving gradient, so that the encoder has real work to do.
            row = bytes((x + self.sent * 3 + i * 60) % 256 for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
        frame.pts, frame.time_base = pts, time_base
        self.sent += 1
        return frame


class SineAudio(AudioStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self._start = 0.0
        self._tone = b"".join(int(8000 * math.sin(2 * math.pi * 440 * i / 48000)).to_bytes(
            2, "little", signed=True) for i in range(960))

    async def recv(self) -> av.AudioFrame:
        if self.sent == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(self._start + self.sent * 0.020 - time.time())
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(self._tone)
        frame.pts, frame.sample_rate, frame.time_base = self.sent * 960, 48000, Fraction(1, 48000)
        self.sent += 1
        return frame


async def _client_session(conn: Connection, publications: int, width: int, height: int) -> None:
    pcs, videos = [], []
    for _ in range(publications):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        video = ColourVideo(width, height)
        pc.addTransceiver(video, direction="sendonly")
        pc.addTransceiver(SineAudio(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        pcs.append(pc)
        videos.append(video)
    conn.send([pc.localDescription.sdp for pc in pcs])
    answers = await asyncio.to_thread(conn.recv)
    for pc, answer in zip(pcs, answers, strict=True):
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    while any(pc.connectionState != "connected" for pc in pcs):
        await asyncio.sleep(0.05)
    conn.send("connected")
    cpu = time.process_time()
    await asyncio.to_thread(conn.recv)  # "stop"
    cpu = time.process_time() - cpu
    addresses = [a for pc in pcs for kind in netns.aiortc_addresses(pc) for a in kind]
    for pc in pcs:
        await pc.close()
    conn.send({"cpu": cpu, "frames_sent": [v.sent for v in videos],
               "outside_loopback": netns.outside_loopback(addresses)})


def client_main(conn: Connection) -> None:
    """The child process: one session per ("start", publications, width, height)."""
    install_loopback_fallback()  # in the namespace, 127.0.0.1 is all there is
    while (message := conn.recv()) != "exit":
        asyncio.run(_client_session(conn, *message[1:]))


# --- the recorders (this process) -------------------------------------------------------------


class NonSeekableFile:
    """A plain file the muxer must write strictly sequentially (as it writes ChunkWriter)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._file.close()


async def _window(conn: Connection, seconds: float) -> dict[str, Any]:
    await asyncio.to_thread(conn.recv)  # "connected"
    await asyncio.sleep(WARMUP)
    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    return {"cpu": cpu, "wall": wall}


async def passthrough_phase(conn: Connection, out: Path, seconds: float) -> dict[str, Any]:
    key = os.urandom(32)
    writers: list[ChunkWriter] = []

    def opener(i: int) -> Any:
        def open_sink() -> ChunkWriter:
            writers.append(ChunkWriter(out / f"pt{i}.track", recording_id="bench",
                                       track=f"p{i}", data_key=key))
            return writers[-1]
        return open_sink

    with RecordingEngine(allowed_networks=LOOPBACK) as engine:
        conn.send(("start", PUBLICATIONS, WIDTH, HEIGHT))
        offers = await asyncio.to_thread(conn.recv)
        answers = [await asyncio.wrap_future(engine.publish(f"bench/p{i}", sdp, opener(i)))
                   for i, sdp in enumerate(offers)]
        conn.send(answers)
        window = await _window(conn, seconds)
        results = [await asyncio.wrap_future(engine.stop(f"bench/p{i}"))
                   for i in range(len(offers))]
    conn.send("stop")
    window["client"] = await asyncio.to_thread(conn.recv)
    window["frames"] = []
    for i, result in enumerate(results):
        plain = out / f"pt{i}.webm"
        with ChunkReader(out / f"pt{i}.track", recording_id="bench", data_key=key) as reader:
            plain.write_bytes(b"".join(reader.iter_plaintext()))
        window["frames"].append(count_frames(plain))
        window.setdefault("mode", result.mode)
        window["bytes"] = window.get("bytes", 0) + plain.stat().st_size
        window["media_seconds"] = window.get("media_seconds", 0) + result.duration
    return window


async def mediarecorder_phase(conn: Connection, out: Path, seconds: float,
                              publications: int = PUBLICATIONS, width: int = WIDTH,
                              height: int = HEIGHT) -> dict[str, Any]:
    conn.send(("start", publications, width, height))
    offers = await asyncio.to_thread(conn.recv)
    pcs, recorders, answers = [], [], []
    for i, sdp in enumerate(offers):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        recorder = MediaRecorder(str(out / f"mr{i}.webm"))
        pc.on("track", recorder.addTrack)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await recorder.start()
        await pc.setLocalDescription(await pc.createAnswer())
        pcs.append(pc)
        recorders.append(recorder)
        answers.append(pc.localDescription.sdp)
    conn.send(answers)
    window = await _window(conn, seconds)
    for recorder in recorders:
        await recorder.stop()
    for pc in pcs:
        await pc.close()
    conn.send("stop")
    window["client"] = await asyncio.to_thread(conn.recv)
    window["frames"] = [count_frames(out / f"mr{i}.webm") for i in range(len(offers))]
    return window


def count_frames(path: Path) -> dict[str, int]:
    """Decoded frames per kind (ffprobe -count_frames), not merely declared streams."""
    proc = subprocess.run(  # noqa: S603
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],  # noqa: S607
        capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        return {}
    return {s["codec_type"]: int(s.get("nb_read_frames", 0))
            for s in json.loads(proc.stdout)["streams"]}


# --- encryption -------------------------------------------------------------------------------


def encryption(out: Path, megabytes: int) -> dict[str, float]:
    data = os.urandom(CHUNK)
    count = megabytes * 1024 * 1024 // CHUNK
    key = os.urandom(32)
    aead = AESGCM(key)
    start = time.perf_counter()
    for i in range(count):
        aead.encrypt(i.to_bytes(12, "big"), data, b"associated data")
    raw = time.perf_counter() - start
    writer = ChunkWriter(out / "throughput.track", recording_id="bench", track="t", data_key=key)
    start = time.perf_counter()
    for _ in range(count):
        writer.write(data)
    writer.close()
    written = time.perf_counter() - start
    size = count * CHUNK / 1e6
    return {"raw_mb_s": size / raw, "writer_mb_s": size / written, "mb": size}


# --- report -----------------------------------------------------------------------------------


def per_media_second(window: dict[str, Any]) -> float:
    return float(window["cpu"]) / (float(window["wall"]) * PUBLICATIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="measured window per phase")
    parser.add_argument("--megabytes", type=int, default=64, help="data for the write test")
    args = parser.parse_args()
    why = netns.require_root()
    if why:
        sys.exit(why)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the namespace is removed
    # Media between the peers and the recorders stays on loopback, in a namespace of our own;
    # the client process is started from inside it, and so is in it too.
    with netns.temporary("samtale-bench"):
        run(args)


def run(args: argparse.Namespace) -> None:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    client = context.Process(target=client_main, args=(child,), daemon=True)
    client.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
            out = Path(tmp)
            print(f"one consult: {PUBLICATIONS} publications of VP8 {WIDTH}x{HEIGHT} {FPS} fps"
                  f" + Opus, {args.seconds:.0f} s measured per recorder, {os.cpu_count()} CPUs")
            passthrough = asyncio.run(passthrough_phase(parent, out, args.seconds))
            baseline = asyncio.run(mediarecorder_phase(parent, out, args.seconds))
            small = asyncio.run(mediarecorder_phase(parent, out, 3, publications=1,
                                                    width=320, height=240))
            crypto = encryption(out, args.megabytes)
    finally:
        parent.send("exit")
        client.join(10)
    for window in (passthrough, baseline, small):
        if window["client"]["outside_loopback"]:
            sys.exit(f"ICE used addresses outside loopback: {window['client']['outside_loopback']}")
    print("ICE: every candidate gathered and used was on loopback")
    rows = [("pass-through (RecordingEngine + ChunkWriter)", passthrough),
            ("aiortc MediaRecorder (decode + re-encode)", baseline)]
    for name, window in rows:
        print(f"{name}:")
        print(f"  recorder CPU {window['cpu']:.2f} s over {window['wall']:.1f} s = "
              f"{per_media_second(window):.4f} CPU s per media second per publication "
              f"({window['cpu'] / window['wall']:.3f} cores for the consult)")
        print(f"  frames written per publication: {window['frames']}; video frames the "
              f"client sent: {window['client']['frames_sent']}")
        print(f"  client process CPU (not counted): {window['client']['cpu']:.2f} s")
    ratio = per_media_second(baseline) / per_media_second(passthrough)
    print(f"MediaRecorder / pass-through CPU: {ratio:.1f}x")
    for name, window in (("640x480", baseline), ("320x240", small)):
        print(f"MediaRecorder video frames written at {name}: "
              f"{[f.get('video', 0) for f in window['frames']]} of "
              f"{window['client']['frames_sent']} sent (PyAV {av.__version__})")
    rate = passthrough["bytes"] / passthrough["media_seconds"] * PUBLICATIONS / 1e6
    print(f"media written by one consult: {rate:.3f} MB/s")
    print(f"encryption, {crypto['mb']:.0f} MB in 64 KiB chunks:")
    print(f"  raw AESGCM.encrypt: {crypto['raw_mb_s']:.0f} MB/s")
    print(f"  ChunkWriter (encrypt + write + fsync per chunk): {crypto['writer_mb_s']:.0f} MB/s "
          f"= {crypto['writer_mb_s'] / crypto['raw_mb_s']:.2f} of raw")


if __name__ == "__main__":
    main()
