"""Helpers the test modules share: booking and inviting through the real services, reading the
database back, and pulling one-time secrets out of pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from portal.appointments import services as appointments
from portal.extensions import db
from portal.models import (
    Appointment,
    AuditEvent,
    Kind,
    ParticipantRole,
    RecordingPolicy,
    User,
)

INVITE_LINK_RE = re.compile(r'id="new-link".*?value="https?://[^/"]+(/j/[^"]+)"', re.S)
ONE_TIME_RE = re.compile(r'id="one-time".*?value="([^"]+)"', re.S)


def now() -> datetime:
    return datetime.now(UTC)


def local_input(moment: datetime) -> str:
    """A datetime-local field's value."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def book(app: Flask, host_id: int, *, starts_in: timedelta = timedelta(minutes=10),
         minutes: int = 30, kind: Kind = Kind.CONSULT, title: str = "Follow-up",
         policy: RecordingPolicy = RecordingPolicy.CONSENT) -> int:
    """Book an appointment for a host through the service layer, starting on a whole minute
    (as the booking form does); returns its id."""
    with app.app_context():
        host = db.session.get(User, host_id)
        assert host is not None
        appointment = appointments.book(
            host, kind=kind, title=title,
            starts_at=(now() + starts_in).replace(second=0, microsecond=0),
            duration_minutes=minutes, recording_policy=policy)
        db.session.commit()
        return appointment.id


def invite(app: Flask, appointment_id: int, name: str = "Pat",
           role: ParticipantRole = ParticipantRole.PATIENT) -> tuple[int, str]:
    """Add a guest; returns the participant id and the invite token (shown once)."""
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        guest, token = appointments.add_guest(appointment, display_name=name, role=role)
        db.session.commit()
        return guest.id, token


def get_appointment(app: Flask, appointment_id: int) -> Appointment:
    """A detached copy of the appointment as stored now."""
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        db.session.expunge(appointment)
        return appointment


def audit_events(app: Flask, action: str | None = None) -> list[AuditEvent]:
    """The audit trail in order, optionally one action only (detached rows)."""
    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.seq)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        events = list(db.session.scalars(query))
        db.session.expunge_all()
        return events


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that a refused request changed nothing."""
    with app.app_context():
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(select(table).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(row) for row in rows]
        db.session.rollback()
        return tables


def invite_path(response: Any) -> str:
    """The /j/<token> path of the link a page shows once."""
    match = INVITE_LINK_RE.search(response.get_data(as_text=True))
    assert match, "the page shows no new invite link"
    return match.group(1)


def one_time_password(response: Any) -> str:
    match = ONE_TIME_RE.search(response.get_data(as_text=True))
    assert match, "the page shows no one-time password"
    return match.group(1)
