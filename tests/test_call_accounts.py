"""Staff sessions and call sockets: signing out or being disabled ends the connection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from portal.accounts import services as accounts
from portal.appointments import services
from portal.extensions import db, socketio
from portal.models import Appointment, Kind, RecordingPolicy, Status, User, utcnow


def _appointment(app: Flask, host_id: int) -> int:
    with app.app_context():
        host = db.session.get(User, host_id)
        appointment = services.book(
            host, kind=Kind.CONSULT, title="Follow-up", starts_at=utcnow() + timedelta(minutes=5),
            duration_minutes=30, recording_policy=RecordingPolicy.OFF)
        db.session.commit()
        return appointment.id


def test_signing_out_closes_the_hosts_call_socket(app: Flask, people: Any, browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_a)
    host = socketio.test_client(app, flask_test_client=browser.client,
                                auth={"appointment": appointment_id})
    assert host.is_connected()
    host.get_received()
    browser.post("/logout")
    assert not host.is_connected()


def test_a_disabled_host_is_refused_on_the_next_event(app: Flask, people: Any,
                                                      browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_a)
    host = socketio.test_client(app, flask_test_client=browser.client,
                                auth={"appointment": appointment_id})
    host.get_received()
    with app.app_context():
        accounts.set_disabled(db.session.get(User, people.host_a.id), True)
        db.session.commit()
    host.emit("call:join", {"resume": False})
    assert not host.is_connected()
    with app.app_context():  # and the refused event changed nothing
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment.status is Status.SCHEDULED
        assert all(p.joined_call_at is None for p in appointment.participants)


def test_a_host_cannot_connect_to_another_hosts_appointment(app: Flask, people: Any,
                                                           browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_b)
    intruder = socketio.test_client(app, flask_test_client=browser.client,
                                    auth={"appointment": appointment_id})
    assert not intruder.is_connected()
