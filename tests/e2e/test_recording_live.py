"""Recording through the whole portal, without a browser: two aiortc peers (host and guest)
consent over Socket.IO, publish to the server's endpoint, and the operator exports the result.
And a crash: the server killed with SIGKILL mid-recording, then started again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from live import LivePortal
from recording_peers import STORED_SHARE, export, frames, start_recording, wait_status

from portal.extensions import db
from portal.models import Recording, RecordingStatus

pytestmark = [pytest.mark.live, pytest.mark.webrtc]

def test_two_peers_recorded_and_exported(live_portal_module: LivePortal, peers: Any,
                                         tmp_path: Path) -> None:
    live = live_portal_module
    recording_id, (host, guest), publishers = start_recording(live, peers)
    time.sleep(5)
    before = [p.sent() for p in publishers]
    host.emit("record:stop", {"id": recording_id})
    # From the first connection to the recorder until Stop: the recording's own length.
    recorded = time.monotonic() - min(p.connected_at for p in publishers)
    row = wait_status(live, recording_id, RecordingStatus.COMPLETE)
    after = [p.sent() for p in publishers]
    assert row.stop_reason == "stopped_by_host"
    guest.wait_for("record:state", lambda s: s.get("status") == "complete")

    duration, streams = export(live, recording_id, tmp_path / "consult.mkv")
    assert sorted(s["codec_name"] for s in streams) == ["opus", "opus", "vp8", "vp8"]
    # Both participants' pictures and sound, against what their senders made: no more than
    # was sent until the recording was complete, and most of what was sent before Stop (the
    # export does not say whose stream is whose: the bounds hold for either). Lost: frames
    # on their way at Stop, and on a busy machine a picture lost until the keyframe its
    # PLI asks for.
    for kind in ("video", "audio"):
        least = STORED_SHARE * min(sent[kind] for sent in before)
        most = max(sent[kind] for sent in after)
        for count in frames(streams, kind):
            assert least <= count <= most, (kind, count, before, after)
    # The export's timeline starts when the recording started; the first media came a little
    # later (the offers to the recorder, in a worker process: 0.3-0.7 s here), as the
    # manifest's offset of the first track says.
    signed = json.loads((live.recordings_dir / recording_id / "manifest.json").read_text())
    first = min(t["offset_ms"] for t in signed["manifest"]["tracks"]) / 1000
    assert abs(duration - first - recorded) <= 0.1 * recorded, (duration, first, recorded)
    files = sorted(p.name for p in (live.recordings_dir / recording_id).iterdir())
    assert "manifest.json" in files and len([f for f in files if f.endswith(".smr")]) == 2
    # Each track says what it did not get (a busy machine may lose some: not asserted here).
    assert signed["manifest"]["loss"]["accounted"] is True
    assert all("window_seconds" in t["loss"] for t in signed["manifest"]["tracks"])
    # Nothing of the media is stored in the clear.
    webm_magic = bytes.fromhex("1a45dfa3")
    for f in (live.recordings_dir / recording_id).glob("*.smr"):
        assert webm_magic not in f.read_bytes()


def test_a_crash_leaves_an_incomplete_but_playable_recording(
        live_portal_factory: Any, peers: Any, tmp_path: Path) -> None:
    live: LivePortal = live_portal_factory()
    recording_id, clients, _publishers = start_recording(live, peers)
    time.sleep(3)
    live.kill()  # SIGKILL to master and worker: no finalising, no manifest
    live.process.wait(10)
    for client in clients:
        client.close()
    live.restart()
    row = wait_status(live, recording_id, RecordingStatus.INCOMPLETE)
    assert row.stop_reason == "recorder_stopped"
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "incomplete" in verified.stdout
    # The loss counts died with the process: the manifest says they are missing.
    assert "the recorder stopped before it could report" in verified.stdout
    _duration, streams = export(live, recording_id, tmp_path / "crashed.mkv")
    assert len(frames(streams, "video")) == 2 and len(frames(streams, "audio")) == 2
    for count in frames(streams, "video") + frames(streams, "audio"):
        assert count > 0, streams  # everything up to the last sealed chunk plays


def test_a_second_offer_replaces_the_first_and_both_are_kept(
        live_portal_module: LivePortal, peers: Any, tmp_path: Path) -> None:
    """A browser that publishes again (say after its connection to the recorder broke): the
    old connection is stopped without holding up the handler, and both parts are sealed."""
    live = live_portal_module
    recording_id, (host, guest), publishers = start_recording(live, peers)
    time.sleep(2)
    again = peers()
    guest.emit("record:offer", {"id": recording_id, "sdp": again.offer()})
    again.answer(guest.wait_for("record:answer", timeout=20)["sdp"])
    assert again.connected.wait(15), "the second connection did not come up"
    time.sleep(2)
    host.emit("record:stop", {"id": recording_id})
    wait_status(live, recording_id, RecordingStatus.COMPLETE)

    _duration, streams = export(live, recording_id, tmp_path / "twice.mkv")
    video = frames(streams, "video")
    assert len(video) == 3 and len(frames(streams, "audio")) == 3, streams
    assert all(count > 0 for count in video), video
    with live.app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        assert sorted(t.name for t in row.tracks)[-1].endswith("-2")
        for track in row.tracks:
            assert track.video_frames > 0 and json.loads(track.details)["file"], track.name
