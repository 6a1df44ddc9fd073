"""The recording endpoint end to end, without a browser: an aiortc client publishes synthetic
video and audio to RecordingEngine, which stores them as received (encrypted with ChunkWriter);
ffprobe counts the frames of what was written."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiortc
import av
import ifaddr
import pytest
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.rtp import RtpPacket, is_rtcp
from live import LOOPBACK
from netns import assert_aiortc_on_loopback
from recording_peers import STORED_SHARE, ColourVideo, SineAudio

from portal.recording.endpoint import (
    EngineStoppedError,
    NegotiationError,
    PublicationResult,
    RecordingEngine,
    UnknownPublicationError,
)
from portal.recording.passthrough import Received, TrackMuxer
from portal.recording.store import ChunkReader, ChunkWriter

pytestmark = [pytest.mark.webrtc]

FPS = 30
RECORDING_ID = "rec-1"
ENGINE_THREADS = ("recording-engine", "audio-decoder", "video-decoder")


# --- a browser stand-in -----------------------------------------------------------------------


@dataclass
class Client:
    pc: RTCPeerConnection
    answer: str
    video: ColourVideo | None
    audio: SineAudio | None
    states: list[str] = field(default_factory=list)

    def sent(self) -> dict[str, int]:
        """Frames the tracks have handed to the sender so far, by kind."""
        return {kind: track.sent for kind, track in (("video", self.video), ("audio", self.audio))
                if track is not None}


@dataclass
class Sent:
    """What the sender produced just before the stop was asked for, and just after it ended."""

    before: dict[str, int]
    after: dict[str, int]

    def holds(self, streams: dict[str, Probed], *kinds: str) -> None:
        """Stored frames against sent ones. Never more than were sent by the end of the stop;
        at least STORED_SHARE of those sent before it. What a recorder may lose: the frames
        still on their way when it stopped (a few), and on a busy machine a lost packet
        whose picture cannot be decoded until the keyframe its PLI asks for (a round trip)."""
        for kind in kinds:
            stored = streams[kind].frames
            assert 0 < stored <= self.after[kind], (kind, stored, self)
            assert stored >= STORED_SHARE * self.before[kind], (kind, stored, self)


def prefer(transceiver: Any, kind: str, mime: str) -> None:
    codecs = [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType == mime]
    transceiver.setCodecPreferences(codecs)


async def publish(engine: RecordingEngine, key: str, open_sink: Callable[[], Any], *,
                  video: bool = True, audio: bool = True, video_mime: str | None = None,
                  audio_mime: str | None = None) -> Client:
    """Offer like a browser, answer through the engine, wait until the connection is up."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    client = Client(pc, "", ColourVideo() if video else None, SineAudio() if audio else None)
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def _changed() -> None:
        client.states.append(pc.connectionState)
        if pc.connectionState == "connected":
            connected.set()

    if client.video is not None:
        t = pc.addTransceiver(client.video, direction="sendonly")
        if video_mime:
            prefer(t, "video", video_mime)
    if client.audio is not None:
        t = pc.addTransceiver(client.audio, direction="sendonly")
        if audio_mime:
            prefer(t, "audio", audio_mime)
    await pc.setLocalDescription(await pc.createOffer())
    client.answer = await asyncio.wrap_future(
        engine.publish(key, pc.localDescription.sdp, open_sink))
    await pc.setRemoteDescription(RTCSessionDescription(client.answer, "answer"))
    await asyncio.wait_for(connected.wait(), 10)
    assert_aiortc_on_loopback(pc, "publisher")
    return client


async def stop(engine: RecordingEngine, key: str) -> PublicationResult:
    return await asyncio.wrap_future(engine.stop(key))


# --- sinks and ffprobe ------------------------------------------------------------------------


@dataclass
class Track:
    path: Path
    data_key: bytes = field(default_factory=lambda: os.urandom(32))
    writer: ChunkWriter | None = None
    opened: int = 0

    def open(self) -> ChunkWriter:
        self.opened += 1
        self.writer = ChunkWriter(self.path, recording_id=RECORDING_ID, track=self.path.stem,
                                  data_key=self.data_key)
        return self.writer

    def plaintext(self, *, incomplete: bool = False) -> Path:
        """Decrypt into a temporary container file for ffprobe."""
        out = self.path.with_suffix(".mkv")
        with ChunkReader(self.path, recording_id=RECORDING_ID, data_key=self.data_key,
                         allow_incomplete=incomplete) as reader:
            out.write_bytes(b"".join(reader.iter_plaintext()))
        return out


class MemorySink:
    """A non-seekable in-memory sink, as the muxer sees ChunkWriter."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def save(self, path: Path) -> Path:
        path.write_bytes(b"".join(self.parts))
        return path


@dataclass
class Probed:
    codec: str
    frames: int  # nb_read_frames: decoded, not just declared
    last_pts: float
    width: int | None
    pts: list[float]


def probe(path: Path) -> dict[str, Probed]:
    """Streams by kind, with frames counted by decoding (ffprobe -count_frames)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_packets",
         "-show_entries", "stream=index,codec_type,codec_name,nb_read_frames,width:"
         "packet=stream_index,pts_time", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(out.stdout)
    result = {}
    for stream in data["streams"]:
        pts = [float(p["pts_time"]) for p in data.get("packets", [])
               if p["stream_index"] == stream["index"]]
        result[stream["codec_type"]] = Probed(stream["codec_name"],
                                              int(stream.get("nb_read_frames", 0)),
                                              max(pts, default=0.0), stream.get("width"), pts)
    return result


def media_seconds(result: PublicationResult) -> float:
    """Wall-clock time from the first media written to the stop."""
    assert result.first_media_at is not None
    return result.stopped_at - result.first_media_at


def engine_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ENGINE_THREADS]


@pytest.fixture
def engine() -> Iterator[RecordingEngine]:
    with RecordingEngine(allowed_networks=LOOPBACK) as running:
        yield running
    assert not running.running
    deadline = time.monotonic() + 5
    while engine_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine_threads() == []


# --- end to end -------------------------------------------------------------------------------


def test_the_patch_is_written_for_this_aiortc() -> None:
    assert aiortc.__version__ == "1.16.0"


def test_vp8_and_opus_are_stored_as_received(engine: RecordingEngine, tmp_path: Path) -> None:
    track = Track(tmp_path / "p1.track")

    async def run() -> tuple[Client, PublicationResult, Path, Sent]:
        client = await publish(engine, "rec-1/p1", track.open)
        await asyncio.sleep(3)
        # Crash safety: what is sealed on disk already holds all but the last second or two.
        assert track.writer is not None and not track.writer.closed
        early = probe(track.plaintext(incomplete=True))
        assert early["video"].frames >= FPS * 1
        await asyncio.sleep(1)
        before = client.sent()
        result = await stop(engine, "rec-1/p1")
        after = client.sent()
        await client.pc.close()
        return client, result, track.plaintext(), Sent(before, after)

    client, result, path, sent = asyncio.run(run())
    assert track.opened == 1 and track.writer is not None and track.writer.closed
    assert result.mode == "passthrough" and result.reason is None and result.error is None
    assert result.codecs == {"video": "vp8", "audio": "opus"}
    seconds = media_seconds(result)
    assert 3.5 < seconds < 6
    streams = probe(path)
    assert streams["video"].codec == "vp8" and streams["video"].width == 320
    assert streams["audio"].codec == "opus"
    sent.holds(streams, "video", "audio")
    assert streams["video"].frames == result.frames["video"]
    for stream in streams.values():
        assert close_to(stream.last_pts, seconds, 0.10)
        assert stream.pts == sorted(stream.pts)
    assert close_to(result.duration, seconds, 0.10)
    if any(ip.is_IPv4 and ip.ip != "127.0.0.1" for a in ifaddr.get_adapters() for ip in a.ips):
        assert "127.0.0.1" not in client.answer  # the loopback fallback stays out of the way


def close_to(value: float, expected: float, tolerance: float) -> bool:
    return abs(value - expected) <= tolerance * expected


def test_pause_drops_media_and_resume_waits_for_a_keyframe(
        engine: RecordingEngine, tmp_path: Path) -> None:
    track = Track(tmp_path / "p1.track")

    async def run() -> tuple[PublicationResult, float, list[dict[str, int]]]:
        client = await publish(engine, "rec-1/p1", track.open)
        await asyncio.sleep(2)
        counts = [client.sent()]
        await asyncio.wrap_future(engine.pause("rec-1/p1"))
        counts.append(client.sent())
        paused = time.monotonic()
        await asyncio.sleep(2)
        counts.append(client.sent())
        await asyncio.wrap_future(engine.resume("rec-1/p1"))
        counts.append(client.sent())
        paused = time.monotonic() - paused
        await asyncio.sleep(2)
        counts.append(client.sent())
        result = await stop(engine, "rec-1/p1")
        counts.append(client.sent())
        await client.pc.close()
        return result, paused, counts

    result, paused, counts = asyncio.run(run())
    # Frames sent: asked to pause, paused, asked to resume, resumed, asked to stop, stopped.
    pausing, paused_at, resuming, resumed, stopping, stopped = counts
    recorded = media_seconds(result) - paused
    streams = probe(track.plaintext())
    # Nothing from the 2 s pause: the frame counts match what was sent while recording, and
    # the paused time is cut out of the timeline rather than left as a hole.
    for kind in ("video", "audio"):
        most = paused_at[kind] + stopped[kind] - resuming[kind]
        least = STORED_SHARE * (pausing[kind] + stopping[kind] - resumed[kind])
        assert least <= streams[kind].frames <= most, (kind, streams[kind].frames, counts)
        assert result.dropped[kind] >= STORED_SHARE * (resuming[kind] - paused_at[kind])
    assert close_to(streams["video"].last_pts, recorded, 0.10)
    gaps = [b - a for a, b in zip(streams["video"].pts, streams["video"].pts[1:], strict=False)]
    assert max(gaps) < 0.5
    # The keyframe after the resume was asked for (PLI), not waited for.
    assert result.keyframe_requests >= 2


def test_a_codec_that_cannot_pass_through_is_transcoded(
        engine: RecordingEngine, tmp_path: Path) -> None:
    sink = MemorySink()

    async def run() -> tuple[PublicationResult, Sent]:
        client = await publish(engine, "rec-1/p1", lambda: sink, video=False,
                               audio_mime="audio/PCMU")
        await asyncio.sleep(2)
        before = client.sent()
        result = await stop(engine, "rec-1/p1")
        after = client.sent()
        await client.pc.close()
        return result, Sent(before, after)

    result, sent = asyncio.run(run())
    assert sink.closed
    assert result.mode == "transcode" and result.codecs == {"audio": "opus"}
    assert result.reason is not None and "pcmu" in result.reason
    streams = probe(sink.save(tmp_path / "out.webm"))
    assert list(streams) == ["audio"] and streams["audio"].codec == "opus"
    # Re-encoded, but 20 ms in, 20 ms out: one Opus frame for each PCMU frame sent.
    sent.holds(streams, "audio")


def test_h264_is_stored_as_received_in_matroska(engine: RecordingEngine, tmp_path: Path) -> None:
    sink = MemorySink()

    async def run() -> tuple[PublicationResult, Sent]:
        client = await publish(engine, "rec-1/p1", lambda: sink, audio=False,
                               video_mime="video/H264")
        await asyncio.sleep(2)
        before = client.sent()
        result = await stop(engine, "rec-1/p1")
        after = client.sent()
        await client.pc.close()
        return result, Sent(before, after)

    result, sent = asyncio.run(run())
    assert result.mode == "passthrough" and result.codecs == {"video": "h264"}
    streams = probe(sink.save(tmp_path / "out.mkv"))
    assert streams["video"].codec == "h264" and streams["video"].width == 320
    sent.holds(streams, "video")


def test_other_aiortc_peers_in_the_process_still_decode(engine: RecordingEngine) -> None:
    async def run() -> Any:
        sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tracks: asyncio.Queue[Any] = asyncio.Queue()
        receiver.on("track", tracks.put_nowait)
        sender.addTrack(ColourVideo())
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        track = await tracks.get()
        try:
            frame = await asyncio.wait_for(track.recv(), 10)
            assert_aiortc_on_loopback(sender, "sender")
            return frame
        finally:
            await sender.close()
            await receiver.close()

    assert isinstance(asyncio.run(run()), av.VideoFrame)


def test_a_recorded_receiver_hands_frames_on_without_a_decoder_thread(
        engine: RecordingEngine) -> None:
    # A frame's trip to a decoder thread and back cost a third of a worker's loop (receiving.py).
    sink = MemorySink()

    async def run() -> tuple[list[str], PublicationResult]:
        client = await publish(engine, "rec-1/p1", lambda: sink)
        await asyncio.sleep(1.5)
        decoders = [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return decoders, result

    decoders, result = asyncio.run(run())
    assert decoders == []
    assert result.frames["video"] > 0 and result.frames["audio"] > 0, result
    assert result.error is None and sink.closed


def test_stopping_an_unknown_publication_is_an_error(engine: RecordingEngine) -> None:
    with pytest.raises(UnknownPublicationError, match="nope"):
        engine.stop("nope").result(5)
    with pytest.raises(UnknownPublicationError):
        engine.pause("nope").result(5)


def test_a_bad_offer_fails_the_answer_and_creates_no_file(
        engine: RecordingEngine, tmp_path: Path) -> None:
    track = Track(tmp_path / "p1.track")
    with pytest.raises(NegotiationError):
        engine.publish("rec-1/p1", "this is not SDP", track.open).result(5)
    offer_without_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    with pytest.raises(NegotiationError, match="neither audio nor video"):
        engine.publish("rec-1/p1", offer_without_media, track.open).result(5)
    with pytest.raises(NegotiationError, match="OperationError"):  # no codec in common
        engine.publish("rec-1/p1", asyncio.run(vp9_offer()), track.open).result(5)
    assert engine.keys().result(5) == []
    assert track.opened == 0 and not track.path.exists()


async def vp9_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(ColourVideo(), direction="sendonly")
    prefer(transceiver, "video", "video/VP8")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return str(pc.localDescription.sdp).replace("VP8/90000", "VP9/90000")


def test_a_connection_that_goes_away_is_reported_and_keeps_its_recording(
        tmp_path: Path) -> None:
    failures: list[tuple[str, str, str]] = []
    seen = threading.Event()

    def on_failed(key: str, reason: str) -> None:
        failures.append((key, reason, threading.current_thread().name))
        seen.set()

    track = Track(tmp_path / "p1.track")

    async def run(engine: RecordingEngine) -> PublicationResult:
        client = await publish(engine, "rec-1/p1", track.open, video=False)
        await asyncio.sleep(1)
        await client.pc.close()  # the browser tab closes
        assert await asyncio.to_thread(seen.wait, 10)
        return await stop(engine, "rec-1/p1")

    with RecordingEngine(on_failed=on_failed, allowed_networks=LOOPBACK) as engine:
        result = asyncio.run(run(engine))
    assert failures == [("rec-1/p1", "closed", "recording-engine")]
    assert result.error == "closed" and result.frames["audio"] > 0
    assert probe(track.plaintext())["audio"].frames == result.frames["audio"]


def test_a_sink_that_cannot_be_opened_fails_the_publication() -> None:
    failures: list[tuple[str, str]] = []
    seen = threading.Event()

    def on_failed(key: str, reason: str) -> None:
        failures.append((key, reason))
        seen.set()

    def open_sink() -> Any:
        raise OSError(28, "No space left on device")

    async def run(engine: RecordingEngine) -> tuple[PublicationResult, bool]:
        client = await publish(engine, "rec-1/p1", open_sink, video=False)
        assert await asyncio.to_thread(seen.wait, 10)
        for _ in range(50):  # the engine hangs up rather than take media it must drop
            if client.pc.connectionState == "closed":
                break
            await asyncio.sleep(0.1)
        hung_up = client.pc.connectionState == "closed"
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return result, hung_up

    with RecordingEngine(on_failed=on_failed, allowed_networks=LOOPBACK) as engine:
        result, hung_up = asyncio.run(run(engine))
    assert failures == [("rec-1/p1", "sink_failed")]
    assert result.error == "sink_failed" and result.frames == {}
    assert hung_up


def test_shutdown_closes_every_connection_and_sink(tmp_path: Path) -> None:
    tracks = [Track(tmp_path / f"p{i}.track") for i in (1, 2)]
    engine = RecordingEngine(allowed_networks=LOOPBACK)
    engine.start()

    async def run() -> tuple[list[PublicationResult], list[Client]]:
        clients = [await publish(engine, f"rec-1/p{i}", t.open, video=i == 1)
                   for i, t in enumerate(tracks, 1)]
        await asyncio.sleep(1.5)
        results = await asyncio.to_thread(engine.shutdown, 10)
        for _ in range(100):  # the clients see the DTLS close
            if all(c.pc.connectionState == "closed" for c in clients):
                break
            await asyncio.sleep(0.1)
        for client in clients:
            await client.pc.close()
        return results, clients

    results, clients = asyncio.run(run())
    assert sorted(r.key for r in results) == ["rec-1/p1", "rec-1/p2"]
    assert all(r.frames["audio"] > 0 for r in results)
    assert all(c.states[-1] == "closed" for c in clients)
    assert all(t.writer is not None and t.writer.closed for t in tracks)
    assert probe(tracks[0].plaintext())["video"].frames == results[0].frames["video"]
    assert engine_threads() == [] and not engine.running
    with pytest.raises(EngineStoppedError):
        engine.publish("rec-1/p3", "v=0", tracks[0].open).result(1)
    assert engine.shutdown() == []


def test_a_host_with_only_loopback_offers_127_0_0_1(
        engine: RecordingEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    loopback = [a for a in ifaddr.get_adapters()
                if any(ip.ip in ("127.0.0.1", ("::1", 0, 0)) for ip in a.ips)]
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: loopback)
    sink = MemorySink()

    async def run() -> tuple[str, PublicationResult]:
        client = await publish(engine, "rec-1/p1", lambda: sink, video=False)
        await asyncio.sleep(1)
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return client.answer, result

    answer, result = asyncio.run(run())
    assert "127.0.0.1" in answer
    assert result.frames["audio"] > 0


# --- loss: what the recording did not get ----------------------------------------------------


class Lossy:
    """Between the sender's RTP and its encryption: drops or delays chosen video packets,
    retransmissions of them included (aiortc answers NACKs with RTX), so the loss is real."""

    def __init__(self, client: Client, *, drop_from: int = 0, drop: int = 0,
                 swap_at: int = 0) -> None:
        sender = next(s for s in client.pc.getSenders() if s.kind == "video")
        self.ssrc, self.rtx = sender._ssrc, sender._rtx_ssrc
        self.transport = sender.transport
        self.send = self.transport._send_rtp
        self.drop_from, self.drop, self.swap_at = drop_from, drop, swap_at
        self.seen = 0
        self.dropped: set[int] = set()
        self.held: bytes | None = None
        self.transport._send_rtp = self._send_rtp

    async def _send_rtp(self, data: bytes) -> None:
        if is_rtcp(data):
            await self.send(data)
            return
        packet = RtpPacket.parse(data)
        if packet.ssrc == self.rtx and int.from_bytes(packet.payload[:2], "big") in self.dropped:
            return  # its retransmission is lost too
        if packet.ssrc == self.ssrc:
            self.seen += 1
            if self.drop_from <= self.seen < self.drop_from + self.drop:
                self.dropped.add(packet.sequence_number)
                return
            if self.seen == self.swap_at:
                self.held = data  # sent after the next one: late, not lost
                return
        await self.send(data)
        if self.held is not None and packet.ssrc == self.ssrc:
            held, self.held = self.held, None
            await self.send(held)


def test_rtp_lost_between_sender_and_recorder_is_counted(tmp_path: Path) -> None:
    sink = MemorySink()
    told: list[tuple[str, dict[str, dict[str, int]]]] = []

    async def run(engine: RecordingEngine) -> tuple[Lossy, PublicationResult]:
        client = await publish(engine, "rec-1/p1", lambda: sink)
        lossy = Lossy(client, drop_from=40, drop=6, swap_at=90)
        await asyncio.sleep(4)
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return lossy, result

    with RecordingEngine(allowed_networks=LOOPBACK,
                         on_loss=lambda key, total: told.append((key, total))) as engine:
        lossy, result = asyncio.run(run(engine))
    assert len(lossy.dropped) == 6 and lossy.seen > 90
    assert result.loss is not None and result.loss["complete"] is False
    video = result.loss["total"]["video"]
    assert video["lost"] == 6  # exactly what never arrived; the swapped pair is only late
    assert video.get("late", 0) >= 1
    assert "lost" not in result.loss["total"].get("audio", {})
    [window] = [w for w in result.loss["windows"] if w.get("video", {}).get("lost")]
    assert window["video"]["lost"] == 6
    assert told and told[0][0] == "rec-1/p1" and told[0][1]["video"]["lost"] == 6


def test_a_recording_that_gets_everything_is_complete(tmp_path: Path) -> None:
    sink = MemorySink()

    async def run(engine: RecordingEngine) -> PublicationResult:
        client = await publish(engine, "rec-1/p1", lambda: sink)
        await asyncio.sleep(2)
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return result

    with RecordingEngine(allowed_networks=LOOPBACK) as engine:
        result = asyncio.run(run(engine))
    assert result.loss is not None
    assert result.loss["complete"] is True, result.loss
    assert result.loss["windows"] == [] or all(
        set(w) - {"from", "to"} <= {"audio", "video"} for w in result.loss["windows"])


def test_a_full_receive_buffer_is_counted_as_socket_drops(tmp_path: Path) -> None:
    """A recorder that falls behind: its loop stalls while the kernel's buffer is small."""
    sink = MemorySink()
    told = threading.Event()

    async def run(engine: RecordingEngine) -> PublicationResult:
        client = await publish(engine, "rec-1/p1", lambda: sink)
        await asyncio.sleep(1)
        loop = engine._loop
        assert loop is not None
        loop.call_soon_threadsafe(time.sleep, 1.5)  # what a busy loop does to its sockets
        await asyncio.sleep(4)
        result = await stop(engine, "rec-1/p1")
        await client.pc.close()
        return result

    with RecordingEngine(allowed_networks=LOOPBACK, receive_buffer=1024,
                         on_loss=lambda key, total: told.set()) as engine:
        result = asyncio.run(run(engine))
    assert result.loss is not None and result.loss["complete"] is False
    assert result.loss["total"]["socket"]["socket_drops"] > 0, result.loss
    assert told.is_set()


def test_a_stop_first_reads_what_was_sent_before_it(tmp_path: Path) -> None:
    """A recorder running behind: media waits in its socket when the stop comes. The stop
    reads it first (what was sent before the stop belongs to the recording)."""
    sink = MemorySink()

    async def run(engine: RecordingEngine) -> tuple[dict[str, int], PublicationResult]:
        client = await publish(engine, "rec-1/p1", lambda: sink)
        await asyncio.sleep(2)
        loop = engine._loop
        assert loop is not None
        loop.call_soon_threadsafe(time.sleep, 1.5)  # 45 pictures pile up in the socket
        await asyncio.sleep(1.4)
        sent = client.sent()
        stopping = engine.stop("rec-1/p1")
        result = await asyncio.wrap_future(stopping)
        await client.pc.close()
        return sent, result

    with RecordingEngine(allowed_networks=LOOPBACK) as engine:
        sent, result = asyncio.run(run(engine))
    assert result.frames["video"] >= sent["video"] - 5, (result.frames, sent)
    assert result.loss is not None
    assert "unread_at_stop" not in result.loss["total"].get("socket", {})


# --- the muxer on its own ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def vp8_stream(count: int) -> list[Received]:
    """VP8 packets as the pass-through decoder gives them: 90 kHz pts, keyframe first."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base = Fraction(1, FPS)
    packets = []
    for n in range(count):
        frame = av.VideoFrame(160, 120, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([n * 7 % 256]) * plane.buffer_size)
        frame.pts = n
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    out = []
    for n, packet in enumerate(packets):
        p = av.Packet(bytes(packet))
        p.pts, p.time_base = n * 3000, Fraction(1, 90000)
        out.append(Received("vp8", p, packet.is_keyframe))
    return out


def opus_packet(pts: int) -> Received:
    packet = av.Packet(b"\xf8\xff\xfe")  # a valid 20 ms Opus packet (silence)
    packet.pts, packet.time_base = pts, Fraction(1, 48000)
    return Received("opus", packet)


def test_muxer_repairs_timestamps_that_do_not_increase(tmp_path: Path) -> None:
    clock, sink = Clock(), MemorySink()
    muxer = TrackMuxer(sink, expected={"video"}, clock=clock)
    frames = vp8_stream(30)
    for n, received in enumerate(frames):
        if n in (10, 11):
            received.item.pts = frames[9].item.pts  # repeated
        if n == 20:
            received.item.pts = frames[15].item.pts  # backwards
        muxer.push("video", received)
        clock.now += 1 / FPS
    stats = muxer.close()
    assert sink.closed and stats.frames == {"video": 30} and stats.dropped == {"video": 0}
    assert stats.repaired == {"video": 3}
    video = probe(sink.save(tmp_path / "out.webm"))["video"]
    assert video.frames == 30
    assert all(b > a for a, b in zip(video.pts, video.pts[1:], strict=False))


def test_muxer_drops_video_until_a_keyframe_and_starts_without_a_late_kind(
        tmp_path: Path) -> None:
    clock, sink = Clock(), MemorySink()
    muxer = TrackMuxer(sink, expected={"audio", "video"}, clock=clock)
    frames = vp8_stream(10)
    for received in frames[1:4]:  # no keyframe yet: nothing to start a picture from
        muxer.push("video", received)
    assert muxer.wants_keyframe and not muxer.started
    for n in range(150):  # 3 s of audio: the muxer stops waiting for video after 2 s
        muxer.push("audio", opus_packet(n * 960))
        clock.now += 0.020
    assert muxer.started and not muxer.wants_keyframe
    muxer.push("video", frames[0])  # too late: the container has no video stream
    stats = muxer.close()
    assert stats.frames == {"video": 0, "audio": 150} and stats.dropped["video"] == 4
    streams = probe(sink.save(tmp_path / "out.webm"))
    assert list(streams) == ["audio"] and streams["audio"].frames == 150


def test_muxer_reanchors_a_track_whose_rtp_clock_jumps(tmp_path: Path) -> None:
    clock, sink = Clock(), MemorySink()
    muxer = TrackMuxer(sink, expected={"audio"}, clock=clock)
    for n in range(100):
        pts = n * 960 + (2**31 if n >= 50 else 0)  # a sender restart halfway through
        muxer.push("audio", opus_packet(pts))
        clock.now += 0.020
    stats = muxer.close()
    assert stats.frames == {"audio": 100}
    assert stats.last_ms["audio"] == pytest.approx(99 * 20, abs=5)
    audio = probe(sink.save(tmp_path / "out.webm"))["audio"]
    assert audio.frames == 100 and audio.last_pts == pytest.approx(1.98, abs=0.005)


def test_muxer_reencodes_decoded_video_to_vp8(tmp_path: Path) -> None:
    clock, sink = Clock(), MemorySink()
    muxer = TrackMuxer(sink, expected={"video"}, clock=clock)
    for n in range(30):
        frame = av.VideoFrame(160, 120, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([n * 5 % 256]) * plane.buffer_size)
        frame.pts, frame.time_base = n * 3000, Fraction(1, 90000)
        muxer.push("video", Received("vp9", frame))  # a codec pass-through does not take
        clock.now += 1 / FPS
    stats = muxer.close()
    assert stats.mode == "transcode" and stats.codecs == {"video": "vp8"}
    assert stats.reason is not None and "vp9" in stats.reason
    video = probe(sink.save(tmp_path / "out.webm"))["video"]
    assert video.codec == "vp8" and video.width == 160 and video.frames == 30


# --- the recorder cannot be aimed inward (portal/recording/addresses.py) -------------------------


async def aimed_offer(port: int) -> str:
    """A well-formed offer whose only candidate is the server's own 127.0.0.1:port."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver(SineAudio(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    lines = [line for line in pc.localDescription.sdp.splitlines()
             if not line.startswith("a=candidate:")]
    await pc.close()
    at = lines.index(next(line for line in lines if line.startswith("a=ice-ufrag:")))
    lines.insert(at, f"a=candidate:1 1 udp 2130706431 127.0.0.1 {port} typ host")
    return "\r\n".join(lines) + "\r\n"


def checks_received(engine: RecordingEngine, tmp_path: Path, seconds: float = 2.0) -> int:
    """Offer the engine a candidate at a UDP port this test listens on; what arrives within
    `seconds` (stops at the first packet)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(0.2)
        offer = asyncio.run(aimed_offer(listener.getsockname()[1]))
        engine.publish("rec-1/p1", offer, Track(tmp_path / "p1.track").open).result(5)
        received, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline and not received:
            try:
                listener.recvfrom(2048)
                received += 1
            except TimeoutError:
                pass
    engine.stop("rec-1/p1").result(5)
    return received


def test_an_offer_cannot_aim_the_recorder_at_loopback(tmp_path: Path) -> None:
    """The attack: a candidate at 127.0.0.1:<port> made the server send checks there."""
    with RecordingEngine() as strict:
        assert checks_received(strict, tmp_path) == 0


def test_allowed_networks_are_contacted(tmp_path: Path) -> None:
    """The control: with loopback allowed (as in the tests) the same offer is checked, so the
    test above would see checks if any were sent."""
    with RecordingEngine(allowed_networks=LOOPBACK) as lenient:
        assert checks_received(lenient, tmp_path, seconds=5.0) > 0
