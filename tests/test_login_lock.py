"""Finding 3 as the attack: on SQLite every transaction holds the write lock, so a sign-in that
hashed its password inside one made every other request wait behind the hash; a flood of
sign-ins (no account needed) froze the portal. The hash now runs with no transaction open."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from argon2 import PasswordHasher
from people import PASSWORD
from support import audit_events

from portal.accounts import services as accounts


class HeldHasher(PasswordHasher):
    """Verifies only once the test lets it: a hash that takes as long as the test wants."""

    def __init__(self, entered: threading.Event, release: threading.Event, **kw: Any) -> None:
        super().__init__(**kw)
        self.entered, self.release = entered, release

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        self.entered.set()
        assert self.release.wait(20), "the test never released the hash"
        return super().verify(hash, password)


def test_a_password_hash_holds_up_no_other_request(app, people, new_browser):
    other = new_browser().login(people.host_b)  # signed in before the hash is held
    other.get("/account/password")  # a CSRF token for the sign-out form
    attacker = new_browser()
    attacker.get("/login")
    entered, release = threading.Event(), threading.Event()
    with app.app_context():
        found = accounts._passwords()
        held = HeldHasher(entered, release, time_cost=found.hasher.time_cost,
                          memory_cost=found.hasher.memory_cost,
                          parallelism=found.hasher.parallelism)
        app.extensions["passwords"] = dataclasses.replace(found, hasher=held)
    results: dict[str, int] = {}

    def sign_in() -> None:
        results["sign-in"] = attacker.post("/login", {"email": people.host_a.email,
                                                      "password": "a wrong guess"}).status_code

    def sign_out() -> None:  # a request that writes (its audit event)
        results["sign-out"] = other.post("/logout").status_code

    flood = threading.Thread(target=sign_in)
    writer = threading.Thread(target=sign_out)
    try:
        flood.start()
        assert entered.wait(10), "the sign-in never reached the hash"
        writer.start()
        writer.join(5)
        finished_during_hash = not writer.is_alive()
    finally:
        release.set()
        flood.join(30)
        writer.join(30)
    assert finished_during_hash, "a request waited for another request's password hash"
    assert results == {"sign-in": 401, "sign-out": 302}
    assert [e.action for e in audit_events(app)][-2:] == ["auth.logout", "auth.login_failed"]


def test_a_password_changed_during_the_hash_does_not_sign_in(app, people, new_browser):
    """The outcome is written after the hash, in a transaction of its own: if the password
    changed meanwhile (a reset), the old one no longer signs in."""
    entered, release = threading.Event(), threading.Event()
    browser = new_browser()
    browser.get("/login")
    with app.app_context():
        found = accounts._passwords()
        app.extensions["passwords"] = dataclasses.replace(found, hasher=HeldHasher(
            entered, release, time_cost=1, memory_cost=8, parallelism=1))
    results: dict[str, int] = {}
    thread = threading.Thread(target=lambda: results.setdefault("status", browser.post(
        "/login", {"email": people.host_a.email, "password": PASSWORD}).status_code))
    try:
        thread.start()
        assert entered.wait(10)
        with app.app_context():
            app.extensions["passwords"] = found  # the reset hashes normally
            from portal.extensions import db
            from portal.models import User

            user = db.session.get(User, people.host_a.id)
            assert user is not None
            accounts.reset_password(user)
            db.session.commit()
    finally:
        release.set()
        thread.join(30)
    assert results == {"status": 401}
