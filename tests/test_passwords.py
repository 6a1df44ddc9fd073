"""Finding 9 as attacks: a common password or one built on the user's own name or address is
refused; guessing one account's password from many addresses meets a growing wait (ASVS
2.2.1) that refuses even the right password until it ends, and then lets the real user in."""

from __future__ import annotations

import pytest
from people import PASSWORD, Browser, Staff
from sqlalchemy import select
from support import audit_events, hand_clock, snapshot

from portal.accounts import passwords
from portal.accounts import services as accounts
from portal.errors import DomainError
from portal.extensions import db
from portal.models import LoginThrottle, Role

NEW = "a brand new passphrase"


def signed_in(browser: Browser) -> bool:
    return browser.get("/appointments/").status_code == 200


# --- what a password may be ----------------------------------------------------------------------


@pytest.mark.parametrize("candidate,message", [
    ("password1234", "one of the most common"),
    ("PASSWORD1234", "one of the most common"),
    ("qwertyuiop123", "one of the most common"),
    ("1q2w3e4r5t6y", "one of the most common"),
    ("a@example.org2024", "must not contain your e-mail address"),
    ("A@EXAMPLE.ORG!!!!", "must not contain your e-mail address"),
    ("Host A Host A 2024", "built on your name or e-mail"),
    ("hostahosta123", "built on your name or e-mail"),
    ("example.org.example", "built on your name or e-mail"),
])
def test_a_weak_new_password_is_refused(app, people, new_browser, candidate, message):
    host = new_browser().login(people.host_a)
    before = snapshot(app)
    response = host.post("/account/password", {"current": PASSWORD, "new": candidate,
                                                "confirm": candidate})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize("candidate", [
    NEW, "correct horse battery staple", "Hostile takeover of 1987", "839201748392",
    "tangerine example of mine",  # the domain's name inside a longer, own passphrase
])
def test_a_good_password_passes(candidate):
    passwords.check(candidate, email="a@example.org", name="Host A")


def test_the_list_is_the_shipped_one():
    common = passwords.common_passwords()
    assert len(common) > 40_000
    assert all(len(p) >= passwords.MIN_LENGTH for p in common)
    assert (passwords.COMMON.parent / "common_passwords.README.md").exists()


def test_an_account_cannot_be_made_with_a_common_or_own_password(app):
    with app.app_context():
        for password in ("password1234", "kari.nordmann@example.org"):
            with pytest.raises(DomainError):
                accounts.create_user("kari.nordmann@example.org", "Kari Nordmann", Role.HOST,
                                     password)


# --- per-account throttling ----------------------------------------------------------------------


def guess(app, email: str, password: str, address: str):
    browser = Browser(app.test_client())
    return browser.post("/login", {"email": email, "password": password},
                        environ_base={"REMOTE_ADDR": address})


def test_guessing_from_many_addresses_meets_a_growing_wait(app, people):
    """The review's attack: 30 wrong passwords from 3 addresses (10 each, under the per-address
    limit), then the right one. It must not sign in at once."""
    clock = hand_clock(app)
    statuses = [guess(app, people.host_a.email, f"wrong guess number {i}",
                      f"127.0.0.{2 + i % 3}").status_code for i in range(30)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    response = guess(app, people.host_a.email, PASSWORD, "127.0.0.9")
    assert response.status_code == 429
    text = response.get_data(as_text=True)
    assert "Too many failed sign-ins for this account. Try again at" in text
    assert "(in 1 min)" in text
    throttled = audit_events(app, "auth.login_throttled")
    assert len(throttled) == 26 and throttled[-1].object_id == str(people.host_a.id)
    assert '"retry_after":30' in throttled[-1].details
    # Attempts during the wait were not checked and did not lengthen it: the wait ends and
    # the real user signs in at the first try.
    clock.advance(30)
    browser = Browser(app.test_client())
    browser.login(Staff(people.host_a.id, people.host_a.email))
    assert signed_in(browser)
    # A success forgets the failures.
    assert guess(app, people.host_a.email, "one more wrong one", "127.0.0.10").status_code == 401


def test_each_further_failure_doubles_the_wait_up_to_the_cap(app, people):
    clock = hand_clock(app)
    waits = []
    for i in range(12):
        response = guess(app, people.host_b.email, "still the wrong one", f"127.0.1.{i}")
        assert response.status_code == 401
        with app.app_context():
            row = db.session.scalars(select(LoginThrottle)).one()
            if row.wait_until is not None:
                waits.append(round((row.wait_until - clock.now()).total_seconds()))
                clock.advance(waits[-1])
            db.session.rollback()
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


def test_unknown_addresses_are_throttled_alike(app, people):
    """No difference that would tell an attacker which addresses have accounts."""
    clock = hand_clock(app)
    for n, email in enumerate(("nobody@example.org", people.host_a.email)):
        statuses = [guess(app, email, "wrong guess here", f"127.0.0.{2 + n}").status_code
                    for _ in range(6)]
        assert statuses == [401] * 5 + [429], email
    clock.advance(30)
    assert guess(app, "nobody@example.org", PASSWORD, "127.0.0.4").status_code == 401


def test_the_throttle_keeps_no_strangers_address(app, people):
    guess(app, "stranger@example.org", "wrong guess here", "127.0.0.2")
    rows = snapshot(app)["login_throttles"]
    assert len(rows) == 1 and "stranger" not in repr(rows)


def test_old_failures_are_forgotten(app, people):
    clock = hand_clock(app)
    for _ in range(4):
        guess(app, people.host_a.email, "wrong guess here", "127.0.0.2")
    clock.advance(24 * 3600 + 1)
    assert guess(app, people.host_a.email, "wrong guess here", "127.0.0.2").status_code == 401
    assert guess(app, people.host_a.email, "wrong guess here", "127.0.0.2").status_code == 401
    with app.app_context():
        db.session.remove()
