"""A hearing with a court's roles, made directly with the models, and its people's sockets,
for the court procedure's socket tests (test_court_events.py): a judge, a clerk and a panel
member with staff accounts of their own, counsel representing a party, a witness with an
interpreter, an observer; and an app whose hearings go through a fake VideoRoom."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from apps import make_app
from calls import guest_socket, join_call
from fake_videoroom import FakeVideoRoom
from flask import Flask
from people import PASSWORD, Browser, People, Staff
from support import SocketClient, book

from portal.accounts import services as accounts
from portal.appointments import services as appointments
from portal.extensions import db
from portal.models import (
    Appointment,
    Kind,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    Representation,
    Role,
    User,
)

R = ParticipantRole
#: name -> role of the guests (the interpreter interprets for the witness; counsel
#: represents the party; "other party" has no counsel).
GUESTS = {"counsel": R.COUNSEL, "party": R.PARTY, "other party": R.PARTY,
          "witness": R.WITNESS, "interpreter": R.INTERPRETER, "observer": R.OBSERVER}


@contextmanager
def janus_app(template: Path, files: Path) -> Iterator[tuple[Flask, FakeVideoRoom]]:
    """An app on a copy of the people's template whose Janus is a fake VideoRoom."""
    fake = FakeVideoRoom()
    path = files / "portal.sqlite3"
    shutil.copy(template, path)
    app = make_app(f"sqlite:///{path}", files, JANUS_URLS=[fake.url],
                   JANUS_API_SECRET="test-api-secret", JANUS_ADMIN_KEY="test-admin-key")
    try:
        yield app, fake
    finally:
        app.extensions["recording"].shutdown()
        app.extensions["janus"].close()
        fake.close()
        with app.app_context():
            db.engine.dispose()


@dataclass
class Court:
    """The hearing: participant ids by name, the staff's accounts, the guests' tokens."""

    id: int
    ids: dict[str, int]
    staff: dict[str, Staff]
    tokens: dict[str, str] = field(default_factory=dict)


def _staff_user(email: str, name: str) -> Staff:
    user, _ = accounts.create_user(email, name, Role.HOST, PASSWORD)
    user.must_change_password = False
    db.session.flush()
    return Staff(user.id, email)


def make_court(app: Flask, people: People) -> Court:
    """Host A books the hearing; host B sits as its clerk, two new accounts as judge and
    panel member."""
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(0), minutes=60,
                          kind=Kind.HEARING, title="R v Doe", policy=RecordingPolicy.OFF)
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        staff = {"judge": _staff_user("judge@example.org", "Judge"),
                 "clerk": Staff(people.host_b.id, people.host_b.email),
                 "panel": _staff_user("panel@example.org", "Panel")}
        for name, role in (("judge", R.JUDGE), ("clerk", R.CLERK), ("panel", R.PANEL)):
            user = db.session.get(User, staff[name].id)
            assert user is not None
            appointment.participants.append(Participant(
                display_name=user.name, role=role, user_id=user.id))
        tokens = {}
        for name, role in GUESTS.items():
            _guest, tokens[name] = appointments.add_guest(appointment, display_name=name,
                                                           role=role)
        db.session.flush()
        ids = {p.display_name if p.user_id is None else _staff_name(staff, p.user_id): p.id
               for p in appointment.participants}
        interpreter = db.session.get(Participant, ids["interpreter"])
        assert interpreter is not None
        interpreter.interprets_for_id, interpreter.language = ids["witness"], "pl"
        db.session.add(Representation(counsel_id=ids["counsel"], party_id=ids["party"]))
        db.session.commit()
    return Court(appointment_id, ids, staff, tokens)


def _staff_name(staff: dict[str, Staff], user_id: int) -> str:
    return next((name for name, s in staff.items() if s.id == user_id), "host")


def staff_socket(app: Flask, court: Court, name: str) -> SocketClient:
    browser = Browser(app.test_client()).login(court.staff[name])
    sock = SocketClient(app, flask_client=browser.client, auth={"appointment": court.id},
                        label=name)
    assert sock.connected, f"{name} refused: {sock.connect_error!r}"
    sock.only("welcome")
    return sock


def everyone_in(app: Flask, court: Court) -> dict[str, SocketClient]:
    """Every one of the hearing's people (but the booking host) in the call, admitted by the
    clerk; queues emptied."""
    socks = {name: staff_socket(app, court, name) for name in ("judge", "clerk", "panel")}
    for sock in socks.values():
        join_call(sock)
    for name in GUESTS:
        guest = guest_socket(app, court.tokens[name], label=name)
        guest.emit("lobby:join", {})
        socks["clerk"].emit("lobby:admit", {"participant_id": guest.id})
        socks["clerk"].no_errors()
        join_call(guest)
        socks[name] = guest
    for sock in socks.values():
        sock.unread()
        sock._unread.clear()
    return socks


def publish_all(fake: FakeVideoRoom, court: Court, socks: dict[str, SocketClient]) -> None:
    """Everyone who may publishes (the observer's is refused); until the fake has them all."""
    sdp = "v=0\r\no=- 3 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    for sock in socks.values():
        sock.emit("hearing:publish", {"sdp": sdp})
    publishing = {court.ids[name] for name in socks if name != "observer"}
    fake.wait(lambda: fake.publishing >= publishing)
    assert [e["code"] for e in socks["observer"].take("error")] == ["forbidden"]
    for sock in socks.values():
        sock.no_errors()


def participant(app: Flask, participant_id: int) -> Participant:
    with app.app_context():
        p = db.session.get(Participant, participant_id)
        assert p is not None
        db.session.expunge(p)
        return p


def stage(app: Flask, court: Court) -> Any:
    with app.app_context():
        appointment = db.session.get(Appointment, court.id)
        assert appointment is not None
        return appointment.hearing_stage
