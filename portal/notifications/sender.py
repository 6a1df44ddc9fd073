"""The sender: claims each due message, writes it, hands it to SMTP, and marks it.

A message is claimed in a short transaction of its own (status `sending`, a fresh attempt id,
a lease); the SMTP conversation holds no transaction; only the attempt that holds the claim
may mark it sent. A sender that dies (SIGKILL) leaves its claim, which another takes once
the lease runs out; what was marked sent is never sent again. The one window left is between
the server's "250 OK" and the commit of `sent` (milliseconds): a crash there sends that
message twice, with the same Message-ID, which mail programs show once.

Failures are tried again with back-off (RETRY_SECONDS doubling, at most an hour) up to
MAX_ATTEMPTS, then stay `failed` until the host resends. Each pass also plans the reminders
that are due and destroys the links whose window has closed."""

from __future__ import annotations

import logging
import smtplib
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from flask import Flask, current_app
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from portal import outbox
from portal.appointments import services
from portal.audit import services as audit
from portal.clock import clock
from portal.extensions import db
from portal.models import (
    Appointment,
    LinkSecret,
    MessageKind,
    MessageStatus,
    OutboxMessage,
    Participant,
    Status,
)
from portal.notifications import smtp
from portal.notifications.compose import Skip, compose

log = logging.getLogger(__name__)

Transport = Callable[[dict[str, Any], EmailMessage], None]
MAX_BACKOFF = timedelta(hours=1)


def _send_smtp(config: dict[str, Any], mail: EmailMessage) -> None:
    smtp.send(config, mail)


class Sender:
    """Sends what is due, one message at a time; `run_once` is one pass (tests call it with
    a clock they move), `run` loops until `stop` is set."""

    def __init__(self, app: Flask, transport: Transport = _send_smtp) -> None:
        self.app = app
        self.transport = transport
        self.stop = threading.Event()

    def run(self) -> None:
        poll = float(self.app.config["NOTIFY_POLL_SECONDS"])
        while not self.stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bad pass must not end the sender: log, wait, go on
                log.exception("the notification pass failed")
                with self.app.app_context():
                    db.session.rollback()
            self.stop.wait(poll)

    def run_once(self, limit: int = 100) -> int:
        """One pass: housekeeping, then up to `limit` due messages. Returns how many were
        tried."""
        with self.app.app_context():
            try:
                now = clock().now()
                forget_closed_links(now)
                plan_reminders(now)
                tried = 0
                while tried < limit and not self.stop.is_set():
                    claimed = claim(clock().now())
                    if claimed is None:
                        break
                    self._deliver(claimed)
                    tried += 1
                return tried
            finally:
                db.session.remove()

    def _deliver(self, message_id: int) -> None:
        now = clock().now()
        message = db.session.get(OutboxMessage, message_id)
        assert message is not None
        attempt = message.attempt_id
        try:
            written = compose(message, now)
        except Exception as err:  # a message that cannot be written must not stop the others
            log.exception("message %s could not be written", message_id)
            db.session.rollback()
            _failed(message_id, attempt, err)
            return
        if isinstance(written, Skip):
            _finish(message_id, attempt, status=MessageStatus.SKIPPED, error=written.reason)
            return
        db.session.commit()  # no transaction (no SQLite lock) while SMTP talks
        try:
            self.transport(current_app.config, written)
        except (OSError, smtplib.SMTPException) as err:
            _failed(message_id, attempt, err)
            return
        _finish(message_id, attempt, status=MessageStatus.SENT)


def claim(now: datetime) -> int | None:
    """Take the next due message for this sender (queued or failed and due, or a claim whose
    lease ran out); committed before anything is sent."""
    lease = timedelta(seconds=int(current_app.config["NOTIFY_LEASE_SECONDS"]))
    due = or_(and_(OutboxMessage.status.in_((MessageStatus.QUEUED, MessageStatus.FAILED)),
                   OutboxMessage.next_try_at <= now),
              and_(OutboxMessage.status == MessageStatus.SENDING,
                   OutboxMessage.lease_until <= now))
    message = db.session.scalar(select(OutboxMessage).where(due)
                                .order_by(OutboxMessage.next_try_at, OutboxMessage.id)
                                .limit(1).with_for_update(skip_locked=True))
    if message is None:
        db.session.commit()
        return None
    message.status = MessageStatus.SENDING
    message.attempt_id = uuid.uuid4().hex
    message.attempts += 1
    message.lease_until = now + lease
    message_id = message.id
    db.session.commit()
    return message_id


def _finish(message_id: int, attempt: str | None, *, status: MessageStatus,
            error: str | None = None) -> None:
    """Mark the message, if this attempt still holds it (a lease taken over is not ours)."""
    now = clock().now()
    done = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.attempt_id == attempt,
               OutboxMessage.status == MessageStatus.SENDING)
        .values(status=status, lease_until=None, next_try_at=None, last_error=error,
                sent_at=now if status is MessageStatus.SENT else None))
    if done.rowcount:  # type: ignore[attr-defined]
        audit.record(f"message.{status.value}", object_type="message", object_id=message_id,
                     actor=audit.SYSTEM)
    db.session.commit()


def _failed(message_id: int, attempt: str | None, err: BaseException) -> None:
    config = current_app.config
    message = db.session.get(OutboxMessage, message_id)
    assert message is not None
    if message.attempt_id != attempt or message.status is not MessageStatus.SENDING:
        db.session.commit()
        return
    now = clock().now()
    message.status = MessageStatus.FAILED
    message.lease_until = None
    message.last_error = f"{type(err).__name__}: {err}"[:300]
    if message.attempts >= int(config["NOTIFY_MAX_ATTEMPTS"]):
        message.next_try_at = None  # given up: the host may resend
    else:
        wait = timedelta(seconds=int(config["NOTIFY_RETRY_SECONDS"]) * 2 ** (message.attempts - 1))
        message.next_try_at = now + min(wait, MAX_BACKOFF)
    audit.record("message.failed", object_type="message", object_id=message_id,
                 actor=audit.SYSTEM, details={"attempt": message.attempts,
                                              "error": type(err).__name__})
    db.session.commit()


def plan_reminders(now: datetime) -> None:
    """Queue each reminder whose time has come: at each of REMINDER_MINUTES before the start,
    to each guest with an address and a working link who was invited before that moment; of
    several due at once (the sender was down) only the nearest."""
    offsets = sorted(int(m) for m in current_app.config["REMINDER_MINUTES"])
    if not offsets:
        return
    horizon = now + timedelta(minutes=offsets[-1])
    appointments = db.session.scalars(
        select(Appointment).where(Appointment.status == Status.SCHEDULED,
                                  Appointment.reminders.is_(True),
                                  Appointment.starts_at > now,
                                  Appointment.starts_at <= horizon))
    for appointment in list(appointments):
        due = [m for m in offsets if appointment.starts_at - timedelta(minutes=m) <= now]
        if not due:
            continue
        minutes = due[0]
        moment = appointment.starts_at - timedelta(minutes=minutes)
        for guest in appointment.guests:
            if not _remindable(guest, moment):
                continue
            key = f"reminder:{guest.id}:{minutes}:{int(appointment.starts_at.timestamp())}"
            if db.session.scalar(select(OutboxMessage.id)
                                 .where(OutboxMessage.dedupe_key == key)) is not None:
                continue
            try:
                with db.session.begin_nested():
                    outbox.queue(guest, MessageKind.REMINDER, dedupe_key=key)
            except IntegrityError:  # another sender planned it first
                continue
    db.session.commit()


def _remindable(guest: Participant, moment: datetime) -> bool:
    return (bool(guest.email) and not guest.invite_revoked
            and guest.invite_issued_at is not None and guest.invite_issued_at < moment
            and db.session.get(LinkSecret, guest.id) is not None)


def forget_closed_links(now: datetime) -> None:
    """Destroy every kept link whose window has closed or whose appointment is over."""
    kept = db.session.scalars(select(Participant).join(
        LinkSecret, LinkSecret.participant_id == Participant.id))
    for guest in list(kept):
        appointment = guest.appointment
        if appointment.status in (Status.CANCELLED, Status.ENDED) \
                or now >= services.invite_window(appointment)[1]:
            outbox.forget_link(guest)
    db.session.commit()
