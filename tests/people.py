"""Who uses the portal in the tests: staff with known passwords (the `people` fixture's
administrator and two hosts, added once per template database) and `Browser`, a test client
that signs in and sends the CSRF token with every form, as a page does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps import make_app
from flask.testing import FlaskClient

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import Role

PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Staff:
    id: int
    email: str
    password: str = PASSWORD


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
        db.session.remove()  # its connection back, so that dispose closes it (the WAL ends)
        db.engine.dispose()
    return People(**made)


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
        self._csrf = None  # Flask-Login renews the session
        return self
