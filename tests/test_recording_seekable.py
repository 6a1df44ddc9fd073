"""The remux that makes a finished track seekable, and its encrypted scratch file."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.recording.seekable import BLOCK, EncryptedScratch, make_seekable
from portal.recording.store import ChunkReader, ChunkWriter

CUES_ID = bytes.fromhex("1c53bb6b")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * BLOCK), st.binary(min_size=1, max_size=5000)),
                min_size=1, max_size=12))
def test_scratch_reads_back_what_was_written_anywhere(writes: list[tuple[int, bytes]]) -> None:
    path = Path(tempfile.gettempdir()) / f"scratch-{os.urandom(6).hex()}"
    model = bytearray()
    with EncryptedScratch(path) as scratch:
        for offset, data in writes:
            scratch.seek(offset)
            scratch.write(data)
            if len(model) < offset:
                model.extend(bytes(offset - len(model)))
            model[offset:offset + len(data)] = data
        scratch.seek(0)
        assert scratch.read() == bytes(model)
        if len(writes[0][1]) >= 16:
            assert writes[0][1] not in path.read_bytes()  # sealed on disk
    assert not path.exists()  # scratch is removed on close


def _recorded_style_webm(path: Path) -> bytes:
    """A WebM written to a pipe, as the recorder writes it: no duration, no index."""
    result = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
         "-c:v", "libvpx", "-b:v", "200k", "-c:a", "libopus", "-f", "webm", "pipe:1"],
        capture_output=True, check=True)
    path.write_bytes(result.stdout)
    return result.stdout


def _probe(path: Path) -> dict[str, object]:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_format",
                          "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True)
    loaded: dict[str, object] = json.loads(out.stdout)
    return loaded


def test_a_finished_track_becomes_seekable_without_losing_a_frame(tmp_path: Path) -> None:
    media = _recorded_style_webm(tmp_path / "piped.webm")
    before = _probe(tmp_path / "piped.webm")
    assert before["format"]["duration"] == "N/A" or CUES_ID not in media  # type: ignore[index]
    key = os.urandom(32)
    track = tmp_path / "p1-1.smr"
    writer = ChunkWriter(track, recording_id="rec", track="p1-1", data_key=key)
    writer.write(media)
    writer.close()

    summary = make_seekable(track, recording_id="rec", track="p1-1", data_key=key)

    with ChunkReader(track, recording_id="rec", data_key=key) as reader:
        assert reader.verify() == summary and summary.complete
        remuxed = b"".join(reader.iter_plaintext())
    (tmp_path / "out.webm").write_bytes(remuxed)
    after = _probe(tmp_path / "out.webm")
    assert abs(float(after["format"]["duration"]) - 3.0) < 0.2  # type: ignore[index]
    frames = {s["codec_name"]: s["nb_read_frames"] for s in before["streams"]}  # type: ignore[attr-defined]
    assert {s["codec_name"]: s["nb_read_frames"] for s in after["streams"]} == frames  # type: ignore[attr-defined]
    assert CUES_ID in remuxed  # an index: players can seek
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.webm", "p1-1.smr", "piped.webm"]
