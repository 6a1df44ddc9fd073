"""Recording a call through Janus, without Janus.

The receiver of forwarded media (portal/recording/forwarded.py): a sender here does what
Janus's rtp_forward does (SRTP, AES_CM_128_HMAC_SHA1_80, to the receiver's UDP ports on
127.0.0.1) with real VP8 and Opus from aiortc's encoders and packetizers, and a socket stands
in for Janus's RTCP end to see the keyframe requests. What was stored is decrypted and counted
by ffprobe (-count_frames), against what was sent. The reordering and picture rebuilding on
their own, packet by packet. And the web worker's side: a Janus call's recording is left to
the recorder process (tests/test_recording_forward_janus.py records one)."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pylibsrtp
import pytest
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RTCP_PSFB_PLI, RtcpPacket, RtcpPsfbPacket, RtpPacket
from calls import consult_now, join_call
from flask import Flask
from people import People

from portal.audit import services as audit
from portal.extensions import db
from portal.models import Participant, Recording
from portal.recording import archive, services
from portal.recording.forwarded import Endpoint, ForwardReceiver, ForwardResult
from portal.recording.janus_room import RECORDER_ID, RoomWatch
from portal.recording.rtpframes import Gap, OpusFrames, Reorder, Vp8Frames
from portal.recording.store import ChunkReader, ChunkWriter

RECORDING_ID = "rec-fwd"
FPS = 15
AUDIO_PACKET = 0.02  # s of Opus per packet


# --- reordering and pictures, packet by packet -------------------------------------------------


def rtp(seq: int, ts: int = 0, marker: int = 0, payload: bytes = b"x") -> RtpPacket:
    return RtpPacket(payload_type=96, sequence_number=seq % 65536, timestamp=ts, marker=marker,
                     payload=payload)


def seqs(items: list[Any]) -> list[Any]:
    return [i.sequence_number if isinstance(i, RtpPacket) else i for i in items]


def test_packets_in_order_pass_at_once() -> None:
    reorder = Reorder(delay=0.4)
    assert [seqs(reorder.push(rtp(s), 0.0)) for s in (10, 11, 12)] == [[10], [11], [12]]


def test_a_swapped_pair_is_put_back_in_order() -> None:
    reorder = Reorder(delay=0.4)
    assert seqs(reorder.push(rtp(1), 0.0)) == [1]
    assert seqs(reorder.push(rtp(3), 0.0)) == []
    assert seqs(reorder.push(rtp(2), 0.1)) == [2, 3]
    assert (reorder.lost, reorder.late) == (0, 0)


def test_a_gap_waits_its_delay_then_is_given_up() -> None:
    reorder = Reorder(delay=0.5)
    reorder.push(rtp(1), 0.0)
    assert seqs(reorder.push(rtp(4), 1.0)) == []
    assert seqs(reorder.push(rtp(5), 1.25)) == []
    assert seqs(reorder.due(1.49)) == []
    assert seqs(reorder.due(1.5)) == [Gap(2), 4, 5]
    assert seqs(reorder.push(rtp(2), 1.75)) == []  # too late now
    assert (reorder.lost, reorder.late) == (2, 1)


def test_a_gap_is_given_up_when_the_buffer_is_full() -> None:
    reorder = Reorder(delay=10, capacity=3)
    reorder.push(rtp(1), 0.0)
    assert seqs(reorder.push(rtp(3), 0.0)) == []
    assert seqs(reorder.push(rtp(4), 0.0)) == []
    assert seqs(reorder.push(rtp(5), 0.0)) == [Gap(1), 3, 4, 5]


def test_duplicates_are_dropped_and_sequence_numbers_wrap() -> None:
    reorder = Reorder(delay=0.4)
    released = []
    for s in (65534, 65535, 65535, 0, 2, 1):
        released += seqs(reorder.push(rtp(s), 0.0))
    assert released == [65534, 65535, 0, 1, 2]
    assert (reorder.lost, reorder.late) == (0, 1)


def test_flush_gives_up_every_gap() -> None:
    reorder = Reorder(delay=10)
    reorder.push(rtp(1), 0.0)
    reorder.push(rtp(3), 0.0)
    reorder.push(rtp(6), 0.0)
    assert seqs(reorder.flush()) == [Gap(1), 3, Gap(2), 6]


def vp8_pictures(count: int, keyframes: set[int]) -> list[list[RtpPacket]]:
    """Real VP8 pictures, packetized by aiortc (`keyframes`: their indexes forced to key)."""
    encoder = Vp8Encoder()
    encoder.target_bitrate = 1_500_000  # several packets per picture
    seq, pictures = 100, []
    for n in range(count):
        frame = colour_frame(n)
        payloads, timestamp = encoder.encode(frame, force_keyframe=n in keyframes)
        packets = []
        for i, payload in enumerate(payloads):
            packets.append(rtp(seq, timestamp, int(i == len(payloads) - 1), payload))
            seq += 1
        pictures.append(packets)
    return pictures


def test_vp8_pictures_are_rebuilt_and_a_loss_waits_for_the_next_keyframe() -> None:
    pictures = vp8_pictures(8, keyframes={0, 5})
    assert all(len(p) >= 2 for p in pictures), "each picture spans packets"
    frames = Vp8Frames()
    out: list[Any] = []
    for n, packets in enumerate(pictures):
        for i, packet in enumerate(packets):
            if n == 2 and i == 0:  # the start of picture 2 is lost
                out += frames.push(Gap(1))
                continue
            out += frames.push(packet)
    kept = [r.item.pts for r in out]
    ts = [p[0].timestamp - pictures[0][0].timestamp for p in pictures]
    assert kept == [ts[0], ts[1], ts[5], ts[6], ts[7]]
    assert [r.keyframe for r in out] == [True, False, True, False, False]
    assert out[0].item.time_base == Fraction(1, 90000)
    assert (frames.frames, frames.dropped, frames.needs_keyframe) == (5, 3, False)


def test_a_vp8_picture_without_its_last_packet_is_dropped() -> None:
    pictures = vp8_pictures(3, keyframes={0})
    frames = Vp8Frames()
    out = []
    for packet in pictures[0][:-1]:  # the marker packet never comes
        out += frames.push(packet)
    out += frames.push(Gap(1))
    for packet in pictures[1] + pictures[2]:
        out += frames.push(packet)
    assert out == [] and frames.needs_keyframe


def test_opus_packets_are_frames_and_a_loss_is_a_gap() -> None:
    frames = OpusFrames()
    out = frames.push(rtp(1, 1000, payload=b"\x01"))
    out += frames.push(Gap(1))
    out += frames.push(rtp(3, 1960, payload=b"\x03"))
    assert [(bytes(r.item), r.item.pts) for r in out] == [(b"\x01", 0), (b"\x03", 960)]


# --- a Janus stand-in -------------------------------------------------------------------------


def colour_frame(n: int, size: tuple[int, int] = (320, 240)) -> av.VideoFrame:
    """Noise in the picture (so that VP8 needs several packets for it), changing each time."""
    frame = av.VideoFrame(*size, "yuv420p")
    noise = random.Random(n)
    for i, plane in enumerate(frame.planes):
        plane.update(noise.randbytes(plane.buffer_size) if i == 0
                     else bytes([(n * 7 + i * 80) % 256]) * plane.buffer_size)
    frame.pts, frame.time_base = n * 6000, Fraction(1, 90000)
    return frame


def tone_frame(n: int) -> av.AudioFrame:
    samples = 960
    frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(bytes((n * 3 + i) % 50 for i in range(samples * 2)))
    frame.pts, frame.sample_rate, frame.time_base = n * samples, 48000, Fraction(1, 48000)
    return frame


class SrtpOut:
    """One forwarded stream as Janus sends it: RTP sealed with the forward's key."""

    def __init__(self, endpoint: Endpoint, ssrc: int) -> None:
        policy = pylibsrtp.Policy(key=endpoint.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
        self.srtp = pylibsrtp.Session(policy=policy)
        self.target = (endpoint.host, endpoint.port)
        self.ssrc = ssrc
        self.seq = 4000 + ssrc % 1000
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0  # datagrams

    def packets(self, payloads: list[bytes], timestamp: int, pt: int) -> list[bytes]:
        out = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(payload_type=pt, sequence_number=self.seq % 65536,
                               timestamp=timestamp % (1 << 32), ssrc=self.ssrc,
                               marker=int(i == len(payloads) - 1), payload=payload)
            self.seq += 1
            out.append(self.srtp.protect(packet.serialize()))
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)
        self.sent += 1


@dataclass
class Sent:
    video: int = 0
    audio: int = 0
    keyframes: list[int] = field(default_factory=list)  # indexes of key pictures
    damaged: int | None = None  # the picture that lost a packet
    plis: int = 0


class FakeJanus:
    """Sends one publication's audio and video to a receiver's endpoints, as fast as the
    receiver takes them, with the media clock as the receiver's clock. Listens for PLIs on
    its RTCP socket and answers each with a keyframe, as a publisher does."""

    def __init__(self, endpoints: dict[str, Endpoint], clock: list[float],
                 read: Callable[[], dict[str, int]]) -> None:
        self.video = SrtpOut(endpoints["video"], ssrc=1111)
        self.audio = SrtpOut(endpoints["audio"], ssrc=2222)
        self.clock = clock
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp.bind(("127.0.0.1", 0))
        self.rtcp.setblocking(False)
        self.vp8, self.opus = Vp8Encoder(), OpusEncoder()
        self.sent = Sent()
        self.read = read  # the datagrams the receiver has read, by kind

    @property
    def rtcp_address(self) -> tuple[str, int]:
        return self.rtcp.getsockname()

    def _plis(self) -> int:
        count = 0
        while True:
            try:
                data = self.rtcp.recv(1500)
            except BlockingIOError:
                return count
            for packet in RtcpPacket.parse(data):
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                    count += 1

    def run(self, seconds: float, *, lose: int | None = None, swap: int | None = None,
            duplicate: int | None = None, junk: int = 0, unread: int = 0,
            stall: Callable[[], None] | None = None) -> Sent:
        """`lose`: drop the second packet of that picture; `swap`: send that picture's
        last packet before the one before it; `duplicate`: send its first packet twice;
        `unread`: call `stall` before the last pictures and send them without waiting for
        the receiver to read them (they are in its sockets when this returns)."""
        wanted = False
        pictures = int(seconds * FPS)
        audio_per_picture = round(1 / FPS / AUDIO_PACKET * 1000) / 1000
        audio_sent = 0.0
        for n in range(pictures):
            if unread and n == pictures - unread and stall is not None:
                stall()
            plis = self._plis()
            self.sent.plis += plis
            wanted = wanted or plis > 0
            self.clock[0] = n / FPS
            payloads, ts = self.vp8.encode(colour_frame(n), force_keyframe=wanted)
            if wanted or n == 0:
                self.sent.keyframes.append(n)
            wanted = False
            packets = self.video.packets(payloads, ts, 96)
            if n == lose and len(packets) > 1:
                packets.pop(1)
                self.sent.damaged = n
            if n == swap and len(packets) > 1:
                packets[-1], packets[-2] = packets[-2], packets[-1]
            if n == duplicate:
                packets.insert(0, packets[0])
            for data in packets:
                self.video.send(data)
            self.sent.video += 1
            audio_sent += audio_per_picture
            while self.sent.audio < int(audio_sent):
                self.clock[0] = self.sent.audio * AUDIO_PACKET
                encoded, ats = self.opus.encode(tone_frame(self.sent.audio))
                for data in self.audio.packets(encoded, ats, 111):
                    self.audio.send(data)
                self.sent.audio += 1
            for _ in range(junk):
                self.video.send(os.urandom(200))
            if n < pictures - unread:
                self.drain(ahead=32)
        if not unread:
            self.drain(ahead=0)
        self.clock[0] = seconds + 1  # whatever waited behind a gap is due
        return self.sent

    def drain(self, ahead: int) -> None:
        """Wait until the receiver has read all but `ahead` of the datagrams sent: no more
        than its socket buffers hold is ever on the way, however busy the machine is."""
        deadline = time.monotonic() + 10
        while True:
            read = self.read()
            if (read["video"] >= self.video.sent - ahead
                    and read["audio"] >= self.audio.sent - ahead):
                return
            assert time.monotonic() < deadline, f"the receiver read {read} only"
            time.sleep(0.001)

    def close(self) -> None:
        for sock in (self.video.sock, self.audio.sock, self.rtcp):
            sock.close()


# --- end to end through sockets ---------------------------------------------------------------


@dataclass
class Stored:
    path: Path
    data_key: bytes = field(default_factory=lambda: os.urandom(32))
    opened: int = 0

    def open(self) -> ChunkWriter:
        self.opened += 1
        return ChunkWriter(self.path, recording_id=RECORDING_ID, track=self.path.stem,
                           data_key=self.data_key, flush_interval=0.5)

    def frames(self) -> dict[str, tuple[str, int]]:
        """kind -> (codec, frames decoded by ffprobe) of the decrypted file."""
        plain = self.path.with_suffix(".webm")
        with ChunkReader(self.path, recording_id=RECORDING_ID, data_key=self.data_key) as r:
            plain.write_bytes(b"".join(r.iter_plaintext()))
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json",
             str(plain)], capture_output=True, text=True, check=True, timeout=60)
        return {s["codec_type"]: (s["codec_name"], int(s["nb_read_frames"]))
                for s in json.loads(out.stdout)["streams"]}


@pytest.fixture
def clock() -> list[float]:
    return [0.0]


@pytest.fixture
def receiver(clock: list[float]) -> Iterator[ForwardReceiver]:
    running = ForwardReceiver(host="127.0.0.1", clock=lambda: clock[0], reorder_delay=0.2,
                              tick_interval=0.05)
    running.start()
    yield running
    running.shutdown()


def record(receiver: ForwardReceiver, clock: list[float], stored: Stored,
           **run: Any) -> tuple[Sent, ForwardResult]:
    endpoints = receiver.open("rec-fwd/p1-1", {"audio": "opus", "video": "vp8"},
                              stored.open).result(5)
    janus = FakeJanus(endpoints, clock,
                      lambda: receiver.datagrams("rec-fwd/p1-1").result(5))
    try:
        receiver.feedback("rec-fwd/p1-1", "video", janus.rtcp_address).result(5)
        sent = janus.run(3.0, **run)
        # Everything sent is in the receiver's socket buffer or past it; the stop reads on.
        result = receiver.stop("rec-fwd/p1-1").result(10)
    finally:
        janus.close()
    return sent, result


def test_forwarded_vp8_and_opus_are_stored_as_sent(receiver: ForwardReceiver,
                                                   clock: list[float], tmp_path: Path) -> None:
    stored = Stored(tmp_path / "p1-1.smr")
    sent, result = record(receiver, clock, stored)
    assert stored.opened == 1 and result.error is None and result.rejected == 0
    assert result.codecs == {"audio": "opus", "video": "vp8"}
    assert result.lost == {"audio": 0, "video": 0} and result.late == {"audio": 0, "video": 0}
    assert result.loss is not None and result.loss["complete"] is True, result.loss
    assert result.frames == {"video": sent.video, "audio": sent.audio}
    assert stored.frames() == {"video": ("vp8", sent.video), "audio": ("opus", sent.audio)}
    # The first PLI went out as soon as Janus's RTCP end was known, before any media.
    assert result.keyframe_requests >= 1 and sent.plis == result.keyframe_requests
    assert 2.5 <= result.duration <= 3.1


def test_a_lost_packet_costs_the_pictures_until_the_keyframe_it_asks_for(
        receiver: ForwardReceiver, clock: list[float], tmp_path: Path) -> None:
    stored = Stored(tmp_path / "p1-1.smr")
    sent, result = record(receiver, clock, stored, lose=10)
    assert sent.damaged == 10 and result.lost["video"] == 1
    assert result.loss is not None and result.loss["complete"] is False
    assert result.loss["total"] == {"video": {"lost": 1}}  # what the manifest will say
    after = [k for k in sent.keyframes if k > 10]
    assert after, f"no keyframe was asked for after the loss: {sent}"
    missing = after[0] - 10  # picture 10 up to the keyframe that answered the PLI
    assert result.frames["video"] == sent.video - missing
    assert stored.frames()["video"] == ("vp8", sent.video - missing)
    assert stored.frames()["audio"] == ("opus", sent.audio)


def test_reordered_duplicated_and_forged_packets(receiver: ForwardReceiver,
                                                 clock: list[float], tmp_path: Path) -> None:
    stored = Stored(tmp_path / "p1-1.smr")
    sent, result = record(receiver, clock, stored, swap=7, duplicate=12, junk=1)
    assert result.lost["video"] == 0 and result.late["video"] == 0
    assert result.loss is not None and result.loss["complete"] is True
    assert result.loss["total"]["video"] == {"late": 1}  # the swapped pair: nothing lost
    # The duplicate fails SRTP's replay check; junk fails authentication.
    assert result.rejected == 1 + sent.video
    assert stored.frames() == {"video": ("vp8", sent.video), "audio": ("opus", sent.audio)}


def test_a_stop_first_reads_what_janus_sent_before_it(receiver: ForwardReceiver,
                                                     clock: list[float],
                                                     tmp_path: Path) -> None:
    """The receiver's loop is held up while the last pictures arrive, and the stop is queued
    behind it: the stop reads what waits in the sockets before closing them."""
    stored = Stored(tmp_path / "p1-1.smr")
    loop = receiver._loop
    assert loop is not None
    sent, result = record(receiver, clock, stored, unread=10,
                          stall=lambda: loop.call_soon_threadsafe(time.sleep, 0.5))
    assert result.loss is not None and result.loss["complete"] is True, result.loss
    assert result.frames == {"video": sent.video, "audio": sent.audio}
    assert stored.frames() == {"video": ("vp8", sent.video), "audio": ("opus", sent.audio)}


def test_nothing_received_opens_no_file(receiver: ForwardReceiver, tmp_path: Path) -> None:
    stored = Stored(tmp_path / "p1-1.smr")
    endpoints = receiver.open("rec-fwd/p1-1", {"audio": "opus"}, stored.open).result(5)
    assert set(endpoints) == {"audio"} and endpoints["audio"].rtcp_port is None
    assert len(endpoints["audio"].srtp_crypto) == 40  # base64 of 30 bytes
    result = receiver.stop("rec-fwd/p1-1").result(5)
    assert stored.opened == 0 and not stored.path.exists()
    assert result.frames == {} and result.first_media_at is None


# --- the web worker's side of a call through Janus --------------------------------------------


def test_a_janus_calls_recording_is_left_to_the_recorder_process(
        app: Flask, host_socket: Any, people: People) -> None:
    """Five people make a consult go through Janus: Record starts the recording (its data key
    made and wrapped in that transaction) but asks no browser to publish to this process, an
    offer to it is refused, and a recorded participant leaving does not stop it."""
    c = consult_now(app, people.host_a, ["A", "B", "C", "D"], "Five")
    host = host_socket(c)
    join_call(host)
    assert host.welcome is not None and host.welcome["media"] == "janus"
    host.emit("record:start", {"version": host.welcome["recording"]["wording"]["version"]})
    host.no_errors()
    started = host.last("record:state")
    assert started["status"] == "recording" and started["publishers"] == [host.id]
    assert host.take("record:publish") == []
    with app.app_context():
        row = db.session.get(Recording, started["id"])
        assert row is not None and row.key_id is not None and row.wrapped_key is not None
        assert len(archive.data_key(row)) == 32
    assert app.extensions["recording"]._data_keys == {}  # nothing held by the web worker
    host.emit("record:offer", {"id": started["id"], "sdp": "v=0\r\n" * 4})
    assert host.error("record:offer")["code"] == "use_hearing"
    with app.app_context():
        me = db.session.get(Participant, host.id)
        assert me is not None
        assert services.participant_left(me, audit.SYSTEM).stop is False
        db.session.rollback()


# --- the recorder in a Janus room: what it learns from events, what it asks for -----------------


class ScriptedJanus:
    """Takes the recorder's room requests and answers as Janus 1.1.2 does (what real Janus
    does with them is tested in test_recording_forward_janus.py)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.alive = True

    def attach(self) -> int:
        return 77

    def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        stream = body["streams"][0]
        forwarder = {"stream_id": 1000 + len(self.bodies), "port": stream["port"]}
        if "rtcp_port" in stream:
            forwarder["local_rtcp_port"] = 5555
        return {"videoroom": "rtp_forward", "forwarders": [forwarder]}


def event(data: dict[str, Any]) -> dict[str, Any]:
    return {"janus": "event", "sender": 77, "plugindata": {"data": {"videoroom": "event",
                                                                      **data}}}


def test_the_room_watch_follows_publications_from_janus_events() -> None:
    watch = RoomWatch(ScriptedJanus(), room=5, secret="s", admin_key="k")  # type: ignore[arg-type]
    streams = [{"type": "video", "mid": "0", "codec": "vp8", "simulcast": True},
               {"type": "audio", "mid": "1", "codec": "opus"},
               {"type": "data", "mid": "2"}]
    assert watch.on_event(event({"publishers": [{"id": 7, "streams": streams},
                                                {"id": RECORDER_ID, "streams": []}]}))
    first = watch.publications()[7]
    assert set(first.recordable()) == {"video", "audio"} and RECORDER_ID not in \
        watch.publications()
    assert not watch.on_event(event({"joining": {"id": 8}}))  # joining is not publishing
    assert watch.on_event(event({"publishers": [{"id": 7, "streams": streams}]}))
    assert watch.publications()[7].number > first.number  # a republish is a new publication
    assert watch.on_event(event({"unpublished": 7})) and watch.publications() == {}
    watch.on_event(event({"publishers": [{"id": 8, "streams": [
        {"type": "video", "mid": "0", "codec": "h264"},
        {"type": "audio", "mid": "1", "codec": "opus", "disabled": True}]}]}))
    assert watch.publications()[8].recordable() == {}  # nothing the muxer stores as received
    assert watch.on_event(event({"leaving": 8})) and watch.publications() == {}
    assert not watch.gone
    assert watch.on_event({"janus": "event", "plugindata": {"data": {"videoroom": "destroyed"}}})
    assert watch.gone


def test_a_forward_asks_janus_for_srtp_rtcp_feedback_and_the_best_simulcast_layer() -> None:
    janus = ScriptedJanus()
    watch = RoomWatch(janus, room=5, secret="s", admin_key="k")  # type: ignore[arg-type]
    watch.on_event(event({"publishers": [{"id": 7, "streams": [
        {"type": "video", "mid": "v", "codec": "vp8", "simulcast": True},
        {"type": "audio", "mid": "a", "codec": "opus"}]}]}))
    key = os.urandom(30)
    made = watch.forward(watch.publications()[7], {
        "audio": Endpoint("audio", "opus", "127.0.0.1", 4000, None, key),
        "video": Endpoint("video", "vp8", "127.0.0.1", 4002, 4003, key)})
    audio, video = janus.bodies
    assert audio == {"request": "rtp_forward", "publisher_id": 7, "host": "127.0.0.1",
                     "streams": [{"mid": "a", "port": 4000}], "srtp_suite": 80,
                     "srtp_crypto": base64.b64encode(key).decode(), "room": 5,
                     "secret": "s", "admin_key": "k"}
    assert video["streams"] == [{"mid": "v", "port": 4002, "rtcp_port": 4003,
                                 "simulcast": True}]
    assert made.stream_ids == {"audio": 1001, "video": 1002}
    assert made.rtcp_ports == {"video": 5555}
