"""Operator commands: `flask --app app keys rotate`, `flask --app app recordings ...`."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import select

from portal.audit import services as audit
from portal.extensions import db
from portal.models import Recording, RecordingStatus
from portal.models.recording import STORED
from portal.recording import archive
from portal.recording.keys import KeyringError

keys_cli = AppGroup("keys", help="The recording keyring (master keys that wrap data keys).")
recordings_cli = AppGroup("recordings", help="Stored recordings: list, verify, export, recover.")
recorder_cli = AppGroup("recorder", help="The recorder of hearings (calls through Janus).")


def _recording_or_exit(recording_id: str) -> Recording:
    recording = db.session.get(Recording, recording_id)
    if recording is None:
        click.echo(f"no recording {recording_id}", err=True)
        sys.exit(2)
    return recording


@keys_cli.command("rotate")
def rotate() -> None:
    """Add a new master key and re-wrap every data key with it (media is not touched)."""
    ring = archive.keyring()
    try:
        new_id = ring.rotate()
    except KeyringError as exc:
        click.echo(f"cannot rotate: {exc}", err=True)
        sys.exit(1)
    count = _rewrap_all()
    audit.record("keys.rotated", object_type="keyring", object_id=new_id,
                 details={"rewrapped": count})
    db.session.commit()
    click.echo(f"new master key {new_id}; {count} data keys re-wrapped. Keep a backup of "
               f"the keyring: without it no recording can be opened.")


@keys_cli.command("rewrap")
def rewrap() -> None:
    """Re-wrap every data key with the current master key (after adding one by hand)."""
    count = _rewrap_all()
    audit.record("keys.rewrapped", object_type="keyring", object_id=archive.keyring().current_id,
                 details={"rewrapped": count})
    db.session.commit()
    click.echo(f"{count} data keys now wrapped by {archive.keyring().current_id}")


def _rewrap_all() -> int:
    ring = archive.keyring()
    rows = db.session.scalars(select(Recording).where(Recording.wrapped_key.is_not(None))).all()
    for recording in rows:
        assert recording.key_id is not None and recording.wrapped_key is not None
        recording.key_id, recording.wrapped_key = ring.rewrap(
            recording.key_id, recording.wrapped_key, recording.id)
    return len(rows)


@keys_cli.command("list")
def list_keys() -> None:
    """Master key ids (the last one wraps new recordings)."""
    ring = archive.keyring()
    for key_id in ring.ids():
        click.echo(f"{key_id}{'  (current)' if key_id == ring.current_id else ''}")


@recordings_cli.command("list")
def list_recordings() -> None:
    """Every recording with its status."""
    for r in db.session.scalars(select(Recording).order_by(Recording.requested_at)):
        click.echo(f"{r.id}  appointment {r.appointment_id}  {r.status.value:<10}  "
                   f"{len(r.tracks)} tracks  {r.started_at or r.requested_at:%Y-%m-%d %H:%M}")


@recordings_cli.command("verify")
@click.argument("recording_id")
def verify(recording_id: str) -> None:
    """Check the manifest's signature, its chunk chain and every chunk; exit 1 on a fault."""
    recording = _recording_or_exit(recording_id)
    if recording.status not in STORED:
        click.echo(f"recording {recording.id} is {recording.status.value}: nothing to verify",
                   err=True)
        sys.exit(1)
    verdict = archive.verify(recording)
    for line in verdict.checked:
        click.echo(f"ok: {line}")
    if not verdict.ok:
        for problem in verdict.problems:
            click.echo(f"FAILED: {problem}", err=True)
        sys.exit(1)
    for line in verdict.loss:
        click.echo(f"loss: {line}")
    note = " (incomplete: the recorder stopped; every sealed chunk is intact)" \
        if recording.status is RecordingStatus.INCOMPLETE else ""
    media = {True: "; no media lost", False: "; MEDIA LOST while recording (see loss above)",
             None: "; loss not accounted (recorded before loss accounting)"}[verdict.complete]
    click.echo(f"OK: recording {recording.id} is intact{note}{media}")


@recordings_cli.command("export")
@click.argument("recording_id")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
def export(recording_id: str, out: Path) -> None:
    """Write one playable, decrypted Matroska file with every participant's streams."""
    recording = _recording_or_exit(recording_id)
    if recording.status not in STORED:
        click.echo(f"recording {recording.id} is {recording.status.value}: nothing to export",
                   err=True)
        sys.exit(1)
    if out.exists():
        click.echo(f"{out} exists; choose a new file name", err=True)
        sys.exit(1)
    verdict = archive.verify(recording)
    if not verdict.ok:
        for problem in verdict.problems:
            click.echo(f"FAILED: {problem}", err=True)
        click.echo("not exported: the recording does not verify", err=True)
        sys.exit(1)
    counts = archive.export(recording, out)
    audit.record("recording.exported", object_type="recording", object_id=recording.id,
                 details={"file": str(out.resolve()), "packets": counts})
    db.session.commit()
    click.echo(f"exported {recording.id} to {out}: "
               + ", ".join(f"{k} {v} packets" for k, v in counts.items()))
    click.echo("This file is not encrypted: keep it safe and delete it when done.")


@recordings_cli.command("purge")
def purge() -> None:
    """Delete recordings older than PORTAL_RECORDING_RETENTION_DAYS (run it daily, e.g. cron)."""
    from datetime import timedelta

    from flask import current_app

    from portal.models import utcnow

    days = int(current_app.config["RECORDING_RETENTION_DAYS"])
    cutoff = utcnow() - timedelta(days=days)
    rows = [r for r in db.session.scalars(select(Recording).where(
        Recording.status.in_(STORED))) if (r.stopped_at or r.requested_at) < cutoff]
    for recording in rows:
        archive.shred(recording, reason=f"retention of {days} days")
        click.echo(f"deleted {recording.id} (appointment {recording.appointment_id})")
    click.echo(f"{len(rows)} recordings past the retention of {days} days deleted")


@recordings_cli.command("recover")
def recover() -> None:
    """Mark recordings whose recorder stopped as incomplete (also done at every start)."""
    from portal.recording import manager

    found = manager.get().recover_stale()
    click.echo(f"{len(found)} recordings recovered" + (": " + ", ".join(found) if found else ""))


@recorder_cli.command("run")
def run_recorder() -> None:
    """Record hearings: Janus forwards each recorded participant's media here (run one next
    to each Janus instance; docs/operations.md). Stops cleanly on SIGTERM or Ctrl+C, sealing
    what it records."""
    import logging
    import signal

    from flask import current_app

    from portal.recording.hearing_recorder import HearingRecorder

    logging.getLogger("portal.recording").setLevel(logging.INFO)  # what it forwards, seals
    recorder = HearingRecorder(current_app._get_current_object())  # type: ignore[attr-defined]
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: recorder.stop())
    recorder.run()


def init_app(app: Flask) -> None:
    app.cli.add_command(keys_cli)
    app.cli.add_command(recordings_cli)
    app.cli.add_command(recorder_cli)
