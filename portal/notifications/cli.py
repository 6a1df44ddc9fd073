"""`flask --app app notifications run|send`: the sender as a process of its own."""

from __future__ import annotations

import signal
from types import FrameType

import click
from flask import current_app
from flask.cli import AppGroup

from portal.notifications import smtp
from portal.notifications.sender import Sender

notifications_cli = AppGroup("notifications", help="Guests' e-mail (invitations, reminders).")


@notifications_cli.command("run")
def run() -> None:
    """Send queued messages until stopped (SIGTERM or Ctrl+C ends after the current one)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not smtp.configured(app.config):
        raise click.ClickException("PORTAL_SMTP_HOST is not set: nothing would be sent")
    sender = Sender(app)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        sender.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo("sending guests' e-mail", err=True)
    sender.run()


@notifications_cli.command("send")
def send_due() -> None:
    """One pass: send what is due now, then exit."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not smtp.configured(app.config):
        raise click.ClickException("PORTAL_SMTP_HOST is not set: nothing would be sent")
    click.echo(f"tried {Sender(app).run_once()} messages")
