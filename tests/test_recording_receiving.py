"""receiving.py on its own: what the InlineDecoder does with what aiortc's receiver puts on it
(a frame, a frame that does not decode, the end), without a network."""

from __future__ import annotations

import asyncio
import logging
import threading
from fractions import Fraction
from typing import Any

import av
import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from portal.recording import receiving
from portal.recording.passthrough import Received

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, payloadType=0)
VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a\x40\x01\xf0\x00" + bytes(20)  # 320x240 keyframe header


def inline(deliver: Any) -> tuple[receiving.InlineDecoder, asyncio.Queue[Any], threading.Event]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    error = threading.Event()
    return receiving.InlineDecoder(deliver, queue, error), queue, error


def test_a_frame_is_handed_on_at_once_as_an_encoded_packet() -> None:
    got: list[Received] = []
    decoder, queue, error = inline(got.append)
    decoder.put((VP8, JitterFrame(data=VP8_KEY, timestamp=3000)))
    assert len(got) == 1 and queue.empty() and not error.is_set()
    received = got[0]
    assert received.codec == "vp8" and received.keyframe
    assert isinstance(received.item, av.Packet) and bytes(received.item) == VP8_KEY
    assert received.item.pts == 3000 and received.item.time_base == Fraction(1, 90000)


def test_the_end_of_the_receiver_ends_the_track() -> None:
    decoder, queue, _ = inline(lambda item: None)
    decoder.put(None)
    assert queue.get_nowait() is None  # RemoteStreamTrack.recv() raises MediaStreamError on it


def test_a_frame_that_does_not_decode_asks_for_a_keyframe(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def decode(self, frame: JitterFrame) -> list[Any]:
            raise av.InvalidDataError(0, "broken")

    monkeypatch.setattr(receiving, "decoder_for", lambda codec: Broken())
    got: list[Any] = []
    decoder, _, error = inline(got.append)
    decoder.put((VP8, JitterFrame(data=b"\x00", timestamp=0)))
    assert got == [] and error.is_set()  # aiortc's receiver sends a PLI on its next packet


def test_a_codec_that_cannot_pass_through_is_decoded_and_labelled() -> None:
    got: list[Received] = []
    decoder, _, _ = inline(got.append)
    decoder.put((PCMU, JitterFrame(data=b"\xff" * 160, timestamp=0)))
    assert [r.codec for r in got] == ["pcmu"] and isinstance(got[0].item, av.AudioFrame)


def test_a_failing_delivery_is_logged_not_raised_into_aiortc(
        caplog: pytest.LogCaptureFixture) -> None:
    def deliver(item: Any) -> None:
        raise RuntimeError("the muxer broke")

    decoder, _, _ = inline(deliver)
    with caplog.at_level(logging.ERROR, logger=receiving.__name__):
        decoder.put((VP8, JitterFrame(data=VP8_KEY, timestamp=0)))
    assert "delivering a received VP8 frame failed" in caplog.text
