"""Recording at scale (issue 17): N consults recorded at once by the portal's own recorder, with
every lost frame counted; aiortc's MediaRecorder as the baseline; and the encrypted writer.

1. N consults at once (N = 1, 10, 20, 40 by default; --consults): each consult is two
   publications (host and guest) of pre-encoded VP8 640x480 at 30 fps and at least 1.5 Mbit/s
   plus Opus, as a real call sends them, replayed in real time by aiortc peers in separate
   sender processes (so that encoding costs the recorder nothing and the senders little). The
   recorder is what the portal runs: a WorkerPool of --workers recorder processes (one per core
   by default), each writing through the disk threads into encrypted track files sealed every
   0.5 s (the portal's chunk interval). Counted: the workers' CPU (/proc/<pid>/stat), what each
   publication's loss ledger says (RTP gaps, socket drops, refused packets), and every video
   frame: decoded by ffprobe -count_frames from the decrypted files against the frames sent.
   The senders stop first and the recorder a second later, so nothing may be missing but the
   last frame. "Zero loss" means exactly that, and "consults per core" is the largest N that
   had zero loss divided by the workers, measured, not extrapolated.
2. The baseline: aiortc's MediaRecorder (decode + re-encode) recording one consult of the same
   media in this process, one MediaRecorder per track (so the video stream is opened by its
   first frame, never after an audio packet started the file: PyAV 18's "Cannot change width
   after codec is open"), its frames counted the same way. The CPU ratio is printed only when
   both recorded every frame.
3. Encrypted write throughput of ChunkWriter against raw AESGCM.encrypt.

The machine the bench runs on is shared or not: `uptime`'s load is printed with the figures.

Run: .venv/bin/python bench/recording.py [--consults 1 10] [--workers 2] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
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
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # netns: the namespace the WebRTC tests use too

import netns  # noqa: E402

from portal.recording import udp  # noqa: E402
from portal.recording.disk import TrackFile  # noqa: E402
from portal.recording.endpoint import install_loopback_fallback  # noqa: E402
from portal.recording.loss import LOSSES  # noqa: E402
from portal.recording.manager import CHUNK_INTERVAL  # noqa: E402
from portal.recording.store import ChunkReader, ChunkWriter  # noqa: E402
from portal.recording.workers import EngineSettings, WorkerPool  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 480, 30
VIDEO_BITRATE = 1_600_000  # a real call's camera: at least 1.5 Mbit/s (issue 17)
LOOP_SECONDS = 10  # the pre-encoded media, replayed from its keyframe in a loop
NOISE_ROWS = 24  # rows of noise in each picture (more than rate control can squeeze: ~1.6)
WARMUP = 2.0
DRAIN = 3.0  # s between the senders' stop and the recorder's: a busy recorder catches up
CHUNK = 64 * 1024
SENDERS = 2  # sender processes
LOOPBACK = ["127.0.0.0/8", "::1"]
KEY = bytes(range(32))


# --- the media, encoded once ------------------------------------------------------------------


def encode_media() -> tuple[list[bytes], list[bytes]]:
    """LOOP_SECONDS of VP8 (one keyframe, first) and of Opus (20 ms packets)."""
    video = av.CodecContext.create("libvpx", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.bit_rate, video.framerate = VIDEO_BITRATE, Fraction(FPS)
    video.time_base = Fraction(1, FPS)
    video.gop_size = 2 * FPS  # a keyframe every 2 s: a replay cannot answer a PLI
    video.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    pictures: list[bytes] = []
    noise = os.urandom(WIDTH * HEIGHT)
    ramp = bytes(range(256)) * (WIDTH // 128 + 2)
    for n in range(LOOP_SECONDS * FPS):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for i, plane in enumerate(frame.planes):
            # A moving gradient with a band of noise in the picture: detail the encoder must
            # spend its bits on, which its rate control holds at VIDEO_BITRATE.
            offset = (n * 3 + i * 60) % 256
            data = ramp[offset:offset + plane.line_size] * (plane.buffer_size // plane.line_size)
            if i == 0:
                band = NOISE_ROWS * plane.line_size
                start = (n * 7919) % (len(noise) - band)
                data = noise[start:start + band] + data[band:]
            plane.update(data)
        frame.pts = n
        pictures += [bytes(p) for p in video.encode(frame)]
    pictures += [bytes(p) for p in video.encode(None)]
    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.layout, audio.format = 48000, "stereo", "s16"
    audio.bit_rate = 32000
    packets: list[bytes] = []
    for n in range(LOOP_SECONDS * 50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(bytes((n * 31 + i) % 200 for i in range(960 * 4)))
        frame.pts, frame.sample_rate = n * 960, 48000
        packets += [bytes(p) for p in audio.encode(frame)]
    return pictures, packets


class Replay(MediaStreamTrack):
    """Pre-encoded packets in real time: aiortc's sender packetizes av.Packets as they are."""

    def __init__(self, kind: str, packets: list[bytes], rate: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self.packets, self.rate, self.step = packets, rate, step
        self.sent = 0
        self.stopped = False
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self.sent * self.step / self.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        if self.stopped:
            raise MediaStreamError
        packet = av.Packet(self.packets[self.sent % len(self.packets)])
        packet.pts, packet.time_base = self.sent * self.step, Fraction(1, self.rate)
        self.sent += 1
        return packet


# --- sender processes -------------------------------------------------------------------------


def as_browsers_take(answer: str) -> str:
    """The recorder's answer as the portal's page takes it (record-rate.js): without the
    recorder's bandwidth estimate (goog-remb) and abs-send-time, so that the recorder runs no
    estimator for this sender, as for a browser."""
    return "\r\n".join(line for line in answer.split("\r\n")
                       if not re.match(r"a=rtcp-fb:\S+ goog-remb\b", line)
                       and "abs-send-time" not in line)


async def _send(conn: Connection, count: int, pictures: list[bytes],
                opus: list[bytes]) -> None:
    pcs, tracks = [], []
    for _ in range(count):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        video = Replay("video", pictures, 90000, 90000 // FPS)
        audio = Replay("audio", opus, 48000, 960)
        pc.addTransceiver(video, direction="sendonly")
        pc.addTransceiver(audio, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        pcs.append(pc)
        tracks.append((video, audio))
    conn.send([pc.localDescription.sdp for pc in pcs])
    answers = await asyncio.to_thread(conn.recv)
    for pc, answer in zip(pcs, answers, strict=True):
        await pc.setRemoteDescription(RTCSessionDescription(as_browsers_take(answer), "answer"))
    deadline = time.monotonic() + 60
    while any(pc.connectionState != "connected" for pc in pcs) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    conn.send("connected")
    cpu = time.process_time()
    await asyncio.to_thread(conn.recv)  # "stop"
    for video, audio in tracks:
        video.stopped = audio.stopped = True
    sent = [(video.sent, audio.sent) for video, audio in tracks]
    conn.send({"sent": sent, "cpu": time.process_time() - cpu})
    await asyncio.to_thread(conn.recv)  # "close"
    for pc in pcs:
        await pc.close()


def sender_main(conn: Connection) -> None:
    install_loopback_fallback()
    pictures, opus = conn.recv()
    while (message := conn.recv()) != "exit":
        asyncio.run(_send(conn, message, pictures, opus))


class Senders:
    def __init__(self, processes: int, media: tuple[list[bytes], list[bytes]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for _ in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=sender_main, args=(child,), daemon=True)
            proc.start()
            parent.send(media)
            self.conns.append(parent)
            self.procs.append(proc)

    def split(self, publications: int) -> list[int]:
        share = [publications // len(self.conns)] * len(self.conns)
        for i in range(publications % len(self.conns)):
            share[i] += 1
        return share

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            conn.send("exit")
            proc.join(10)


# --- the portal's recorder, N consults --------------------------------------------------------


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_frames(path: Path) -> dict[str, int]:
    """Decoded frames per kind (ffprobe -count_frames), not merely declared streams."""
    proc = subprocess.run(  # noqa: S603
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],  # noqa: S607
        capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        return {}
    return {s["codec_type"]: int(s.get("nb_read_frames", 0))
            for s in json.loads(proc.stdout)["streams"]}


def stored_frames(path: Path) -> dict[str, int]:
    plain = path.with_suffix(".webm")
    with ChunkReader(path, recording_id="bench", data_key=KEY) as reader:
        plain.write_bytes(b"".join(reader.iter_plaintext()))
    frames = count_frames(plain)
    plain.unlink()
    return frames


def record(senders: Senders, consults: int, workers: int, seconds: float,
           out: Path) -> dict[str, Any]:
    publications = 2 * consults
    pool = WorkerPool(workers, EngineSettings(allowed_networks=LOOPBACK))
    pool.start(wait=True)
    keys: list[str] = []
    try:
        shares = senders.split(publications)
        for conn, share in zip(senders.conns, shares, strict=True):
            conn.send(share)
        n = 0
        for conn in senders.conns:
            offers = conn.recv()
            answers = []
            for sdp in offers:
                key = f"bench/p{n}"
                track = TrackFile(out / f"p{n}.smr", "bench", f"p{n}", KEY, CHUNK_INTERVAL)
                answers.append(pool.publish(key, sdp, track).result(60))
                keys.append(key)
                n += 1
            conn.send(answers)
        for conn in senders.conns:
            assert conn.recv() == "connected"
        time.sleep(WARMUP)
        pids = [pid for pid in pool.pids() if pid is not None]
        cpu, wall = sum(process_cpu(p) for p in pids), time.monotonic()
        time.sleep(seconds)
        cpu, wall = sum(process_cpu(p) for p in pids) - cpu, time.monotonic() - wall
        for conn in senders.conns:
            conn.send("stop")
        sent = [pair for conn in senders.conns for pair in conn.recv()["sent"]]
        time.sleep(DRAIN)
        stopping = [pool.stop(key) for key in keys]  # all at once, as N hosts would
        results = [future.result(120) for future in stopping]
        for conn in senders.conns:
            conn.send("close")
    finally:
        pool.shutdown()
    loss: dict[str, int] = {}
    for result in results:
        for counters in (result.loss or {}).get("total", {}).values():
            for counter, count in counters.items():
                loss[counter] = loss.get(counter, 0) + count
    stored = [stored_frames(out / f"p{i}.smr") for i in range(publications)]
    for i in range(publications):
        (out / f"p{i}.smr").unlink()
    video_sent = sum(s[0] for s in sent)
    video_stored = sum(f.get("video", 0) for f in stored)
    short = [s[0] - f.get("video", 0) for s, f in zip(sent, stored, strict=True)]
    return {"consults": consults, "workers": workers, "cpu": cpu, "wall": wall,
            "video_sent": video_sent, "video_stored": video_stored,
            "lost_beyond_last": sum(max(0, gap - 1) for gap in short),
            "short": short,
            "ledger": loss, "errors": [r.error for r in results if r.error]}


def zero_loss(run: dict[str, Any]) -> bool:
    return (run["lost_beyond_last"] == 0 and not run["errors"]
            and not any(run["ledger"].get(c) for c in LOSSES))


# --- the baseline: aiortc's MediaRecorder -----------------------------------------------------


def mediarecorder(senders: Senders, seconds: float, out: Path) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        conn = senders.conns[0]
        conn.send(2)
        offers = conn.recv()
        pcs, recorders, answers, tracks = [], [], [], []
        for i, sdp in enumerate(offers):
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            mine: dict[str, MediaRecorder] = {}

            def on_track(track: Any, mine: dict[str, MediaRecorder] = mine, i: int = i) -> None:
                # One file per track: the video stream is opened by its own first frame.
                recorder = MediaRecorder(str(out / f"mr{i}-{track.kind}.webm"))
                recorder.addTrack(track)
                if track.kind == "video":  # a real-time encoder at the call's bitrate, so
                    # that it can keep up at all (its default is libvpx's slow "good")
                    for context in recorder._MediaRecorder__tracks.values():  # type: ignore
                        context.stream.codec_context.bit_rate = VIDEO_BITRATE
                        context.stream.codec_context.options = {
                            "deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
                mine[track.kind] = recorder
                tracks.append(track)

            pc.on("track", on_track)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for recorder in mine.values():
                await recorder.start()
            await pc.setLocalDescription(await pc.createAnswer())
            for sock in udp.peer_sockets(pc):  # the receive buffers the portal's recorder has
                udp.size_receive_buffer(sock)
            pcs.append(pc)
            recorders += mine.values()
            answers.append(pc.localDescription.sdp)
        conn.send(answers)
        assert await asyncio.to_thread(conn.recv) == "connected"
        await asyncio.sleep(WARMUP)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        conn.send("stop")
        sent = (await asyncio.to_thread(conn.recv))["sent"]
        await asyncio.sleep(DRAIN)
        # MediaRecorder.stop() drops what it has not encoded yet: give it the time it needs
        # (its CPU is measured in the window above, not here).
        deadline = time.monotonic() + 60
        while any(t._queue.qsize() for t in tracks) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for recorder in recorders:
            await recorder.stop()
        for pc in pcs:
            await pc.close()
        conn.send("close")
        stored = [count_frames(out / f"mr{i}-video.webm").get("video", 0) for i in range(2)]
        short = [s[0] - f for s, f in zip(sent, stored, strict=True)]
        return {"cpu": cpu, "wall": wall, "video_sent": sum(s[0] for s in sent),
                "video_stored": sum(stored), "lost_beyond_last": sum(max(0, g - 1)
                                                                     for g in short)}
    return asyncio.run(run())


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


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consults", type=int, nargs="+", default=[1, 10, 20, 40])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured window per run")
    parser.add_argument("--megabytes", type=int, default=64, help="data for the write test")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    why = netns.require_root()
    if why:
        sys.exit(why)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the namespace is removed
    with netns.temporary("samtale-bench"):
        run(args)


def run(args: argparse.Namespace) -> None:
    pictures, opus = encode_media()
    bitrate = sum(map(len, pictures)) * 8 / LOOP_SECONDS / 1e6
    print(f"media: VP8 {WIDTH}x{HEIGHT} {FPS} fps at {bitrate:.2f} Mbit/s + Opus, pre-encoded; "
          f"chunks sealed every {CHUNK_INTERVAL} s; {os.cpu_count()} CPUs; load {load()}")
    senders = Senders(SENDERS, (pictures, opus))
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
            out = Path(tmp)
            for consults in args.consults:
                found = record(senders, consults, args.workers, args.seconds, out)
                runs.append(found)
                cores = found["cpu"] / found["wall"]
                print(f"{consults} consults ({2 * consults} publications), {args.workers} "
                      f"workers: recorder {cores:.2f} cores ({cores / consults:.3f} per "
                      f"consult); video frames stored {found['video_stored']} of "
                      f"{found['video_sent']} sent, lost beyond the last frame "
                      f"{found['lost_beyond_last']} (per publication {found['short']}); "
                      f"ledger {found['ledger'] or '{}'}; "
                      f"errors {found['errors'] or 'none'}; zero loss: "
                      f"{'yes' if zero_loss(found) else 'NO'}; load {load()}")
            baseline = None if args.no_baseline else mediarecorder(senders, args.seconds, out)
            crypto = encryption(out, args.megabytes)
    finally:
        senders.close()
    clean = [r["consults"] for r in runs if zero_loss(r)]
    if clean:
        print(f"measured: {max(clean)} consults recorded at once with zero loss on "
              f"{args.workers} workers = {max(clean) / args.workers:.1f} consults per core "
              f"(the most tried: {max(r['consults'] for r in runs)})")
    else:
        print("measured: no run recorded every frame")
    if baseline is not None:
        one = next((r for r in runs if r["consults"] == 1), None)
        per = baseline["cpu"] / baseline["wall"]
        print(f"MediaRecorder, one consult: {per:.2f} cores; video frames stored "
              f"{baseline['video_stored']} of {baseline['video_sent']} sent, lost beyond the "
              f"last frame {baseline['lost_beyond_last']}")
        if one is None:
            print("no ratio: run --consults 1 as well")
        elif baseline["lost_beyond_last"] or not zero_loss(one):
            print("no ratio: a recorder lost frames, so its CPU is not that of a whole recording")
        else:
            print(f"MediaRecorder / pass-through CPU for one consult: "
                  f"{per / (one['cpu'] / one['wall']):.1f}x (both recorded every frame)")
            # One consult alone carries the worker's fixed costs (its loop, ticks); at load
            # the cost per consult is what decides how many one core records.
            most = max((r for r in runs if zero_loss(r)), key=lambda r: r["consults"])
            at_load = most["cpu"] / most["wall"] / most["consults"]
            print(f"MediaRecorder / pass-through CPU per consult at {most['consults']} "
                  f"consults (the most with zero loss): {per / at_load:.1f}x; consults per "
                  f"core: MediaRecorder {1 / per:.1f}, pass-through {1 / at_load:.1f}")
    print(f"encryption, {crypto['mb']:.0f} MB in 64 KiB chunks: raw AESGCM.encrypt "
          f"{crypto['raw_mb_s']:.0f} MB/s; ChunkWriter (encrypt + write + fsync per chunk) "
          f"{crypto['writer_mb_s']:.0f} MB/s")


if __name__ == "__main__":
    main()
