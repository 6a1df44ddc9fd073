"""Two-step sign-in (TOTP) as an attacker meets it: a stolen administrator password alone
opens nothing, a code works once, recovery codes work once, guessing codes is throttled per
account, the secret is sealed in the database and never shown after enrolment; and as the
people who use it: enrolment by QR code, the hosts' policy, the operator's reset."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime

import pyotp
import pytest
from apps import make_app
from flask import Flask
from people import PASSWORD, Browser, Staff, current_step, next_code, totp_code
from sqlalchemy import select
from support import audit_events, hand_clock

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import RecoveryCode, Role, User

SECRET_RE = re.compile(r'id="mfa-secret">([A-Z2-7 ]+)<')
CODES_RE = re.compile(r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>")


def signed_in(browser: Browser) -> bool:
    return browser.get("/appointments/").status_code == 200


def password_step(browser: Browser, staff: Staff) -> str:
    response = browser.post("/login", {"email": staff.email, "password": staff.password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def new_admin(app: Flask, email: str = "admin2@example.org") -> Staff:
    with app.app_context():
        user, _ = accounts.create_user(email, "Second Admin", Role.ADMIN, PASSWORD)
        user.must_change_password = False
        db.session.commit()
        return Staff(user.id, email)


def shown_secret(response) -> str:
    match = SECRET_RE.search(response.get_data(as_text=True))
    assert match, "the enrolment page shows no key"
    return match.group(1).replace(" ", "")


def enrol_through_pages(browser: Browser) -> tuple[str, list[str]]:
    page = browser.get("/account/mfa")
    assert page.status_code == 200
    secret = shown_secret(page)
    response = browser.post("/account/mfa", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200, response.get_data(as_text=True)
    codes = CODES_RE.findall(response.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


# --- administrators ------------------------------------------------------------------------------


def test_an_administrators_password_alone_opens_nothing(app, people, browser):
    assert password_step(browser, people.admin) == "/login/code"
    for path in ("/admin/users", "/admin/audit", "/appointments/", "/account/password"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith(
            "/login"), path
    assert audit_events(app, "auth.login") == []
    response = browser.post("/login/code", {"code": next_code(app, people.admin)})
    assert response.status_code == 302
    assert browser.get("/admin/users").status_code == 200
    login = audit_events(app, "auth.login")[-1]
    assert '"second_factor":"totp"' in login.details
    assert [e.action for e in audit_events(app)][-2:] == ["mfa.verified", "auth.login"]


def test_a_wrong_code_is_refused_and_audited(app, people, browser):
    password_step(browser, people.admin)
    for code in ("000000", "12345", "abcdef", "1" * 32):
        response = browser.post("/login/code", {"code": code})
        assert response.status_code == 401
    assert not signed_in(browser)
    assert len(audit_events(app, "mfa.failed")) == 4
    assert browser.post("/login/code", {"code": "1" * 33}).status_code == 400


def test_a_code_is_good_once(app, people, new_browser):
    """A code seen over a shoulder (or phished) cannot be used again in its 30 seconds."""
    first = new_browser()
    password_step(first, people.admin)
    code = next_code(app, people.admin)
    assert first.post("/login/code", {"code": code}).status_code == 302
    second = new_browser()
    password_step(second, people.admin)
    assert second.post("/login/code", {"code": code}).status_code == 401
    assert not signed_in(second)


def test_an_administrator_without_a_second_factor_sets_it_up_first(app, people, new_browser):
    admin2 = new_admin(app)
    browser = new_browser()
    assert password_step(browser, admin2) == "/account/mfa"
    assert browser.get("/admin/users").status_code == 302  # half signed in: nothing else
    page = browser.get("/account/mfa")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<svg" in html and "<img" not in html  # the portal draws the QR code itself
    assert "http" not in html.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org/2000/svg", "")  # nothing fetched from elsewhere
    assert "style=" not in html  # nothing the Content-Security-Policy would refuse
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    secret = shown_secret(page)

    response = browser.post("/account/mfa", {"code": "000000"})
    assert response.status_code == 422 and shown_secret(response) == secret
    assert len(audit_events(app, "mfa.enrol_failed")) == 1
    assert not signed_in(browser)

    response = browser.post("/account/mfa", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = CODES_RE.findall(response.get_data(as_text=True))
    assert len(set(codes)) == 10
    assert signed_in(browser) and browser.get("/admin/users").status_code == 200
    assert [e.action for e in audit_events(app)][-2:] == ["mfa.enrolled", "auth.login"]
    # Never shown again.
    again = browser.get("/account/mfa").get_data(as_text=True)
    assert secret not in again and "Recovery codes left: 10." in again
    for code in codes:
        assert code not in again


def test_a_session_without_the_required_factor_is_sent_to_set_it_up(app, people, new_browser):
    """A session from before two-step sign-in (or a policy change) reaches nothing else."""
    admin2 = new_admin(app)
    browser = new_browser()
    with browser.client.session_transaction() as session:
        session["_user_id"] = f"{admin2.id}.0"
        session["signed_in_at"] = session["seen_at"] = datetime.now(UTC).timestamp()
    for path in ("/admin/users", "/appointments/", "/"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/account/mfa"
    assert browser.get("/account/mfa").status_code == 200


def test_the_secret_is_sealed_in_the_database(app, people, new_browser):
    browser = new_browser()
    password_step(browser, new_admin(app))
    secret, _codes = enrol_through_pages(browser)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "admin2@example.org"))
        assert user is not None and user.mfa_secret
        assert secret not in user.mfa_secret and secret.lower() not in user.mfa_secret.lower()
        hashes = list(db.session.scalars(select(RecoveryCode.code_hash).where(
            RecoveryCode.user_id == user.id)))
    assert len(hashes) == 10 and all(len(h) == 64 for h in hashes)


def test_the_sealed_secret_is_bound_to_its_account(app, people, new_browser):
    """Copying an attacker's own sealed secret onto the administrator's row gains nothing."""
    browser = new_browser()
    password_step(browser, new_admin(app))
    mine, _codes = enrol_through_pages(browser)
    with app.app_context():
        attacker = db.session.scalar(select(User).where(User.email == "admin2@example.org"))
        victim = db.session.get(User, people.admin.id)
        assert attacker is not None and victim is not None
        victim.mfa_secret = attacker.mfa_secret
        db.session.commit()
    other = new_browser()
    password_step(other, people.admin)
    assert other.post("/login/code", {"code": pyotp.TOTP(mine).now()}).status_code == 401


def test_recovery_codes_work_once(app, people, new_browser):
    browser = new_browser()
    admin2 = new_admin(app)
    password_step(browser, admin2)
    _secret, codes = enrol_through_pages(browser)
    first = new_browser()
    password_step(first, admin2)
    response = first.post("/login/code", {"code": codes[3].upper().replace("-", " ")})
    assert response.status_code == 302 and signed_in(first)
    assert '"recovery_codes_left":9' in audit_events(app, "mfa.verified")[-1].details
    again = new_browser()
    password_step(again, admin2)
    assert again.post("/login/code", {"code": codes[3]}).status_code == 401


def test_guessing_codes_is_throttled_per_account(app, people, new_browser):
    """Each wrong code counts as a wrong password for the account, from any address; after
    five the right code waits too, and so does the password step (signing in with the
    password again does not reset the count)."""
    clock = hand_clock(app)
    owner = new_browser()
    password_step(owner, people.admin)
    for n in range(5):
        guesser = new_browser()
        password_step(guesser, people.admin)
        response = guesser.post("/login/code", {"code": f"{n:06d}"},
                                environ_base={"REMOTE_ADDR": f"127.0.0.{n + 2}"})
        assert response.status_code == 401
    response = owner.post("/login/code", {"code": next_code(app, people.admin)})
    assert response.status_code == 429
    assert "Try again at" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) >= 30  # Flask-Limiter may name a later time
    assert len(audit_events(app, "mfa.throttled")) == 1
    assert new_browser().post("/login", {"email": people.admin.email,
                                         "password": PASSWORD}).status_code == 429
    clock.advance(31)
    response = owner.post("/login/code", {"code": next_code(app, people.admin)})
    assert response.status_code == 302 and signed_in(owner)


def test_the_half_signed_in_state_expires(app, people, browser):
    clock = hand_clock(app)
    password_step(browser, people.admin)
    clock.advance(301)
    response = browser.post("/login/code", {"code": next_code(app, people.admin)})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert not signed_in(browser)


def test_the_code_page_is_rate_limited_per_address(sqlite_people_template, tmp_path):
    path = tmp_path / "limited.sqlite3"
    shutil.copy(sqlite_people_template[0], path)
    people = sqlite_people_template[1]
    app = make_app(f"sqlite:///{path}", tmp_path, LOGIN_RATE_LIMIT="3 per minute",
                   LOGIN_THROTTLE_AFTER=100)
    browser = Browser(app.test_client())
    password_step(browser, Staff(people.admin.id, people.admin.email))
    for _ in range(3):
        assert browser.post("/login/code", {"code": "000000"}).status_code == 401
    assert browser.post("/login/code", {"code": "000001"}).status_code == 429
    with app.app_context():
        db.engine.dispose()


# --- hosts: the deployment's policy ---------------------------------------------------------------


def test_hosts_may_sign_in_with_a_password_by_default(app, people, browser):
    assert password_step(browser, people.host_a) == "/appointments/"
    assert signed_in(browser)


def test_a_host_who_turned_it_on_needs_the_code(app, people, new_browser):
    browser = new_browser().login(people.host_a)
    secret, _codes = enrol_through_pages(browser)
    assert signed_in(browser)  # this session was renewed; others ended
    other = new_browser()
    assert password_step(other, people.host_a) == "/login/code"
    assert not signed_in(other)
    assert other.post("/login/code", {"code": totp_code(secret, current_step_of(app) + 1)}
                      ).status_code == 302


def current_step_of(app: Flask) -> int:
    with app.app_context():
        return current_step()


def test_hosts_must_set_it_up_where_the_deployment_says_so(sqlite_people_template, tmp_path):
    path = tmp_path / "required.sqlite3"
    shutil.copy(sqlite_people_template[0], path)
    people = sqlite_people_template[1]
    app = make_app(f"sqlite:///{path}", tmp_path, MFA_HOSTS="required")
    browser = Browser(app.test_client())
    assert password_step(browser, Staff(people.host_a.id, people.host_a.email)) == "/account/mfa"
    assert browser.get("/appointments/").status_code == 302
    enrol_through_pages(browser)
    assert signed_in(browser)
    with app.app_context():
        db.engine.dispose()


def test_the_policy_setting_is_checked(monkeypatch, tmp_path):
    from portal.config import settings

    monkeypatch.setenv("PORTAL_MFA_HOSTS", "sometimes")
    with pytest.raises(RuntimeError, match="PORTAL_MFA_HOSTS"):
        settings(tmp_path)


# --- who has it: the administrator's list and the command line --------------------------------


@pytest.mark.parametrize("hosts", ["optional", "required"])
def test_the_lists_of_accounts_show_who_has_two_step_sign_in(app, people, new_browser, runner,
                                                             hosts):
    """An administrator can see who has not set it up: the users page and `users list`."""
    enrol_through_pages(new_browser().login(people.host_b))
    app.config["MFA_HOSTS"] = hosts
    host_a = "missing" if hosts == "required" else "off"
    expected = {people.admin.email: "on", people.host_a.email: host_a,
                people.host_b.email: "on"}
    page = new_browser().login(people.admin).get("/admin/users").get_data(as_text=True)
    label = {"on": "on", "off": "off", "missing": "required, not set up yet"}
    for email, state in expected.items():
        row = re.search(rf"<td>{re.escape(email)}</td>.*?</tr>", page, re.S)
        assert row, email
        assert f'<td class="mfa-{state}">{label[state]}</td>' in row.group(0), row.group(0)
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    listed = {line.split("\t")[1]: line.split("\t")[4] for line in result.output.splitlines()}
    assert listed == {email: f"mfa:{state}" for email, state in expected.items()}


# --- the operator's reset -------------------------------------------------------------------------


def test_reset_mfa_ends_sessions_and_asks_to_set_it_up_again(app, people, new_browser, runner):
    admin = new_browser().login(people.admin)
    result = runner.invoke(args=["users", "reset-mfa", people.admin.email])
    assert result.exit_code == 0, result.output
    assert not signed_in(admin)
    assert len(audit_events(app, "mfa.reset")) == 1
    with app.app_context():
        user = db.session.get(User, people.admin.id)
        assert user is not None and user.mfa_secret is None and not user.has_mfa
        assert db.session.scalars(select(RecoveryCode).where(
            RecoveryCode.user_id == user.id)).all() == []
    browser = new_browser()
    assert password_step(browser, people.admin) == "/account/mfa"
    assert runner.invoke(args=["users", "reset-mfa", "nobody@example.org"]).exit_code == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_code_is_taken_once_even_by_two_requests_at_once(app, people):
    """The last used step moves forward by a conditional UPDATE: a second request that checked
    the same code before the first wrote cannot take its step again."""
    from portal.accounts import mfa

    with app.app_context():
        user = db.session.get(User, people.admin.id)
        assert user is not None
        step = current_step()
        assert mfa._take_step(user, step) is True
        db.session.commit()
        assert mfa._take_step(user, step) is False
        assert mfa._take_step(user, step - 1) is False
        db.session.rollback()
