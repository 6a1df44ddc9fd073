"""Staff sessions and call sockets: signing out or being disabled ends the connection."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from support import SocketClient

from portal.accounts import services as accounts
from portal.appointments import services
from portal.extensions import db, socketio
from portal.models import (
    Appointment,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    Role,
    Status,
    User,
    utcnow,
)


def _appointment(app: Flask, host_id: int) -> int:
    with app.app_context():
        host = db.session.get(User, host_id)
        appointment = services.book(
            host, kind=Kind.CONSULT, title="Follow-up", starts_at=utcnow() + timedelta(minutes=5),
            duration_minutes=30, recording_policy=RecordingPolicy.OFF)
        db.session.commit()
        return appointment.id


def _host_and_waiting_guest(app: Flask, people: Any, browser: Any) -> tuple[int, int, Any, Any]:
    """Host A's appointment with guest Pat, both connected, Pat in the waiting room."""
    appointment_id = _appointment(app, people.host_a.id)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        guest, token = services.add_guest(appointment, display_name="Pat",
                                          role=ParticipantRole.PATIENT)
        db.session.commit()
        guest_id = guest.id
    browser.login(people.host_a)
    host = socketio.test_client(app, flask_test_client=browser.client,
                                auth={"appointment": appointment_id})
    patient = socketio.test_client(app, auth={"invite": token})
    patient.emit("lobby:join", {})
    return appointment_id, guest_id, host, patient


def test_signing_out_closes_the_hosts_call_socket(app: Flask, people: Any, browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_a)
    host = socketio.test_client(app, flask_test_client=browser.client,
                                auth={"appointment": appointment_id})
    assert host.is_connected()
    host.get_received()
    browser.post("/logout")
    assert not host.is_connected()


def test_disabling_a_host_closes_its_call_socket_at_once(app: Flask, people: Any,
                                                         browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_a)
    host = socketio.test_client(app, flask_test_client=browser.client,
                                auth={"appointment": appointment_id})
    host.get_received()
    with app.app_context():
        accounts.set_disabled(db.session.get(User, people.host_a.id), True)
        db.session.commit()
    assert not host.is_connected()
    with app.app_context():  # and nothing of the call changed
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


def test_stopping_a_link_puts_the_guest_out_of_the_call_at_once(app: Flask, people: Any,
                                                                 browser: Any) -> None:
    appointment_id, guest_id, host, patient = _host_and_waiting_guest(app, people, browser)
    host.emit("lobby:admit", {"participant_id": guest_id})
    host.emit("call:join", {"resume": False})
    patient.emit("call:join", {"resume": False})
    host.get_received()
    browser.post(f"/appointments/{appointment_id}/guests/{guest_id}/revoke")
    deadline = time.monotonic() + 5
    while patient.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not patient.is_connected()
    assert {"name": "call:peer-left", "args": [{"id": guest_id}], "namespace": "/"} \
        in host.get_received()
    with app.app_context():
        assert db.session.get(Participant, guest_id).lobby_state is LobbyState.LEFT


def test_a_new_link_gives_a_denied_guest_a_new_chance(app: Flask, people: Any,
                                                      browser: Any) -> None:
    appointment_id, guest_id, host, patient = _host_and_waiting_guest(app, people, browser)
    host.emit("lobby:deny", {"participant_id": guest_id})
    assert {"name": "lobby:state", "args": [{"state": "denied"}], "namespace": "/"} \
        in patient.get_received()
    page = browser.post(f"/appointments/{appointment_id}/guests/{guest_id}/reissue",
                        follow_redirects=True)
    new_link = re.search(r"/j/([A-Za-z0-9_-]+)", page.get_data(as_text=True)).group(1)
    again = socketio.test_client(app, auth={"invite": new_link})
    welcome = next(m for m in again.get_received() if m["name"] == "welcome")["args"][0]
    assert welcome["state"] == "invited"
    again.emit("lobby:join", {})
    assert {"name": "lobby:state", "args": [{"state": "waiting"}], "namespace": "/"} \
        in again.get_received()


def test_the_call_page_of_an_ended_appointment_says_so(app: Flask, people: Any,
                                                       browser: Any) -> None:
    appointment_id = _appointment(app, people.host_a.id)
    with app.app_context():
        db.session.get(Appointment, appointment_id).status = Status.ENDED
        db.session.commit()
    browser.login(people.host_a)
    response = browser.get(f"/appointments/{appointment_id}/call")
    assert response.status_code == 409
    assert "cannot be joined" in response.get_data(as_text=True)


def _require_mfa_of_host_a(app: Flask, people: Any, how: str) -> None:
    """Make the second factor required for host A, who has none: the deployment's policy
    changes, or the account is made an administrator (who must always have one)."""
    if how == "policy":
        app.config["MFA_HOSTS"] = "required"
        return
    with app.app_context():
        user = db.session.get(User, people.host_a.id)
        user.role = Role.ADMIN
        db.session.commit()


@pytest.mark.parametrize("how", ["policy", "admin"])
def test_staff_without_a_required_second_factor_cannot_connect_a_call(
        app: Flask, people: Any, browser: Any, how: str) -> None:
    """A full session from before the second factor was required does not connect a call
    socket, as it reaches no page but the enrolment one (portal/call/identity.py)."""
    appointment_id = _appointment(app, people.host_a.id)
    browser.login(people.host_a)
    before = SocketClient(app, flask_client=browser.client, auth={"appointment": appointment_id})
    assert before.connected, before.connect_error  # the session itself is good
    before.disconnect()
    _require_mfa_of_host_a(app, people, how)
    assert browser.get("/appointments/").headers["Location"] == "/account/mfa"
    with app.app_context():
        presence_before = [(p.id, p.joined_call_at) for p in
                           db.session.get(Appointment, appointment_id).participants]
    host = SocketClient(app, flask_client=browser.client, auth={"appointment": appointment_id})
    assert not host.connected
    assert host.connect_error["data"]["code"] == "unauthorized", host.connect_error
    with app.app_context():  # and the refused connect changed nothing of the call
        appointment = db.session.get(Appointment, appointment_id)
        assert [(p.id, p.joined_call_at) for p in appointment.participants] == presence_before
        assert appointment.status is Status.SCHEDULED
