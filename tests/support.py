"""Helpers the test modules share: booking and inviting through the real services, reading the
database back, and pulling one-time secrets out of pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from portal.appointments import services as appointments
from portal.clock import Clock
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


class HandClock(Clock):
    """A clock that moves only when the test moves it (install with `hand_clock(app)`)."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


def hand_clock(app: Flask) -> HandClock:
    """Put a HandClock in the app's place for everything made from now on."""
    made = HandClock()
    app.extensions["clock"] = made
    return made


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
    """Every row of every table, to prove that a refused request changed nothing (but the
    browser sessions: a visit stores one, with its CSRF token)."""
    with app.app_context():
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for table in db.metadata.sorted_tables:
            if table.name == "sessions":
                continue
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


# --- Signaling: Flask-SocketIO's test client, keeping what it receives -------------------------

#: emit() with no payload argument at all.
NO_PAYLOAD = object()


def _socket_test_client_class() -> Any:
    from flask_socketio.test_client import SocketIOTestClient
    from socketio import packet

    class CapturingTestClient(SocketIOTestClient):  # type: ignore[misc]
        """The stock test client drops connect_error data; this one keeps it."""

        connect_error: Any = None

        def connect(self, namespace: str | None = None, query_string: str | None = None,
                    headers: dict[str, str] | None = None, auth: Any = None) -> None:
            server = self.socketio.server
            send = server._send_packet

            def capture(eio_sid: str, pkt: Any) -> None:
                if eio_sid == self.eio_sid and pkt.packet_type == packet.CONNECT_ERROR:
                    self.connect_error = pkt.data
                send(eio_sid, pkt)

            server._send_packet = capture
            try:
                super().connect(namespace=namespace, query_string=query_string,
                                headers=headers, auth=auth)
            finally:
                server._send_packet = send

    return CapturingTestClient


class SocketClient:
    """One Socket.IO connection to the app through Flask-SocketIO's test client.

    Events arrive synchronously; `take(name)` returns (and consumes) the payloads of that event
    received so far, `only(name)` the single one, `error()` the single error's payload.
    """

    def __init__(self, app: Flask, *, flask_client: Any = None, auth: Any = None,
                 label: str = "socket") -> None:
        from portal.extensions import socketio

        self.label = label
        self.raw = _socket_test_client_class()(app, socketio, flask_test_client=flask_client,
                                               auth=auth)
        self.history: list[tuple[str, Any]] = []
        self._unread: list[tuple[str, Any]] = []
        self.welcome: dict[str, Any] | None = None
        self._pull()

    @property
    def connected(self) -> bool:
        return bool(self.raw.is_connected())

    @property
    def connect_error(self) -> Any:
        return self.raw.connect_error

    @property
    def id(self) -> Any:
        assert self.welcome is not None, f"{self.label} got no welcome"
        return self.welcome["self"]["id"]

    def _pull(self) -> None:
        for item in self.raw.queue:
            args = item["args"]
            if item["name"] in ("message", "json"):
                payload = args
            else:
                payload = args[0] if len(args) == 1 else (list(args) if args else None)
            self.history.append((item["name"], payload))
            self._unread.append((item["name"], payload))
            if item["name"] == "welcome" and isinstance(payload, dict):
                self.welcome = payload
        self.raw.queue.clear()

    def emit(self, event: str, payload: Any = NO_PAYLOAD, *more: Any) -> None:
        assert self.connected, f"{self.label} is not connected"
        args = () if payload is NO_PAYLOAD else (payload, *more)
        self.raw.emit(event, *args)
        self._pull()

    def unread(self) -> list[tuple[str, Any]]:
        self._pull()
        return list(self._unread)

    def take(self, event: str) -> list[Any]:
        self._pull()
        found = [p for name, p in self._unread if name == event]
        self._unread = [(name, p) for name, p in self._unread if name != event]
        return found

    def only(self, event: str) -> Any:
        found = self.take(event)
        assert len(found) == 1, f"{self.label}: expected one {event!r}, got {found!r}; " \
                                f"history {self.history!r}"
        return found[0]

    def last(self, event: str) -> Any:
        found = self.take(event)
        assert found, f"{self.label}: no {event!r}; history {self.history!r}"
        return found[-1]

    def error(self, event: str | None = None) -> dict[str, Any]:
        """The one `error` received since the last look; checks its shape and `event`."""
        err = self.only("error")
        assert isinstance(err, dict) and {"code", "message", "event"} <= err.keys(), err
        assert isinstance(err["message"], str) and err["message"], err
        if event is not None:
            assert err["event"] == event, err
        return err

    def no_errors(self) -> None:
        errors = self.take("error")
        assert not errors, f"{self.label}: unexpected errors {errors!r}"

    def disconnect(self) -> None:
        if self.connected:
            self.raw.disconnect()
        self._pull()
