"""The encrypted recording format, the keyring and signed manifests (no Flask app needed).

A recording file must give back exactly what was written, reveal nothing without its key, and
refuse to be read as genuine after any change: flipped bytes, reordered, dropped or duplicated
chunks, truncation. A crashed writer must leave everything it sealed readable.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portal.recording import manifest
from portal.recording.keys import (
    Keyring,
    KeyringError,
    load_signing_key,
    new_data_key,
    public_key_id,
)
from portal.recording.store import (
    CHUNK_SIZE,
    ChunkReader,
    ChunkWriter,
    FileSummary,
    StoreError,
    TamperedError,
    TruncatedError,
    WrongKeyError,
    recover,
)

RID = "rec-1"
TRACK = "alice"
KEY = bytes(range(32))
SMALL = 16  # chunk size for exhaustive tests: a few chunks in a couple of hundred bytes
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


class Clock:
    """A hand-driven monotonic clock for tick()."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, data: bytes, *, chunk_size: int = CHUNK_SIZE, piece: int = 7001,
          key: bytes = KEY) -> FileSummary:
    writer = ChunkWriter(path, recording_id=RID, track=TRACK, data_key=key, chunk_size=chunk_size)
    for start in range(0, len(data), piece):
        assert writer.write(data[start:start + piece]) == len(data[start:start + piece])
    return writer.close()


def read_all(path: Path, *, key: bytes = KEY, allow_incomplete: bool = False) -> bytes:
    with ChunkReader(path, recording_id=RID, data_key=key,
                     allow_incomplete=allow_incomplete) as reader:
        return b"".join(reader.iter_plaintext())


def verify(path: Path, *, allow_incomplete: bool = False,
           expected: FileSummary | None = None) -> FileSummary:
    with ChunkReader(path, recording_id=RID, data_key=KEY,
                     allow_incomplete=allow_incomplete) as reader:
        return reader.verify(expected)


def split(raw: bytes) -> tuple[bytes, list[bytes]]:
    """Header and framed chunks of a file, parsed independently of the code under test."""
    pos = 10
    for _ in range(2):
        pos += 2 + int.from_bytes(raw[pos:pos + 2], "big")
    pos += 8
    header, frames = raw[:pos], []
    while pos < len(raw):
        end = pos + 4 + int.from_bytes(raw[pos:pos + 4], "big")
        frames.append(raw[pos:end])
        pos = end
    assert pos == len(raw)
    return header, frames


def assert_rejected(path: Path, original: FileSummary) -> None:
    """Neither a strict reader nor a lenient one checked against the manifest accepts it."""
    with pytest.raises(StoreError):
        verify(path)
    with pytest.raises(StoreError):
        read_all(path)
    with pytest.raises(StoreError):
        verify(path, allow_incomplete=True, expected=original)


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1,
                                  3 * CHUNK_SIZE + 5])
def test_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "t.smr"
    summary = write(path, data)
    assert summary.complete and summary.plaintext_bytes == size
    assert summary.chunks == size // CHUNK_SIZE + 1  # the final chunk holds the rest, maybe empty
    assert read_all(path) == data
    assert verify(path) == summary
    with ChunkReader(path, recording_id=RID, data_key=KEY) as reader:
        assert reader.size == size


def test_ticks_seal_short_chunks_that_are_on_disk_at_once(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "t.smr"
    writer = ChunkWriter(path, recording_id=RID, track=TRACK, data_key=KEY,
                         flush_interval=1.0, clock=clock)
    header_only = path.stat().st_size
    writer.write(b"a" * 100)
    clock.now = 0.6
    writer.tick()
    assert path.stat().st_size == header_only  # younger than flush_interval: still in memory
    writer.write(b"b" * 50)
    clock.now = 1.0
    writer.tick()
    assert path.stat().st_size == header_only + 4 + 150 + 16
    assert read_all(path, allow_incomplete=True) == b"a" * 100 + b"b" * 50
    writer.tick()  # nothing buffered: no empty chunk
    writer.write(b"c" * 10)
    clock.now = 2.5
    writer.tick()
    writer.write(b"d" * 5)
    summary = writer.close()
    assert summary.chunks == 3 and summary.complete
    assert read_all(path) == b"a" * 100 + b"b" * 50 + b"c" * 10 + b"d" * 5
    assert verify(path) == summary


def test_writer_is_a_sequential_write_only_file(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    writer = ChunkWriter(path, recording_id=RID, track=TRACK, data_key=KEY)
    assert (writer.seekable(), writer.writable(), writer.readable()) == (False, True, False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    writer.write(b"x")
    writer.flush()
    first = writer.close()
    assert writer.closed and writer.close() is first
    with pytest.raises(ValueError):
        writer.write(b"y")
    with pytest.raises(FileExistsError):  # never overwrites a recording
        ChunkWriter(path, recording_id=RID, track=TRACK, data_key=KEY)


def test_neither_plaintext_nor_key_reaches_the_disk(tmp_path: Path) -> None:
    data = b"CONFIDENTIAL-CONSULTATION-" * 5000
    path = tmp_path / "t.smr"
    writer = ChunkWriter(path, recording_id=RID, track=TRACK, data_key=KEY)
    writer.write(data[:1000])
    raw_buffered = path.read_bytes()
    writer.write(data[1000:])
    writer.close()
    raw = path.read_bytes()
    for blob in (raw_buffered, raw):
        assert b"CONFIDENTIAL" not in blob and KEY not in blob
    assert read_all(path) == data


@FAST
@given(data=st.binary(max_size=3000), chunk_size=st.integers(1, 600), piece=st.integers(1, 900),
       bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_read_range_is_the_slice(data: bytes, chunk_size: int, piece: int,
                                 bounds: tuple[float, float]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.smr"
        write(path, data, chunk_size=chunk_size, piece=piece)
        start, end = sorted(int(b * len(data)) for b in bounds)
        with ChunkReader(path, recording_id=RID, data_key=KEY) as reader:
            assert reader.size == len(data)
            assert b"".join(reader.read_range(start, end)) == data[start:end]
            assert b"".join(reader.read_range(0, len(data))) == data
            with pytest.raises(ValueError):
                reader.read_range(0, len(data) + 1)


# -- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_every_single_byte_flip_is_detected(tmp_path: Path, mask: int) -> None:
    data = os.urandom(2 * SMALL + 9)  # two full chunks and a short final one
    path = tmp_path / "t.smr"
    summary = write(path, data, chunk_size=SMALL)
    raw = path.read_bytes()
    assert summary.chunks == 3 and len(split(raw)[1]) == 3
    for position in range(len(raw)):
        flipped = bytearray(raw)
        flipped[position] ^= mask
        path.write_bytes(flipped)
        assert_rejected(path, summary)


@FAST
@given(size=st.integers(1, 3 * CHUNK_SIZE), where=st.floats(0, 1), mask=st.integers(1, 255))
# Data that fills its chunks exactly ends in an empty final chunk: its tag must be checked too.
@example(size=CHUNK_SIZE, where=1.0, mask=1)
@example(size=2 * CHUNK_SIZE, where=1.0, mask=128)
def test_a_flip_anywhere_in_a_large_file_is_detected(tmp_path: Path, size: int, where: float,
                                                     mask: int) -> None:
    path = tmp_path / "big.smr"
    path.unlink(missing_ok=True)
    summary = write(path, os.urandom(size))
    raw = bytearray(path.read_bytes())
    raw[min(int(where * len(raw)), len(raw) - 1)] ^= mask
    path.write_bytes(raw)
    assert_rejected(path, summary)


def _rebuild(path: Path, header: bytes, frames: list[bytes]) -> None:
    path.write_bytes(header + b"".join(frames))


def test_reordered_dropped_and_duplicated_chunks_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    summary = write(path, os.urandom(3 * SMALL + 2), chunk_size=SMALL)
    header, frames = split(path.read_bytes())
    assert len(frames) == 4
    variants: list[list[bytes]] = []
    for i in range(4):
        for j in range(i + 1, 4):
            swapped = list(frames)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            variants.append(swapped)
        variants.append(frames[:i] + frames[i + 1:])  # dropped
        variants.append(frames[:i + 1] + frames[i:])  # duplicated in place
        variants.append(frames + [frames[i]])  # replayed at the end
    for variant in variants:
        _rebuild(path, header, variant)
        assert_rejected(path, summary)


def test_a_chunk_from_another_file_is_detected(tmp_path: Path) -> None:
    """Same key, same recording, same index: the header digest in the AAD still binds it."""
    path, other = tmp_path / "a.smr", tmp_path / "b.smr"
    summary = write(path, os.urandom(3 * SMALL), chunk_size=SMALL)
    write(other, os.urandom(3 * SMALL), chunk_size=SMALL)
    header, frames = split(path.read_bytes())
    frames[1] = split(other.read_bytes())[1][1]
    _rebuild(path, header, frames)
    assert_rejected(path, summary)


def test_every_truncation_is_detected(tmp_path: Path) -> None:
    data = os.urandom(3 * SMALL + 5)
    path = tmp_path / "t.smr"
    summary = write(path, data, chunk_size=SMALL)
    raw = path.read_bytes()
    header, frames = split(raw)
    boundaries = {len(header) + sum(len(f) for f in frames[:k]): k for k in range(len(frames))}
    for length in range(len(raw)):
        path.write_bytes(raw[:length])
        with pytest.raises(TruncatedError):
            verify(path)
        with pytest.raises(StoreError):
            read_all(path)
        if length in boundaries:
            # A lenient reader gives exactly the sealed prefix, and the manifest catches the cut.
            sealed = boundaries[length]
            assert read_all(path, allow_incomplete=True) == data[:sealed * SMALL]
            cut = verify(path, allow_incomplete=True)
            assert (cut.chunks, cut.complete) == (sealed, False)
            with pytest.raises(TamperedError):
                verify(path, allow_incomplete=True, expected=summary)


def test_reading_only_part_of_a_damaged_file_fails_only_where_damaged(tmp_path: Path) -> None:
    data = os.urandom(3 * SMALL)
    path = tmp_path / "t.smr"
    write(path, data, chunk_size=SMALL)
    header, frames = split(path.read_bytes())
    frames[2] = frames[2][:-1] + bytes([frames[2][-1] ^ 1])
    _rebuild(path, header, frames)
    with ChunkReader(path, recording_id=RID, data_key=KEY) as reader:
        assert b"".join(reader.read_range(0, 2 * SMALL)) == data[:2 * SMALL]
        with pytest.raises(TamperedError, match="chunk 2"):
            b"".join(reader.read_range(SMALL, 2 * SMALL + 1))


def test_wrong_key_and_wrong_recording_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    write(path, os.urandom(100_000))
    with ChunkReader(path, recording_id=RID, data_key=new_data_key()) as reader:
        with pytest.raises(WrongKeyError, match="wrong data key"):
            reader.verify()
        with pytest.raises(WrongKeyError, match="wrong data key"):
            b"".join(reader.read_range(70_000, 70_001))
    with pytest.raises(TamperedError, match="belongs to recording 'rec-1'"):
        ChunkReader(path, recording_id="rec-2", data_key=KEY)
    (tmp_path / "x.webm").write_bytes(b"\x1aE\xdf\xa3" + os.urandom(100))
    with pytest.raises(TamperedError, match="not a Samtale recording"):
        ChunkReader(tmp_path / "x.webm", recording_id=RID, data_key=KEY)


# -- crash recovery -----------------------------------------------------------------------------


@pytest.mark.parametrize("partial", [0, 1, 4, 11, 4 + SMALL + 16 - 1])
def test_recover_after_a_crash_keeps_exactly_the_sealed_prefix(tmp_path: Path,
                                                               partial: int) -> None:
    data = os.urandom(6 * SMALL)
    live = tmp_path / "live.smr"
    writer = ChunkWriter(live, recording_id=RID, track=TRACK, data_key=KEY, chunk_size=SMALL)
    writer.write(data[:3 * SMALL + 7])  # three chunks sealed, 7 bytes only in memory
    at_crash = writer.summary()
    left_on_disk = live.read_bytes()
    writer.write(data[3 * SMALL + 7:])
    writer.close()
    next_frame = live.read_bytes()[len(left_on_disk):]
    # What SIGKILL during the next write leaves: the sealed chunks and part of the next one.
    crashed = tmp_path / "crashed.smr"
    crashed.write_bytes(left_on_disk + next_frame[:partial])
    with pytest.raises(TruncatedError):
        read_all(crashed)

    summary = recover(crashed, recording_id=RID, data_key=KEY)

    assert summary == at_crash
    assert (summary.chunks, summary.complete, summary.plaintext_bytes) == (3, False, 3 * SMALL)
    assert crashed.read_bytes() == left_on_disk
    assert read_all(crashed, allow_incomplete=True) == data[:3 * SMALL]
    assert verify(crashed, allow_incomplete=True, expected=summary) == summary
    with pytest.raises(TruncatedError):
        verify(crashed)
    assert recover(crashed, recording_id=RID, data_key=KEY) == summary  # idempotent


def test_recover_cuts_a_torn_last_chunk_but_never_authentic_data(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    write(path, os.urandom(3 * SMALL), chunk_size=SMALL)
    header, frames = split(path.read_bytes())
    # Power loss: the last chunk's length made it to disk, its bytes did not.
    torn = frames[2][:4] + bytes(len(frames[2]) - 4)
    _rebuild(path, header, frames[:2] + [torn])
    summary = recover(path, recording_id=RID, data_key=KEY)
    assert (summary.chunks, summary.complete) == (2, False)
    assert path.read_bytes() == header + frames[0] + frames[1]


def test_recover_refuses_damage_a_crash_cannot_cause(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    write(path, os.urandom(4 * SMALL), chunk_size=SMALL)
    header, frames = split(path.read_bytes())
    damaged = frames[1][:-1] + bytes([frames[1][-1] ^ 1])
    _rebuild(path, header, [frames[0], damaged, frames[2]])
    before = path.read_bytes()
    with pytest.raises(TamperedError):
        recover(path, recording_id=RID, data_key=KEY)
    with pytest.raises(WrongKeyError):
        recover(path, recording_id=RID, data_key=new_data_key())
    assert path.read_bytes() == before  # nothing was cut


def test_recover_leaves_a_complete_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    summary = write(path, os.urandom(3 * SMALL), chunk_size=SMALL)
    before = path.read_bytes()
    assert recover(path, recording_id=RID, data_key=KEY) == summary
    assert path.read_bytes() == before


_KILLED_WRITER = """
import sys
from pathlib import Path
from portal.recording.store import ChunkWriter
writer = ChunkWriter(Path(sys.argv[1]), recording_id="rec-1", track="alice",
                     data_key=bytes(range(32)), flush_interval=0.0)
for i in range(5):
    writer.write(bytes([i]) * 1000)
    writer.tick()
writer.write(b"lost" * 100)  # buffered only: dies with the process
print(writer.summary().chunks, flush=True)
sys.stdin.read()
"""


def test_a_writer_killed_with_sigkill_leaves_a_recoverable_file(tmp_path: Path) -> None:
    path = tmp_path / "t.smr"
    with subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          cwd=Path(__file__).resolve().parent.parent) as child:
        assert child.stdout is not None and child.stdin is not None
        sealed = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdin.close()
        child.stdout.close()
    assert sealed == 5
    summary = recover(path, recording_id=RID, data_key=KEY)
    assert (summary.chunks, summary.complete) == (5, False)
    assert read_all(path, allow_incomplete=True) == b"".join(bytes([i]) * 1000 for i in range(5))


# -- keyring ------------------------------------------------------------------------------------


def _env(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in pairs)


def test_keyring_file_is_created_private_and_reused(tmp_path: Path) -> None:
    ring = Keyring.load(tmp_path, None)
    path = tmp_path / "recording_keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(ring.ids()) == 1
    key_id, wrapped = ring.wrap(KEY, RID)
    again = Keyring.load(tmp_path, None)
    assert again.ids() == ring.ids() and again.current_id == key_id
    assert again.unwrap(key_id, wrapped, RID) == KEY
    assert KEY not in wrapped


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_keyring_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    Keyring.load(tmp_path, None)
    (tmp_path / "recording_keys.json").chmod(mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        Keyring.load(tmp_path, None)


@pytest.mark.parametrize("content", [
    "not json",
    json.dumps({"format": "samtale-recording-keys", "version": 1, "keys": []}),
    json.dumps({"format": "samtale-recording-keys", "version": 1,
                "keys": [{"id": "a", "key": base64.b64encode(b"short").decode()}]}),
    json.dumps({"format": "other", "version": 1, "keys": []}),
])
def test_malformed_keyring_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "recording_keys.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError):
        Keyring.load(tmp_path, None)


def test_keyring_from_environment(tmp_path: Path) -> None:
    first, second = new_data_key(), new_data_key()
    ring = Keyring.load(tmp_path, _env(("old", first), ("new", second)))
    assert ring.ids() == ["old", "new"] and ring.current_id == "new"
    assert ring.from_environment
    assert not (tmp_path / "recording_keys.json").exists()
    key_id, wrapped = ring.wrap(KEY, RID)
    assert key_id == "new"
    only_old = Keyring.load(tmp_path, _env(("old", first)))
    with pytest.raises(KeyringError, match="unknown key id 'new'"):
        only_old.unwrap(key_id, wrapped, RID)
    with pytest.raises(KeyringError, match="PORTAL_RECORDING_KEYS"):
        ring.rotate()


@pytest.mark.parametrize("value", [
    "no-colon",
    "a:!!!notbase64",
    "a:" + base64.b64encode(b"x" * 16).decode(),
    _env(("a", KEY), ("a", KEY)),
    _env(("bad id", KEY)),
])
def test_bad_environment_keyring_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyringError):
        Keyring.load(tmp_path, value)


def test_wrapped_key_is_bound_to_recording_and_key(tmp_path: Path) -> None:
    ring = Keyring.load(tmp_path, _env(("a", new_data_key()), ("b", new_data_key())))
    key_id, wrapped = ring.wrap(KEY, RID)
    with pytest.raises(KeyringError, match="cannot be unwrapped"):
        ring.unwrap(key_id, wrapped, "rec-2")
    with pytest.raises(KeyringError, match="cannot be unwrapped"):
        ring.unwrap("a", wrapped, RID)
    damaged = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(KeyringError, match="cannot be unwrapped"):
        ring.unwrap(key_id, damaged, RID)


def test_rotation_keeps_old_wraps_and_rewrap_moves_them(tmp_path: Path) -> None:
    ring = Keyring.load(tmp_path, None)
    old_id, wrapped = ring.wrap(KEY, RID)
    new_id = ring.rotate()
    assert new_id != old_id and ring.current_id == new_id and ring.ids() == [old_id, new_id]
    assert stat.S_IMODE((tmp_path / "recording_keys.json").stat().st_mode) == 0o600
    assert ring.unwrap(old_id, wrapped, RID) == KEY
    moved_id, moved = ring.rewrap(old_id, wrapped, RID)
    assert moved_id == new_id and ring.unwrap(moved_id, moved, RID) == KEY
    assert Keyring.load(tmp_path, None).ids() == [old_id, new_id]


def test_a_rotation_by_another_process_is_seen(tmp_path: Path) -> None:
    server = Keyring.load(tmp_path, None)
    cli = Keyring.load(tmp_path, None)
    new_id = cli.rotate()
    key_id, wrapped = cli.wrap(KEY, RID)
    assert server.unwrap(key_id, wrapped, RID) == KEY
    assert server.current_id == new_id and server.wrap(KEY, RID)[0] == new_id


# -- signing ------------------------------------------------------------------------------------


def test_signing_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    key = load_signing_key(tmp_path, None)
    path = tmp_path / "recording_signing_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_signing_key(tmp_path, None)
    assert public_key_id(again.public_key()) == public_key_id(key.public_key())
    assert len(public_key_id(key.public_key())) == 16
    path.chmod(0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_signing_key(tmp_path, None)


def test_signing_key_from_environment(tmp_path: Path) -> None:
    raw = os.urandom(32)
    key = load_signing_key(tmp_path, base64.b64encode(raw).decode())
    expected = Ed25519PrivateKey.from_private_bytes(raw).public_key()
    assert public_key_id(key.public_key()) == public_key_id(expected)
    assert not (tmp_path / "recording_signing_key.pem").exists()
    for bad in ("***", base64.b64encode(raw[:16]).decode()):
        with pytest.raises(KeyringError):
            load_signing_key(tmp_path, bad)


def _manifest() -> dict[str, object]:
    return {"recording": RID, "participants": [{"name": "Åse Ødegård", "role": "host"}],
            "tracks": [{"name": TRACK, "file": {"chunks": 3, "chain_head": "ab" * 32}}]}


def test_signed_manifest_round_trip(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    signed = manifest.sign(_manifest(), key)
    assert signed["key_id"] == public_key_id(key.public_key())
    path = tmp_path / "manifest.json"
    manifest.write_signed(path, signed)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert manifest.verify(manifest.read_signed(path), key.public_key()) == _manifest()
    assert "Åse Ødegård".encode() in manifest.canonical(_manifest())
    assert manifest.canonical({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_altered_manifest_or_foreign_signature_fails(tmp_path: Path) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = manifest.sign(_manifest(), key)
    altered = json.loads(json.dumps(signed))
    altered["manifest"]["tracks"][0]["file"]["chunks"] = 2
    with pytest.raises(manifest.ManifestError, match="altered"):
        manifest.verify(altered, key.public_key())
    with pytest.raises(manifest.ManifestError, match="not by this server's key"):
        manifest.verify(manifest.sign(_manifest(), other), key.public_key())
    forged = manifest.sign(_manifest(), other)
    forged["key_id"] = signed["key_id"]
    with pytest.raises(manifest.ManifestError, match="does not match"):
        manifest.verify(forged, key.public_key())
    for shape in ([], {"manifest": _manifest()}, {**signed, "signature": "%%%"},
                  {**signed, "manifest": "text"}):
        with pytest.raises(manifest.ManifestError):
            manifest.verify(shape, key.public_key())
    (tmp_path / "m.json").write_text("[1, 2]")
    with pytest.raises(manifest.ManifestError):
        manifest.read_signed(tmp_path / "m.json")


def test_file_summary_round_trips_through_a_manifest(tmp_path: Path) -> None:
    summary = write(tmp_path / "t.smr", b"hello", chunk_size=SMALL)
    assert FileSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary
    with pytest.raises(ValueError):
        FileSummary.from_dict({**summary.to_dict(), "chunks": True})
