"""A stored recording: where its files are, its signed manifest, verification and export.

Files: RECORDINGS_DIR/<recording id>/<track>.smr (one encrypted WebM/Matroska per
participant) and manifest.json (signed). The wrapped data key lives in the database row.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app

from portal import private
from portal.models import Recording, RecordingStatus, RecordingTrack
from portal.recording import loss
from portal.recording import manifest as signed_manifest
from portal.recording.keys import Keyring, KeyringError, load_signing_key
from portal.recording.seekable import PlainStream
from portal.recording.store import ChunkReader, FileSummary, StoreError

MANIFEST = "manifest.json"
FORMAT = "samtale-recording-manifest/1"


def _key_dir() -> Path:
    return Path(current_app.config["RECORDING_KEYS_DIR"] or current_app.instance_path)


def keyring() -> Keyring:
    app = current_app
    ring = app.extensions.get("recording_keyring")
    if ring is None:
        ring = Keyring.load(_key_dir(), app.config["RECORDING_KEYS"])
        app.extensions["recording_keyring"] = ring
    assert isinstance(ring, Keyring)
    return ring


def signing_key() -> Ed25519PrivateKey:
    app = current_app
    key = app.extensions.get("recording_signing_key")
    if key is None:
        key = load_signing_key(_key_dir(), app.config["RECORDING_SIGNING_KEY"])
        app.extensions["recording_signing_key"] = key
    assert isinstance(key, Ed25519PrivateKey)
    return key


def directory(recording_id: str) -> Path:
    return Path(current_app.config["RECORDINGS_DIR"]) / recording_id


def track_path(track: RecordingTrack) -> Path:
    return directory(track.recording_id) / f"{track.name}.smr"


def data_key(recording: Recording) -> bytes:
    if recording.key_id is None or recording.wrapped_key is None:
        raise KeyringError(f"recording {recording.id} has no data key (deleted?)")
    return keyring().unwrap(recording.key_id, recording.wrapped_key, recording.id)


def track_details(track: RecordingTrack) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(track.details or "{}")
    return loaded


def reader(recording: Recording, track: RecordingTrack) -> ChunkReader:
    return ChunkReader(track_path(track), recording_id=recording.id, data_key=data_key(recording),
                       allow_incomplete=recording.status is RecordingStatus.INCOMPLETE)


def build_manifest(recording: Recording, consents: list[dict[str, Any]],
                   absences: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The manifest's content; `absences` (a hearing's: when each participant's media was not
    in the record, and why) only when the recorder kept them."""
    appointment = recording.appointment

    def when(moment: Any) -> str | None:
        return moment.isoformat() if moment is not None else None

    manifest = {
        "format": FORMAT,
        "recording": recording.id,
        "appointment": {"id": appointment.id, "kind": appointment.kind.value,
                        "policy": appointment.recording_policy.value},
        "status": recording.status.value,
        "wording_version": recording.wording_version,
        "requested_at": when(recording.requested_at),
        "started_at": when(recording.started_at),
        "stopped_at": when(recording.stopped_at),
        "stop_reason": recording.stop_reason,
        "participants": [{"id": p.id, "name": p.display_name, "role": p.role.value}
                         for p in appointment.participants],
        "consents": consents,
        "tracks": [{"name": t.name, "participant": t.participant_id, "mode": t.mode,
                    "started_at": when(t.started_at), "stopped_at": when(t.stopped_at),
                    "frames": {"video": t.video_frames, "audio": t.audio_frames},
                    **{k: v for k, v in track_details(t).items() if k in TRACK_KEYS}}
                   for t in recording.tracks],
    }
    if absences is not None:
        manifest["absences"] = absences
    summary = loss_summary(recording)
    if summary is not None:
        manifest["loss"] = summary
    return manifest


#: What a track's details give its manifest entry.
TRACK_KEYS = ("codecs", "file", "offset_ms", "media", "loss")


def loss_summary(recording: Recording) -> dict[str, Any] | None:
    """{complete, accounted}: complete only if every track with media counted its loss and
    lost nothing; accounted if every such track counted. None for a recording made before
    loss was counted (no track has it), so that its manifest stays as it was."""
    counted = [track_details(t).get("loss") for t in recording.tracks if t.mode != "failed"]
    if not any(counted):
        return None
    accounted = all(c is not None and c.get("accounted", True) for c in counted)
    return {"accounted": accounted,
            "complete": accounted and all(c.get("complete") for c in counted if c)}


def seal(recording: Recording, consents: list[dict[str, Any]],
         absences: list[dict[str, Any]] | None = None) -> None:
    """Write and sign the manifest; its digest goes into the row (committed by the caller)."""
    signed = signed_manifest.sign(build_manifest(recording, consents, absences), signing_key())
    path = directory(recording.id) / MANIFEST
    private.folder(path.parent)
    signed_manifest.write_signed(path, signed)
    recording.manifest_digest = hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Verdict:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    loss: list[str] = field(default_factory=list)  # per track, from the signed manifest
    complete: bool | None = None  # nothing lost (None: not accounted, an older recording)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


def verify(recording: Recording) -> Verdict:
    """Signature, manifest digest, and every chunk of every file against the manifest."""
    verdict = Verdict()
    path = directory(recording.id) / MANIFEST
    if not path.exists():
        verdict.fail("the manifest is missing")
        return verdict
    raw = path.read_bytes()
    if recording.manifest_digest != hashlib.sha256(raw).hexdigest():
        verdict.fail("the manifest differs from the one recorded in the database")
    try:
        content = signed_manifest.verify(signed_manifest.read_signed(path),
                                         signing_key().public_key())
    except signed_manifest.ManifestError as exc:
        verdict.fail(f"manifest: {exc}")
        return verdict
    verdict.checked.append("manifest signature")
    if content.get("recording") != recording.id:
        verdict.fail("the manifest belongs to another recording")
    try:
        key = data_key(recording)
    except KeyringError as exc:
        verdict.fail(str(exc))
        return verdict
    listed = {t["name"]: t for t in content.get("tracks", [])}
    _loss(verdict, content)
    for track in recording.tracks:
        expected = listed.pop(track.name, None)
        if expected is None:
            verdict.fail(f"track {track.name} is not in the manifest")
            continue
        if "file" not in expected and not track_path(track).exists():
            # The signed manifest says this track never got media (a failed negotiation).
            verdict.checked.append(f"track {track.name}: no media")
            continue
        try:
            manifest_summary = FileSummary.from_dict(expected["file"]) \
                if "file" in expected else None
            with ChunkReader(track_path(track), recording_id=recording.id, data_key=key,
                             allow_incomplete=recording.status is RecordingStatus.INCOMPLETE
                             ) as source:
                summary = source.verify(expected=manifest_summary)
        except (StoreError, OSError, ValueError) as exc:
            verdict.fail(f"track {track.name}: {exc}")
            continue
        verdict.checked.append(f"track {track.name}: {summary.chunks} chunks")
    for name in listed:
        verdict.fail(f"track {name} of the manifest is missing")
    return verdict


def _loss(verdict: Verdict, content: dict[str, Any]) -> None:
    """What the signed manifest says was lost, per track (loss.describe)."""
    summary = content.get("loss")
    verdict.complete = bool(summary.get("complete")) if isinstance(summary, dict) else None
    for track in content.get("tracks", []):
        if "file" in track or "loss" in track:
            verdict.loss.append(f"track {track['name']}: {loss.describe(track.get('loss'))}")


def export(recording: Recording, out: Path) -> dict[str, int]:
    """One playable Matroska file with every participant's streams, time-aligned, by codec
    copy. Returns the packets written per stream ("p12-1:video")."""
    import av  # the web app needs PyAV only for recording

    counts: dict[str, int] = {}
    out.parent.mkdir(mode=private.DIR_MODE, parents=True, exist_ok=True)
    private.new_file(out)  # plaintext: 0600 before a byte is written
    inputs: list[Any] = []
    try:
        with av.open(str(out), "w", format="matroska") as target:
            feeds = []
            for n, track in enumerate(recording.tracks):
                if not track_path(track).exists():
                    continue
                plain = PlainStream(reader(recording, track))
                inputs.append(plain)
                source = av.open(plain, "r")
                inputs.append(source)
                offset = float(track_details(track).get("offset_ms", 0)) / 1000
                copies = {}
                for stream in source.streams:
                    if stream.type in ("audio", "video"):
                        copy = target.add_stream_from_template(stream)
                        copy.metadata["title"] = f"{track.participant.display_name} ({stream.type})"
                        copies[stream.index] = (copy, f"{track.name}:{stream.type}")
                        counts[f"{track.name}:{stream.type}"] = 0
                feeds.append(_timed(source, copies, offset, n))
            # Each file is interleaved already; merge them by time so the muxer gets order.
            for _at, _n, packet, copy, label in heapq.merge(*feeds, key=lambda f: (f[0], f[1])):
                packet.stream = copy
                target.mux(packet)
                counts[label] += 1
    finally:
        for source in reversed(inputs):  # each container before its stream
            source.close()
    return counts


def _timed(source: Any, copies: dict[int, Any], offset: float, n: int) -> Iterator[Any]:
    """The file's packets with times shifted by the track's start within the recording."""
    for packet in source.demux(*[source.streams[i] for i in copies]):
        if packet.dts is None or packet.stream.index not in copies:
            continue
        base = packet.time_base
        shift = round(offset / base)
        packet.pts = (packet.pts if packet.pts is not None else packet.dts) + shift
        packet.dts += shift
        copy, label = copies[packet.stream.index]
        yield float(packet.dts * base), n, packet, copy, label


def shred(recording: Recording, *, reason: str) -> None:
    """Crypto-shredding: destroy the data key and commit, then remove the files. Once the key
    is gone no copy of the files (a backup, a disk block) can be read."""
    from portal.audit import services as audit
    from portal.extensions import db

    recording.key_id = None
    recording.wrapped_key = None
    recording.status = RecordingStatus.DELETED
    audit.record("recording.deleted", object_type="recording", object_id=recording.id,
                 details={"appointment_id": recording.appointment_id, "reason": reason})
    db.session.commit()
    shutil.rmtree(directory(recording.id), ignore_errors=True)
