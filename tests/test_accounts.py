"""Staff accounts: password storage, sign-in, disabling, resets, rate limits, redirects, CSRF
and cookies."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta

import pytest
from apps import make_app
from argon2 import PasswordHasher
from people import PASSWORD, Browser, Staff
from sqlalchemy import func, select
from support import audit_events, book, invite, local_input, now, one_time_password, snapshot

from portal.accounts import services as accounts
from portal.config import settings
from portal.errors import Conflict
from portal.extensions import db
from portal.models import Role, User

NEW_PASSWORD = "a brand new passphrase"


def stored_hash(app, user_id: int) -> str:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        return user.password_hash


def signed_in(browser: Browser) -> bool:
    return browser.get("/appointments/").status_code == 200


# --- passwords and sign-in ---------------------------------------------------------------------


def test_password_is_stored_as_argon2id(app, people):
    digest = stored_hash(app, people.host_a.id)
    assert digest.startswith("$argon2id$")
    assert PASSWORD not in digest
    assert PasswordHasher().verify(digest, PASSWORD)


def test_production_hashes_use_argon2_cffi_defaults(tmp_path):
    defaults = PasswordHasher()
    configured = settings(tmp_path)
    assert (configured["ARGON2_TIME_COST"], configured["ARGON2_MEMORY_COST"],
            configured["ARGON2_PARALLELISM"]) == (
        defaults.time_cost, defaults.memory_cost, defaults.parallelism)


def test_a_hash_with_other_parameters_signs_in_and_is_rehashed(app, people, browser):
    """Tests hash with the cheapest parameters; a hash made with the production ones (argon2
    keeps them in the hash) still verifies, and sign-in rehashes it with the app's."""
    production = PasswordHasher().hash(PASSWORD)
    with app.app_context():
        user = db.session.get(User, people.host_a.id)
        assert user is not None
        user.password_hash = production
        db.session.commit()
    browser.login(people.host_a)
    assert signed_in(browser)
    digest = stored_hash(app, people.host_a.id)
    assert digest != production and digest.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert PasswordHasher().verify(digest, PASSWORD)
    assert browser.post("/logout").status_code == 302
    assert not signed_in(browser)
    browser.login(people.host_a)  # no needless rehash: the stored one has the app's parameters
    assert stored_hash(app, people.host_a.id) == digest


def test_sign_in_records_the_login(app, people, browser):
    browser.login(people.host_a)
    assert signed_in(browser)
    logins = audit_events(app, "auth.login")
    assert [(e.actor_type, e.actor_id, e.object_id) for e in logins] == [
        ("user", str(people.host_a.id), str(people.host_a.id))]


@pytest.mark.parametrize("email,password", [
    ("a@example.org", "wrong password entirely"),
    ("A@Example.org ", "wrong password entirely"),
    ("nobody@example.org", PASSWORD),
])
def test_wrong_credentials(app, people, browser, email, password):
    response = browser.post("/login", {"email": email, "password": password})
    assert response.status_code == 401
    assert "Wrong e-mail address or password" in response.get_data(as_text=True)
    assert not signed_in(browser)
    failed = audit_events(app, "auth.login_failed")
    assert len(failed) == 1
    assert failed[0].actor_type == "anonymous"
    assert '"reason":"bad_credentials"' in failed[0].details
    assert password not in failed[0].details and email.strip() not in failed[0].details


def test_email_is_case_insensitive(people, browser):
    response = browser.post("/login", {"email": " A@EXAMPLE.ORG", "password": PASSWORD})
    assert response.status_code == 302


def test_sign_out_ends_the_session(app, people, browser):
    browser.login(people.host_a)
    response = browser.post("/logout")
    assert response.status_code == 302
    assert not signed_in(browser)
    assert len(audit_events(app, "auth.logout")) == 1


@pytest.mark.parametrize("data", [
    {},
    {"email": "a@example.org"},
    {"password": PASSWORD},
    {"email": "a" * 10_000 + "@example.org", "password": PASSWORD},
    {"email": "a@example.org", "password": "x" * 100_000},
])
def test_login_garbage_is_refused(app, people, browser, data):
    before = snapshot(app)
    response = browser.post("/login", data)
    assert response.status_code == 400
    assert snapshot(app) == before


# --- disabling ---------------------------------------------------------------------------------


def test_disabled_account_is_signed_out_and_cannot_sign_in(app, people, new_browser):
    host = new_browser().login(people.host_a)
    admin = new_browser().login(people.admin)
    response = admin.post(f"/admin/users/{people.host_a.id}/disable")
    assert response.status_code == 302

    response = host.get("/appointments/")  # the open session is over
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")

    response = new_browser().post("/login", {"email": people.host_a.email, "password": PASSWORD})
    assert response.status_code == 401
    failed = audit_events(app, "auth.login_failed")
    assert '"reason":"disabled"' in failed[-1].details
    assert failed[-1].object_id == str(people.host_a.id)

    assert admin.post(f"/admin/users/{people.host_a.id}/enable").status_code == 302
    new_browser().login(people.host_a)
    assert [e.action for e in audit_events(app)][-4:] == [
        "user.disabled", "auth.login_failed", "user.enabled", "auth.login"]


def test_disabled_owner_stops_api_tokens(app, people):
    with app.app_context():
        owner = db.session.get(User, people.host_a.id)
        _, plain = accounts.issue_api_token(owner, "Record system")
        db.session.commit()
        assert accounts.api_token_by_secret(plain) is not None
        accounts.set_disabled(owner, True)
        db.session.commit()
        assert accounts.api_token_by_secret(plain) is None


def test_admin_cannot_disable_themselves(app, people, new_browser):
    admin = new_browser().login(people.admin)
    response = admin.post(f"/admin/users/{people.admin.id}/disable")
    assert response.status_code == 409
    assert "You cannot disable your own account." in response.get_data(as_text=True)
    assert signed_in(admin)


def test_last_enabled_admin_cannot_be_disabled(app, people, runner):
    result = runner.invoke(args=["users", "disable", people.admin.email])
    assert result.exit_code == 1
    assert "last enabled administrator" in result.output
    with app.app_context():
        admin = db.session.get(User, people.admin.id)
        assert admin is not None and not admin.is_disabled
        with pytest.raises(Conflict):
            accounts.set_disabled(admin, True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_two_admins_disabling_each_other_at_once_leave_one(app, people):
    """Each checks that another administrator remains, at the same moment: one must lose."""
    with app.app_context():
        second, _ = accounts.create_user("admin2@example.org", "Admin Two", Role.ADMIN, PASSWORD)
        db.session.commit()
        second_id = second.id
    first_holds_its_change = threading.Event()
    outcome: dict[str, str] = {}

    def disable(actor_id: int, target_id: int, key: str, hold: bool) -> None:
        with app.app_context():
            try:
                actor, target = db.session.get(User, actor_id), db.session.get(User, target_id)
                accounts.set_disabled(target, True, by=actor)
                db.session.flush()
                if hold:  # keep the transaction open while the other one checks
                    first_holds_its_change.set()
                    time.sleep(0.5)
                db.session.commit()
                outcome[key] = "disabled"
            except Conflict:
                db.session.rollback()
                outcome[key] = "refused"
            except Exception as exc:  # reported below, not lost in the thread
                outcome[key] = repr(exc)
            finally:
                first_holds_its_change.set()

    first = threading.Thread(target=disable, args=(people.admin.id, second_id, "first", True))
    second_thread = threading.Thread(target=disable,
                                     args=(second_id, people.admin.id, "second", False))
    first.start()
    assert first_holds_its_change.wait(10)
    second_thread.start()
    first.join(30)
    second_thread.join(30)
    assert outcome == {"first": "disabled", "second": "refused"}
    with app.app_context():
        enabled = db.session.scalar(select(func.count()).select_from(User).where(
            User.role == Role.ADMIN, User.disabled_at.is_(None)))
    assert enabled == 1


# --- resets and password changes ---------------------------------------------------------------


def test_reset_ends_sessions_and_forces_a_new_password(app, people, new_browser):
    appointment_id = book(app, people.host_a.id)
    host = new_browser().login(people.host_a)
    admin = new_browser().login(people.admin)
    response = admin.post(f"/admin/users/{people.host_a.id}/reset-password")
    assert response.status_code == 200
    one_time = one_time_password(response)
    assert response.headers["Cache-Control"] == "no-store"  # a secret: not kept by any cache

    response = host.get("/appointments/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    response = new_browser().post("/login", {"email": people.host_a.email, "password": PASSWORD})
    assert response.status_code == 401  # the old password is gone

    host = new_browser()
    response = host.post("/login", {"email": people.host_a.email, "password": one_time})
    assert response.status_code == 302
    before = snapshot(app)
    for path in ("/", "/appointments/", "/appointments/new", f"/appointments/{appointment_id}",
                 f"/appointments/{appointment_id}/edit", "/admin/users", "/login"):
        response = host.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/account/password", path
    response = host.post(f"/appointments/{appointment_id}/cancel")
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"
    assert snapshot(app) == before
    assert host.get("/account/password").status_code == 200

    response = host.post("/account/password", {"current": one_time, "new": NEW_PASSWORD,
                                                "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert host.get(f"/appointments/{appointment_id}").status_code == 200
    response = new_browser().post("/login", {"email": people.host_a.email, "password": one_time})
    assert response.status_code == 401
    new_browser().login(Staff(people.host_a.id, people.host_a.email, NEW_PASSWORD))


@pytest.mark.parametrize("form,status,message", [
    ({"current": "not my password", "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}, 422,
     "The current password is wrong."),
    ({"current": PASSWORD, "new": "short", "confirm": "short"}, 422,
     "The password must be at least 12 characters long."),
    ({"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD + "!"}, 400,
     "The passwords differ."),
    ({"current": PASSWORD, "new": PASSWORD, "confirm": PASSWORD}, 422,
     "Choose a password different from the current one."),
    ({"current": PASSWORD}, 400, "This field is required."),
    ({}, 400, "This field is required."),
    ({"current": PASSWORD, "new": "x" * 5000, "confirm": "x" * 5000}, 400,
     "Field cannot be longer than 1024 characters."),
])
def test_password_change_is_refused(app, people, new_browser, form, status, message):
    host = new_browser().login(people.host_a)
    other = new_browser().login(people.host_a)
    before = snapshot(app)
    response = host.post("/account/password", form)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert snapshot(app) == before
    assert signed_in(host) and signed_in(other)


def test_password_change_ends_other_sessions(app, people, new_browser):
    host = new_browser().login(people.host_a)
    elsewhere = new_browser().login(people.host_a)
    response = host.post("/account/password", {"current": PASSWORD, "new": NEW_PASSWORD,
                                                "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert signed_in(host)
    assert not signed_in(elsewhere)
    digest = stored_hash(app, people.host_a.id)
    assert digest.startswith("$argon2id$") and PasswordHasher().verify(digest, NEW_PASSWORD)
    assert len(audit_events(app, "user.password_changed")) == 1


def test_new_account_must_choose_a_password(app, people, new_browser):
    admin = new_browser().login(people.admin)
    response = admin.post("/admin/users", {"email": "Ann@Example.org", "name": "Ann Berg",
                                           "role": "host"})
    assert response.status_code == 200
    one_time = one_time_password(response)
    assert len(one_time) >= 16
    assert response.headers["Cache-Control"] == "no-store"
    ann = new_browser()
    response = ann.post("/login", {"email": "ann@example.org", "password": one_time})
    assert response.status_code == 302
    assert ann.get("/appointments/").headers["Location"] == "/account/password"


@pytest.mark.parametrize("data,status", [
    ({"email": "a@example.org", "name": "Again", "role": "host"}, 409),
    ({"email": "not-an-address", "name": "X", "role": "host"}, 400),
    ({"email": "x@example.org", "name": "X", "role": "superuser"}, 400),
    ({"email": "x@example.org", "name": "   ", "role": "host"}, 400),
    ({"email": "x@example.org", "name": "x" * 10_000, "role": "host"}, 400),
    ({}, 400),
])
def test_admin_create_user_garbage(app, people, new_browser, data, status):
    admin = new_browser().login(people.admin)
    before = snapshot(app)
    assert admin.post("/admin/users", data).status_code == status
    assert snapshot(app) == before


@pytest.mark.parametrize("data", [
    {"user_id": "abc", "name": "X"},
    {"user_id": "99999999999999999999", "name": "X"},
    {"user_id": "{disabled}", "name": "X"},
    {"user_id": "{host}", "name": "  "},
    {"user_id": "{host}"},
    {},
])
def test_admin_issue_token_garbage(app, people, new_browser, data):
    admin = new_browser().login(people.admin)
    assert admin.post(f"/admin/users/{people.host_b.id}/disable").status_code == 302
    ids = {"host": str(people.host_a.id), "disabled": str(people.host_b.id)}
    before = snapshot(app)
    response = admin.post("/admin/tokens", {k: v.format(**ids) for k, v in data.items()})
    assert response.status_code == 400
    assert snapshot(app) == before


# --- rate limit --------------------------------------------------------------------------------


def test_login_rate_limit(sqlite_template, tmp_path):
    path = tmp_path / "limited.sqlite3"
    shutil.copy(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", tmp_path, LOGIN_RATE_LIMIT="3 per minute")
    with app.app_context():
        user, _ = accounts.create_user("a@example.org", "Host A", Role.HOST, PASSWORD)
        user.must_change_password = False
        db.session.commit()
    browser = Browser(app.test_client())
    for _ in range(3):
        response = browser.post("/login", {"email": "a@example.org", "password": "wrong guess"})
        assert response.status_code == 401
    response = browser.post("/login", {"email": "a@example.org", "password": PASSWORD})
    assert response.status_code == 429  # even the right password waits
    assert "Too many attempts" in response.get_data(as_text=True)
    assert not signed_in(browser)
    assert browser.get("/login").status_code == 200  # the form itself stays readable
    with app.app_context():
        db.engine.dispose()


# --- redirects after sign-in -------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "//evil.example",
    "//evil.example/appointments/",
    "///evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "evil.example",
])
def test_sign_in_never_redirects_off_site(people, browser, target):
    response = browser.client.get("/login", query_string={"next": target})
    assert response.status_code == 200
    browser.get("/login")
    response = browser.client.post("/login", query_string={"next": target}, data={
        "email": people.host_a.email, "password": PASSWORD, "csrf_token": browser.csrf()})
    assert response.status_code == 302
    assert response.headers["Location"] == "/appointments/"


def test_sign_in_returns_to_the_page_asked_for(people, browser):
    response = browser.get("/appointments/new")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?next=")
    browser.get(login_url)
    response = browser.post(login_url, {"email": people.host_a.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response.headers["Location"] == "/appointments/new"


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "/\t/evil.example",
                                    "https://evil.example"])
def test_language_switch_never_redirects_off_site(browser, target):
    response = browser.client.get("/lang/nb", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_language_switch(browser):
    response = browser.client.get("/lang/nb", query_string={"next": "/login"})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert browser.client.get("/lang/xx").status_code == 404
    cookie = response.headers["Set-Cookie"]
    assert "lang=nb" in cookie and "Secure" in cookie and "HttpOnly" in cookie


# --- CSRF --------------------------------------------------------------------------------------

CSRF_FORMS = [
    ("anonymous", "/login", {"email": "a@example.org", "password": PASSWORD}),
    ("host_a", "/logout", {}),
    ("host_a", "/account/password", {"current": PASSWORD, "new": NEW_PASSWORD,
                                     "confirm": NEW_PASSWORD}),
    ("host_a", "/appointments/new", {"kind": "consult", "title": "T", "starts_at": "{later}",
                                     "duration_minutes": "30", "recording_policy": "consent"}),
    ("host_a", "/appointments/{appt}/edit", {"kind": "consult", "title": "T",
                                             "starts_at": "{later}", "duration_minutes": "30",
                                             "recording_policy": "consent"}),
    ("host_a", "/appointments/{appt}/cancel", {}),
    ("host_a", "/appointments/{appt}/guests", {"display_name": "Kim", "role": "client"}),
    ("host_a", "/appointments/{appt}/guests/{guest}/revoke", {}),
    ("host_a", "/appointments/{appt}/guests/{guest}/reissue", {}),
    ("admin", "/admin/users", {"email": "n@example.org", "name": "N", "role": "host"}),
    ("admin", "/admin/users/{host_b}/disable", {}),
    ("admin", "/admin/users/{disabled}/enable", {}),
    ("admin", "/admin/users/{host_b}/reset-password", {}),
    ("admin", "/admin/tokens", {"user_id": "{host_b}", "name": "Case system"}),
    ("admin", "/admin/tokens/{token}/revoke", {}),
]


@pytest.fixture
def csrf_world(app, people):
    appointment_id = book(app, people.host_a.id)
    guest_id, _ = invite(app, appointment_id)
    with app.app_context():
        token, _ = accounts.issue_api_token(db.session.get(User, people.host_b.id), "Case")
        disabled, _ = accounts.create_user("c@example.org", "Host C", Role.HOST, PASSWORD)
        accounts.set_disabled(disabled, True)
        db.session.commit()
        token_id, disabled_id = token.id, disabled.id
    return {"appt": appointment_id, "guest": guest_id, "token": token_id,
            "host_b": people.host_b.id, "disabled": disabled_id,
            "later": local_input(now() + timedelta(hours=3))}


#: Every form without a token; a few also with another session's token and with garbage.
CSRF_CASES = [pytest.param(*form, "missing", id=f"{form[1]}-missing") for form in CSRF_FORMS] + [
    pytest.param(*CSRF_FORMS[i], token, id=f"{CSRF_FORMS[i][1]}-{token}")
    for i in (0, 5, 10) for token in ("foreign", "garbage")]


@pytest.mark.parametrize("who,path,data,token", CSRF_CASES)
def test_csrf_is_required(app, people, new_browser, csrf_world, who, path, data, token):
    browser = new_browser()
    if who != "anonymous":
        browser.login(getattr(people, who))
    path = path.format(**csrf_world)
    data = {k: v.format(**csrf_world) for k, v in data.items()}
    if token == "foreign":  # a real token, but of another session
        data["csrf_token"] = new_browser().login(people.host_b).csrf()
    elif token == "garbage":
        data["csrf_token"] = "x" * 5000
    before = snapshot(app)
    response = browser.post(path, data, csrf=False)
    assert response.status_code == 400
    assert "did not come from this site" in response.get_data(as_text=True)
    assert snapshot(app) == before
    assert signed_in(browser) == (who != "anonymous")


# --- cookies -----------------------------------------------------------------------------------


def test_session_cookie_flags(people, browser):
    browser.get("/login")
    response = browser.post("/login", {"email": people.host_a.email, "password": PASSWORD})
    cookies = [c for c in response.headers.getlist("Set-Cookie")
               if c.startswith("__Host-session=")]
    assert cookies
    for cookie in cookies:
        attributes = {part.strip().split("=")[0].lower(): part.strip()
                      for part in cookie.split(";")[1:]}
        assert "secure" in attributes
        assert "httponly" in attributes
        assert attributes.get("samesite") == "SameSite=Lax"
        # What the __Host- prefix requires, or the browser drops the cookie.
        assert attributes.get("path") == "Path=/" and "domain" not in attributes


def test_security_headers_on_every_page(people, browser):
    for path in ("/login", "/nope", "/j/unknown"):
        response = browser.get(path)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"
    browser.login(people.host_a)
    assert browser.get("/appointments/").headers["Cache-Control"] == "no-store"
    with browser.client.get("/static/css/portal.css") as static:
        assert static.status_code == 200 and static.headers["Cache-Control"] != "no-store"



def test_cli_refusals_are_plain_messages(app, people, runner):
    """Domain refusals from the command line read as messages, not tracebacks."""
    result = runner.invoke(args=["users", "create", people.host_a.email, "Again"])
    assert result.exit_code == 1
    assert "An account with this e-mail address exists already." in result.output
    result = runner.invoke(args=["users", "disable", "nobody@example.org"])
    assert result.exit_code == 1
    assert "no account with e-mail nobody@example.org" in result.output


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("args", [
    ["users", "create", "long@example.org", "x" * 121],
    ["users", "create", "x" * 250 + "@example.org", "Long Address"],
    ["tokens", "issue", "a@example.org", "x" * 121],
])
def test_cli_refuses_overlong_values(app, people, runner, args):
    """The command line has no form to limit lengths; PostgreSQL would refuse them mid-write."""
    before = snapshot(app)
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert "That is too long" in result.output
    assert snapshot(app) == before
