"""Finding 3 as the attack: on SQLite every transaction holds the write lock, so a sign-in that
hashed its password inside one made every other request wait behind the hash; a flood of
sign-ins (no account needed) froze the portal. Every password hash (signing in, changing one's
password, an administrator's reset or new account) now runs with no transaction open."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from argon2 import PasswordHasher
from flask import Flask
from people import PASSWORD
from support import audit_events, one_time_password

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import Role, User

NEW_PASSWORD = "a meadow of quiet lanterns"


class HeldHasher(PasswordHasher):
    """Hashes and verifies only once the test lets it: a hash that takes as long as the test
    wants."""

    def __init__(self, entered: threading.Event, release: threading.Event, **kw: Any) -> None:
        super().__init__(**kw)
        self.entered, self.release = entered, release

    def _hold(self) -> None:
        self.entered.set()
        assert self.release.wait(20), "the test never released the hash"

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        self._hold()
        return super().verify(hash, password)

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._hold()
        return super().hash(password, salt=salt)


@contextmanager
def held_hashes(app: Flask) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Every password hash of the app waits for `release`; `entered` says one has begun."""
    entered, release = threading.Event(), threading.Event()
    with app.app_context():
        found = accounts._passwords()
        app.extensions["passwords"] = dataclasses.replace(found, hasher=HeldHasher(
            entered, release, time_cost=1, memory_cost=8, parallelism=1))
    try:
        yield entered, release
    finally:
        release.set()


@contextmanager
def unheld(app: Flask) -> Iterator[None]:
    """Hashes the test's own thread makes meanwhile run at once (a gate of their own: the held
    request has the app's)."""
    held = app.extensions["passwords"]
    app.extensions["passwords"] = dataclasses.replace(
        held, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        gate=threading.BoundedSemaphore(1))
    try:
        yield
    finally:
        app.extensions["passwords"] = held


def while_hashing(app: Flask, slow: Callable[[], Any], writer: Callable[[], Any]) -> tuple[
        Any, Any]:
    """Run `slow` (a request that hashes a password) and, while its hash is held, `writer`
    (a request that writes). Asserts the writer finished without waiting for the hash;
    returns both responses."""
    results: dict[str, Any] = {}
    with held_hashes(app) as (entered, release):
        first = threading.Thread(target=lambda: results.setdefault("slow", slow()))
        second = threading.Thread(target=lambda: results.setdefault("writer", writer()))
        try:
            first.start()
            assert entered.wait(10), "the request never reached the hash"
            second.start()
            second.join(5)
            finished_during_hash = not second.is_alive()
        finally:
            release.set()
            first.join(30)
            second.join(30)
    assert finished_during_hash, "a request waited for another request's password hash"
    return results["slow"], results["writer"]


def test_a_password_hash_holds_up_no_other_request(app, people, new_browser):
    attacker = new_browser()
    attacker.get("/login")
    signed_in, signed_out = while_hashing(
        app, lambda: attacker.post("/login", {"email": people.host_a.email,
                                              "password": "a wrong guess"}),
        _signing_out(new_browser, people.host_b))
    assert (signed_in.status_code, signed_out.status_code) == (401, 302)
    assert [e.action for e in audit_events(app)][-2:] == ["auth.logout", "auth.login_failed"]


def test_a_password_changed_during_the_hash_does_not_sign_in(app, people, new_browser):
    """The outcome is written after the hash, in a transaction of its own: if the password
    changed meanwhile (a reset), the old one no longer signs in."""
    browser = new_browser()
    browser.get("/login")
    results: dict[str, Any] = {}
    with held_hashes(app) as (entered, release):
        thread = threading.Thread(target=lambda: results.setdefault("r", browser.post(
            "/login", {"email": people.host_a.email, "password": PASSWORD})))
        try:
            thread.start()
            assert entered.wait(10)
            with app.app_context(), unheld(app):  # the reset hashes at once
                user = db.session.get(User, people.host_a.id)
                assert user is not None
                accounts.reset_password(user)
                db.session.commit()
        finally:
            release.set()
            thread.join(30)
    assert results["r"].status_code == 401


def _signing_out(new_browser: Any, staff: Any) -> Callable[[], Any]:
    """A request that writes (its audit event): a signed-in host signing out."""
    other = new_browser().login(staff)
    other.get("/account/password")  # a CSRF token for the sign-out form
    return lambda: other.post("/logout")


def test_changing_ones_password_holds_up_no_other_request(app, people, new_browser):
    user = new_browser().login(people.host_a)
    user.get("/account/password")
    changed, signed_out = while_hashing(
        app, lambda: user.post("/account/password", {
            "current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
        _signing_out(new_browser, people.host_b))
    assert (changed.status_code, signed_out.status_code) == (302, 302)
    assert "user.password_changed" in [e.action for e in audit_events(app)]
    with app.app_context():
        user_row = db.session.get(User, people.host_a.id)
        assert user_row is not None
        accounts._passwords().hasher.verify(user_row.password_hash, NEW_PASSWORD)


def test_a_wrong_current_password_holds_up_no_other_request(app, people, new_browser):
    user = new_browser().login(people.host_a)
    user.get("/account/password")
    refused, signed_out = while_hashing(
        app, lambda: user.post("/account/password", {
            "current": "not my password", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
        _signing_out(new_browser, people.host_b))
    assert (refused.status_code, signed_out.status_code) == (422, 302)
    assert "current password is wrong" in refused.get_data(as_text=True)


def test_an_administrators_reset_holds_up_no_other_request(app, people, new_browser):
    admin = new_browser().login(people.admin)
    admin.get("/admin/users")
    reset, signed_out = while_hashing(
        app, lambda: admin.post(f"/admin/users/{people.host_a.id}/reset-password"),
        _signing_out(new_browser, people.host_b))
    assert (reset.status_code, signed_out.status_code) == (200, 302)
    one_time = one_time_password(reset)
    assert new_browser().post("/login", {"email": people.host_a.email,
                                         "password": one_time}).status_code == 302


def test_an_administrators_new_account_holds_up_no_other_request(app, people, new_browser):
    admin = new_browser().login(people.admin)
    admin.get("/admin/users")
    created, signed_out = while_hashing(
        app, lambda: admin.post("/admin/users", {"email": "new@example.org", "name": "New Host",
                                                 "role": "host"}),
        _signing_out(new_browser, people.host_b))
    assert (created.status_code, signed_out.status_code) == (200, 302)
    assert new_browser().post("/login", {"email": "new@example.org",
                                         "password": one_time_password(created)}
                              ).status_code == 302


def test_a_password_reset_during_ones_own_change_wins(app, people, new_browser):
    """The current password is checked with no transaction open; if an administrator reset
    it meanwhile (a stolen account), the change made with the old one is refused."""
    user = new_browser().login(people.host_a)
    user.get("/account/password")
    results: dict[str, Any] = {}
    with held_hashes(app) as (entered, release):
        thread = threading.Thread(target=lambda: results.setdefault("r", user.post(
            "/account/password", {"current": PASSWORD, "new": NEW_PASSWORD,
                                  "confirm": NEW_PASSWORD})))
        try:
            thread.start()
            assert entered.wait(10)
            with app.app_context(), unheld(app):
                row = db.session.get(User, people.host_a.id)
                assert row is not None
                one_time = accounts.reset_password(row)
                db.session.commit()
        finally:
            release.set()
            thread.join(30)
    assert results["r"].status_code == 409
    assert new_browser().post("/login", {"email": people.host_a.email,
                                         "password": NEW_PASSWORD}).status_code == 401
    assert new_browser().post("/login", {"email": people.host_a.email,
                                         "password": one_time}).status_code == 302


def test_two_new_accounts_with_one_address_at_once(app, people, new_browser):
    """The address is checked again after the hash: the second of two at once is told the
    account exists (a 409, not a 500)."""
    admin = new_browser().login(people.admin)
    admin.get("/admin/users")
    results: dict[str, Any] = {}
    with held_hashes(app) as (entered, release):
        thread = threading.Thread(target=lambda: results.setdefault("r", admin.post(
            "/admin/users", {"email": "twice@example.org", "name": "Twice", "role": "host"})))
        try:
            thread.start()
            assert entered.wait(10)
            with app.app_context(), unheld(app):
                accounts.create_user("twice@example.org", "Twice Too", Role.HOST)
                db.session.commit()
        finally:
            release.set()
            thread.join(30)
    assert results["r"].status_code == 409
    assert "exists already" in results["r"].get_data(as_text=True)
