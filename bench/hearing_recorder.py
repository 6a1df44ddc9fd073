"""The hearings' recorder: CPU per recorded participant (issue 11's "recorder's CPU per
recorded participant").

What the recorder does per participant is the media path of portal/recording/forwarded.py:
SRTP decryption, reordering, VP8 pictures rebuilt, the pass-through muxer, the encrypted
writer (ChunkWriter, one fsync per sealed chunk). Its Janus side (rtp_forward once per
publication) costs nothing per packet. So this drives a ForwardReceiver in this process with
what Janus would forward: N participants' real VP8 and Opus (encoded once beforehand by
aiortc's encoders, packetized by aiortc, sealed with SRTP AES_CM_128_HMAC_SHA1_80) sent in
real time from a *separate process* over 127.0.0.1, so the CPU measured here
(time.process_time: every thread of this process, user + system) is the receiver's alone.
Stored frames are checked against sent ones. `measure(n)` is for bench/hearing.py.

Run: .venv/bin/python bench/hearing_recorder.py [--participants 1 4 8 15] [--seconds 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import pylibsrtp
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from portal.recording.forwarded import Endpoint, ForwardReceiver  # noqa: E402
from portal.recording.store import ChunkWriter  # noqa: E402

#: A phone's or laptop's camera as a hearing's top simulcast layer carries it.
WIDTH, HEIGHT, FPS, VIDEO_BITRATE = 640, 360, 30, 800_000
AUDIO_PACKET = 0.02
WARMUP = 2.0


def encoded(seconds: float) -> tuple[list[tuple[list[bytes], int]], list[tuple[list[bytes], int]]]:
    """(payloads, RTP timestamp) per picture and per Opus packet, for `seconds` of media."""
    vp8 = Vp8Encoder()
    vp8.target_bitrate = VIDEO_BITRATE
    pictures = []
    for n in range(int(seconds * FPS)):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for i, plane in enumerate(frame.planes):  # a moving gradient with detail
            row = bytes((x * 7 + n * 5 + i * 60) % 256 for x in range(plane.line_size))
            plane.update(row * (plane.buffer_size // plane.line_size))
        frame.pts, frame.time_base = n * 90000 // FPS, Fraction(1, 90000)
        pictures.append(vp8.encode(frame, force_keyframe=n == 0))
    opus = OpusEncoder()
    packets = []
    for n in range(int(seconds / AUDIO_PACKET)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(bytes((n + i) % 64 for i in range(1920)))
        frame.pts, frame.sample_rate, frame.time_base = n * 960, 48000, Fraction(1, 48000)
        payloads, ts = opus.encode(frame)
        packets.append((payloads, ts or n * 960))
    return pictures, packets


def _send(endpoints: list[dict[str, Endpoint]], seconds: float, conn: Connection) -> None:
    """The child: every participant's audio and video, in real time, as Janus forwards."""
    pictures, packets = encoded(seconds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    streams = []
    for n, mine in enumerate(endpoints):
        for kind, endpoint in mine.items():
            policy = pylibsrtp.Policy(key=endpoint.key,
                                      ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
            schedule = pictures if kind == "video" else packets
            step = 1 / FPS if kind == "video" else AUDIO_PACKET
            streams.append({"srtp": pylibsrtp.Session(policy=policy), "ssrc": 1000 + n * 2
                            + (kind == "video"), "pt": 96 if kind == "video" else 111,
                            "seq": 0, "to": (endpoint.host, endpoint.port),
                            "schedule": schedule, "step": step, "next": 0})
    conn.send("ready")
    conn.recv()
    start, sent = time.monotonic(), {"video": 0, "audio": 0}
    while True:
        now = time.monotonic() - start
        due = [s for s in streams if s["next"] < len(s["schedule"])
               and s["next"] * s["step"] <= now]
        if not due and all(s["next"] >= len(s["schedule"]) for s in streams):
            break
        for s in due:
            payloads, ts = s["schedule"][s["next"]]
            for i, payload in enumerate(payloads):
                packet = RtpPacket(payload_type=s["pt"], sequence_number=s["seq"] % 65536,
                                   timestamp=ts % (1 << 32), ssrc=s["ssrc"],
                                   marker=int(i == len(payloads) - 1), payload=payload)
                s["seq"] += 1
                sock.sendto(s["srtp"].protect(packet.serialize()), s["to"])
            sent["video" if s["pt"] == 96 else "audio"] += 1
            s["next"] += 1
        time.sleep(0.002)
    conn.send(sent)


def measure(participants: int, seconds: float = 10.0) -> dict[str, Any]:
    """Recorder CPU (% of one core) for `participants` forwarded at once, and per one."""
    folder = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    receiver = ForwardReceiver(host="127.0.0.1")
    receiver.start()
    data_key = os.urandom(32)
    endpoints = []
    for n in range(participants):
        def sink(n: int = n) -> Any:
            return ChunkWriter(folder / f"p{n}.smr", recording_id="bench", track=f"p{n}",
                               data_key=data_key, flush_interval=0.5)
        endpoints.append(receiver.open(f"bench/p{n}", {"audio": "opus", "video": "vp8"},
                                       sink).result(5))
    parent, child = multiprocessing.Pipe()
    sender = multiprocessing.Process(target=_send, args=(endpoints, seconds, child))
    sender.start()
    assert parent.recv() == "ready"
    parent.send("go")
    time.sleep(WARMUP)
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds - WARMUP - 0.5)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    sent = parent.recv()
    sender.join()
    results = [receiver.stop(f"bench/p{n}").result(30) for n in range(participants)]
    receiver.shutdown()
    share = 100 * cpu / wall
    stored = {k: sum(r.frames.get(k, 0) for r in results) / participants
              for k in ("video", "audio")}
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return {"participants": participants, "cpu_percent": round(share, 2),
            "per_participant": round(share / participants, 2), "sent": sent,
            "stored_per_participant": stored,
            "lost": sum(sum(r.lost.values()) for r in results),
            "rejected": sum(r.rejected for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[1, 4, 8, 15])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"media per participant: VP8 {WIDTH}x{HEIGHT}@{FPS} ~{VIDEO_BITRATE // 1000} kbit/s "
          f"+ Opus 20 ms; {os.cpu_count()} cores")
    for n in args.participants:
        found = measure(n, args.seconds)
        print(f"N={n:2d}: recorder {found['cpu_percent']:6.2f} % of a core, "
              f"{found['per_participant']:5.2f} % per participant; stored/participant "
              f"{found['stored_per_participant']}, sent {found['sent']}, "
              f"lost {found['lost']}, rejected {found['rejected']}")


if __name__ == "__main__":
    main()
