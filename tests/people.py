"""Who uses the portal in the tests: staff with known passwords (the `people` fixture's
administrator and two hosts, added once per template database; the administrator has two-step
sign-in, as administrators must) and `Browser`, a test client that signs in (with the TOTP code
where the account has one) and sends the CSRF token with every form, as a page does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from apps import make_app
from flask import Flask
from flask.testing import FlaskClient

from portal.accounts import mfa
from portal.accounts import services as accounts
from portal.clock import clock
from portal.extensions import db
from portal.models import Role, User

PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Staff:
    id: int
    email: str
    password: str = PASSWORD
    #: The TOTP secret of an account with two-step sign-in.
    totp_secret: str | None = None


@dataclass
class People:
    admin: Staff
    host_a: Staff
    host_b: Staff


def add_people(url: str, files: Path) -> People:
    """Add the administrator and two hosts of the `people` fixture to a migrated database."""
    made = {}
    app = make_app(url, files)
    with app.app_context():
        for key, email, role in (("admin", "admin@example.org", Role.ADMIN),
                                 ("host_a", "a@example.org", Role.HOST),
                                 ("host_b", "b@example.org", Role.HOST)):
            user, _ = accounts.create_user(email, key.replace("_", " ").title(), role, PASSWORD)
            user.must_change_password = False
            db.session.commit()
            made[key] = Staff(user.id, email)
        # Administrators must have a second factor: the fourth audit event.
        admin = db.session.get(User, made["admin"].id)
        assert admin is not None
        made["admin"].totp_secret = enrol(admin)
        admin.mfa_last_step = None  # every test's copy starts with no code used yet
        db.session.commit()
        db.session.remove()  # its connection back, so that dispose closes it (the WAL ends)
        db.engine.dispose()
    return People(**made)


def enrol(user: User) -> str:
    """Turn two-step sign-in on for a user, as the enrolment page does; returns the secret."""
    secret = mfa.begin_enrolment(user)
    assert accounts.confirm_mfa(user, totp_code(secret, current_step())) is not None
    return secret


def current_step() -> int:
    """The TOTP step of the current app's clock (a test can move it: support.hand_clock)."""
    return int(clock().now().timestamp()) // mfa.STEP_SECONDS


def totp_code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, interval=mfa.STEP_SECONDS).generate_otp(step)


def next_code(app: Flask, staff: Staff) -> str:
    """A code the portal will take now: the current step's, or the next one's if that was
    used (each code is good once); a third sign-in within one step needs the clock moved."""
    assert staff.totp_secret, f"{staff.email} has no second factor"
    with app.app_context():
        user = db.session.get(User, staff.id)
        assert user is not None
        now, last = current_step(), user.mfa_last_step
        db.session.rollback()
    step = now if last is None or last < now else last + 1
    assert step <= now + mfa.DRIFT_STEPS, "every code of this moment is used: move the clock"
    return totp_code(staff.totp_secret, step)


class Browser:
    """A test client that, like a page, sends the session's CSRF token with every form."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._csrf: str | None = None

    def get(self, url: str, **kw: Any) -> Any:
        response = self.client.get(url, **kw)
        if response.mimetype != "text/html":
            return response
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self._csrf = match.group(1)
        return response

    def csrf(self) -> str:
        if self._csrf is None:
            self.get("/login")
        if self._csrf is None:
            self.get("/account/password")
        assert self._csrf, "no page offered a CSRF token"
        return self._csrf

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kw: Any) -> Any:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf())
        response = self.client.post(url, data=data, **kw)
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self._csrf = match.group(1)
        return response

    def login(self, staff: Staff) -> Browser:
        self.get("/login")  # a fresh token, as a page has: signing out ended the old one's session
        response = self.post("/login", {"email": staff.email, "password": staff.password})
        assert response.status_code == 302, response.get_data(as_text=True)
        if response.headers["Location"].startswith("/login/code"):
            self.get("/login/code")
            response = self.post("/login/code", {
                "code": next_code(self.client.application, staff)})
            assert response.status_code == 302, response.get_data(as_text=True)
        self._csrf = None  # Flask-Login renews the session
        return self
