"""Helpers for the tests of a hearing's booking: staff accounts made on the spot, hearings
booked through the real services, and an API client holding one staff member's token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from people import PASSWORD, Staff
from support import now

from portal.accounts import services as accounts
from portal.appointments import hearing
from portal.appointments.hearing import Seat
from portal.extensions import db
from portal.models import Kind, RecordingPolicy, Role, User


def add_staff(app: Flask, email: str, name: str) -> Staff:
    """A host account with the tests' password, ready to sign in."""
    with app.app_context():
        user, _ = accounts.create_user(email, name, Role.HOST, PASSWORD)
        user.must_change_password = False
        db.session.commit()
        return Staff(user.id, email)


def book_hearing(app: Flask, host_id: int, seats: list[Seat], *,
                 starts_in: timedelta = timedelta(minutes=10), title: str = "Case 17",
                 observer_link: bool = False) -> tuple[int, dict[str, tuple[int, str | None]],
                                                       str | None]:
    """A hearing with its people; returns its id, {ref: (participant id, invite token)} and
    the observer link's token."""
    with app.app_context():
        host = db.session.get(User, host_id)
        assert host is not None
        booked = hearing.book_hearing(
            host, seats, observer_link=observer_link, kind=Kind.HEARING, title=title,
            starts_at=(now() + starts_in).replace(second=0, microsecond=0),
            duration_minutes=60, recording_policy=RecordingPolicy.NOTICE)
        db.session.commit()
        made = {one.ref or str(one.participant.id): (one.participant.id, one.token)
                for one in booked.added}
        return booked.appointment.id, made, booked.observer_token


@dataclass
class Api:
    """A test client that sends one staff member's bearer token with every request."""

    client: FlaskClient
    token: str

    @classmethod
    def of(cls, app: Flask, user_id: int) -> Api:
        with app.app_context():
            _, plain = accounts.issue_api_token(db.session.get(User, user_id), "Case system")
            db.session.commit()
        return cls(app.test_client(), plain)

    def call(self, method: str, url: str, json: Any = None) -> Any:
        return self.client.open(url, method=method, json=json,
                                headers={"Authorization": f"Bearer {self.token}"})
