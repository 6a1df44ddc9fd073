"""A recorded track's frames go from aiortc's jitter buffer to the muxer on the loop, directly.

aiortc 1.16.0 gives each receiver a decoder thread (rtcrtpreceiver.decoder_worker): the loop
puts every complete encoded frame on a `queue.Queue`, the thread decodes it and sends the result
back to the track's asyncio queue with `run_coroutine_threadsafe`, where the endpoint's pump
awaits it. For a pass-through track "decoding" is a copy, yet these hand-offs were the largest
cost of a recorder worker: profiled with py-spy (--gil) on one worker recording 20 publications,
Queue.put's notify (waking one of ~40 decoder threads, the GIL changing hands) was 31 % of the
loop's time, and the way back (a Task, a concurrent Future, a self-pipe write per frame, the
pump) about 10 % more.

`attach(receiver, deliver)`, called in the peer connection's "track" handler (aiortc emits it
before it starts the receiver), puts an `InlineDecoder` in place of the receiver's decoder queue:
aiortc's `_handle_rtp_packet` puts each complete frame on it, on the loop, and it decodes the
frame at once (passthrough.decoder_for) and hands each item to `deliver`. The decoder thread
aiortc still starts sees the InlineDecoder and returns at once (install() patches
decoder_worker). The track's end (aiortc puts None when the receiver stops) still goes to the
track's queue, so its recv() raises MediaStreamError as before.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import aiortc
import aiortc.rtcrtpreceiver as rtcrtpreceiver
import av
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from portal.recording.passthrough import decoder_for

log = logging.getLogger(__name__)

AIORTC_VERSION = "1.16.0"  # the version whose receiver internals this module relies on
#: What RTCRtpReceiver.receive() hands its decoder thread, as seen on the instance.
_QUEUE = "_RTCRtpReceiver__decoder_queue"
_ERROR = "_RTCRtpReceiver__decoder_error"
Deliver = Callable[[Any], None]  # one item: passthrough.Received (or a frame, unmarked codecs)


class InlineDecoder:
    """Stands in for a receiver's decoder queue: decodes each frame as aiortc puts it.

    `put` runs on the loop, inside aiortc's packet handler; `deliver` must not block, and what
    it raises is logged, not passed to aiortc (whose transport would drop the connection).
    """

    def __init__(self, deliver: Deliver, track_queue: asyncio.Queue[Any],
                 decode_error: threading.Event) -> None:
        self._deliver = deliver
        self._track_queue = track_queue
        self._decode_error = decode_error
        self._codec_name: str | None = None
        self._decoder: Decoder | None = None

    def put(self, task: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        """aiortc's queue.Queue.put: (codec, encoded frame), or None when the receiver stops."""
        if task is None:
            self._track_queue.put_nowait(None)  # the track's recv() ends
            return
        codec, encoded_frame = task
        if self._decoder is None or codec.name != self._codec_name:
            self._decoder, self._codec_name = decoder_for(codec), codec.name
        try:
            items = self._decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            # As aiortc's worker does: keep the decoder, and have the receiver send a PLI.
            log.warning("cannot decode %s frame: %s", codec.name, exc)
            self._decode_error.set()
            return
        for item in items:
            try:
                self._deliver(item)
            except Exception:
                log.exception("delivering a received %s frame failed", codec.name)


def attach(receiver: rtcrtpreceiver.RTCRtpReceiver, deliver: Deliver) -> None:
    """Have this (not yet started) receiver hand its track's frames to `deliver` on the loop,
    with no decoder thread. Requires install()."""
    if not installed():
        raise RuntimeError("receiving.install() was not called")
    track_queue = getattr(receiver.track, "_queue", None)  # RemoteStreamTrack's
    if (not isinstance(track_queue, asyncio.Queue) or not hasattr(receiver, _QUEUE)
            or not hasattr(receiver, _ERROR)):
        raise RuntimeError(f"aiortc {aiortc.__version__}: unsupported receiver internals")
    setattr(receiver, _QUEUE, InlineDecoder(deliver, track_queue, getattr(receiver, _ERROR)))


_original_decoder_worker = rtcrtpreceiver.decoder_worker


def _decoder_worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
    if isinstance(input_q, InlineDecoder):
        return  # an attached receiver decodes on the loop: this thread has nothing to do
    _original_decoder_worker(loop, input_q, output_q, decode_error)


def install() -> None:
    """Patch aiortc's receiver so that attached receivers need no decoder thread. Idempotent.

    Raises RuntimeError if aiortc's receiver no longer has the internals this relies on.
    """
    if installed():
        return
    if aiortc.__version__ != AIORTC_VERSION:
        log.warning("aiortc %s, the recorder's receive path was written for %s",
                    aiortc.__version__, AIORTC_VERSION)
    receiver = rtcrtpreceiver.RTCRtpReceiver
    receive_names = receiver.receive.__code__.co_names
    handle_names = receiver._handle_rtp_packet.__code__.co_names
    if not (hasattr(receiver, "_send_rtcp_pli") and "decoder_worker" in receive_names
            and _QUEUE in receive_names and _QUEUE in handle_names
            and _ERROR in handle_names):
        raise RuntimeError(f"aiortc {aiortc.__version__}: unsupported receiver internals")
    rtcrtpreceiver.decoder_worker = _decoder_worker


def installed() -> bool:
    """True once install() patched aiortc."""
    return rtcrtpreceiver.decoder_worker is _decoder_worker
