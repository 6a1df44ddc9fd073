"""Sessions that end (issue 13): the session lives on the server, so signing out ends it
wherever its cookie was copied; a sign-in idle for PORTAL_IDLE_MINUTES ends, and so do its
host's call sockets; being in a call is activity; the absolute lifetime holds. And the headers
of the low findings: HSTS behind TLS, Permissions-Policy, no framework in `Server:`."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from apps import make_app
from calls import Consult, admit, consult_now, guest_socket, join_call
from flask import Flask, session
from people import Browser, People
from sqlalchemy import select
from support import SocketClient, audit_events, hand_clock

from portal.call.guard import sockets
from portal.errors import Conflict
from portal.extensions import db
from portal.models import StoredSession, User

COOKIE = "__Host-session"
REDIS_URL = "redis://127.0.0.1:6379/0"
IDLE = 15 * 60


@pytest.fixture(params=["database", "redis"])
def store(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    """The app's sessions in its database (the default) or in Redis (scale-out)."""
    if request.param == "redis":
        from portal.accounts import sessions

        prefix = f"test-session-{uuid.uuid4().hex[:8]}:"
        app.config.update(SESSION_REDIS_URL=REDIS_URL, SESSION_KEY_PREFIX=prefix)
        sessions.init_app(app)
        yield request.param
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
    else:
        yield request.param


def cookie_of(browser: Browser) -> str:
    found = browser.client.get_cookie(COOKIE)
    assert found is not None, "no session cookie"
    return str(found.value)


def browser_with(new_browser: Any, cookie: str) -> Browser:
    """Another browser that carries a copy of someone's session cookie."""
    thief: Browser = new_browser()
    thief.client.set_cookie(COOKIE, cookie)
    return thief


def signed_in(browser: Browser) -> bool:
    return int(browser.get("/appointments/").status_code) == 200


def host_with_socket(app: Flask, new_browser: Any, c: Consult) -> tuple[Browser, SocketClient]:
    browser: Browser = new_browser().login(c.host)
    sock = SocketClient(app, flask_client=browser.client, auth={"appointment": c.id},
                        label="host")
    assert sock.connected, sock.connect_error
    sock.only("welcome")
    return browser, sock


def login_page_says(browser: Browser, text: str) -> bool:
    return text in browser.get("/login").get_data(as_text=True)


# --- signing out --------------------------------------------------------------------------------

def test_a_copied_cookie_is_refused_after_sign_out(app, people, new_browser, store):
    owner = new_browser().login(people.host_a)
    copy = browser_with(new_browser, cookie_of(owner))
    assert signed_in(copy)  # the copy works while the sign-in lasts: it is the session

    assert owner.post("/logout").status_code == 302
    assert not signed_in(copy)
    assert not signed_in(owner)


def test_signing_in_starts_a_new_session_id(app, people, new_browser, store):
    """No fixation: an id handed out before the sign-in never signs anyone in."""
    visitor = new_browser()
    visitor.get("/login")
    before = cookie_of(visitor)
    visitor.login(people.host_a)
    assert cookie_of(visitor) != before
    assert not signed_in(browser_with(new_browser, before))


def test_signing_out_closes_the_sessions_call_sockets(app, people, new_browser):
    c = consult_now(app, people.host_a, ["Pat"], "Sign-out")
    browser, sock = host_with_socket(app, new_browser, c)
    browser.post("/logout")
    assert not sock.connected
    assert sock.error("connect")["code"] == "unauthorized"


# --- idle ---------------------------------------------------------------------------------------

def test_an_idle_sign_in_ends_and_its_host_socket_closes(app, people, new_browser, store):
    clock = hand_clock(app)
    c = consult_now(app, people.host_a, ["Pat"], "Idle")
    browser, sock = host_with_socket(app, new_browser, c)
    copy = browser_with(new_browser, cookie_of(browser))

    clock.advance(IDLE - 1)
    sockets(app).sweep()
    assert sock.connected  # not yet

    clock.advance(2)
    sockets(app).sweep()  # no page request needed: the portal looks now and then
    assert not sock.connected
    error = sock.error("connect")
    assert error["code"] == "unauthorized" and "15 minutes without activity" in error["message"]

    response = browser.get("/appointments/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert login_page_says(browser, "You were signed out after 15 minutes without activity.")
    assert not signed_in(browser) and not signed_in(copy)
    assert [e.details for e in audit_events(app, "auth.session_ended")] == ['{"reason":"idle"}']


def test_an_idle_sign_in_ends_at_its_next_request_too(app, people, new_browser):
    """Without the periodic look (PORTAL_IDLE_CHECK_SECONDS=0), the next page closes them."""
    clock = hand_clock(app)
    c = consult_now(app, people.host_a, ["Pat"], "Idle")
    browser, sock = host_with_socket(app, new_browser, c)
    clock.advance(IDLE + 1)
    assert browser.get("/appointments/").status_code == 302
    assert not sock.connected
    assert sock.error("connect")["code"] == "unauthorized"


def test_activity_keeps_the_sign_in(app, people, new_browser, store):
    clock = hand_clock(app)
    browser = new_browser().login(people.host_a)
    for _ in range(3):  # 42 minutes in all, never 15 without a page
        clock.advance(14 * 60)
        assert signed_in(browser)

    clock.advance(14 * 60)  # "stay signed in" (idle.js) is activity ...
    touched = browser.client.post("/session/touch", headers={"X-CSRFToken": browser.csrf()})
    assert touched.status_code == 200
    assert touched.json == {"signed_in": True, "seconds_left": IDLE, "warn_seconds": 120}
    clock.advance(10 * 60)  # ... asking how long is left is not
    assert browser.client.get("/session/idle").json["seconds_left"] == 5 * 60
    clock.advance(5 * 60 + 1)
    idle = browser.client.get("/session/idle")
    assert idle.status_code == 401 and idle.json == {"signed_in": False}
    assert not signed_in(browser)


def test_a_host_in_a_call_stays_signed_in_without_page_requests(app, people, new_browser,
                                                                store):
    """A 45-minute consult: the host's page asks nothing of the server, but being in the call
    with someone is activity."""
    clock = hand_clock(app)
    c = consult_now(app, people.host_a, ["Pat"], "Long consult")
    browser, host = host_with_socket(app, new_browser, c)
    join_call(host)
    guest = guest_socket(app, c.token())
    admit(host, guest)
    for _ in range(9):  # 45 minutes
        clock.advance(5 * 60)
        sockets(app).sweep()
        assert host.connected
    assert signed_in(browser)

    guest.disconnect()  # alone in the call: no longer busy
    for _ in range(3):
        clock.advance(5 * 60)
        sockets(app).sweep()
    clock.advance(1)
    sockets(app).sweep()
    assert not host.connected
    assert not signed_in(browser)


def test_the_absolute_lifetime_holds_in_a_call_too(app, people, new_browser):
    clock = hand_clock(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=1)
    c = consult_now(app, people.host_a, ["Pat"], "Long consult")
    browser, host = host_with_socket(app, new_browser, c)
    join_call(host)
    admit(host, guest_socket(app, c.token()))
    for _ in range(6):
        clock.advance(10 * 60)
        sockets(app).sweep()
    assert host.connected  # exactly one hour
    clock.advance(1)
    sockets(app).sweep()
    assert not host.connected
    assert "expired" in host.error("connect")["message"]
    assert browser.get("/appointments/").status_code == 302
    assert login_page_says(browser, "Your sign-in has expired")


def test_the_idle_warning_works_while_a_password_must_be_changed(app, people, new_browser):
    with app.app_context():
        user = db.session.get(User, people.host_a.id)
        assert user is not None
        user.must_change_password = True
        db.session.commit()
    browser = new_browser().login(people.host_a)
    assert browser.client.get("/session/idle").json["signed_in"] is True
    touched = browser.client.post("/session/touch", headers={"X-CSRFToken": browser.csrf()})
    assert touched.json["signed_in"] is True


def test_a_signed_in_page_offers_the_idle_warning(app, people, new_browser):
    browser = new_browser().login(people.host_a)
    page = browser.get("/appointments/").get_data(as_text=True)
    assert 'id="idle-warning"' in page and "js/idle.js" in page
    assert 'data-idle-seconds="900"' in page
    anonymous = new_browser().get("/login").get_data(as_text=True)
    assert "idle.js" not in anonymous


# --- the store and the request's transaction ----------------------------------------------------

def test_saving_the_session_never_commits_what_a_failed_view_rolled_back(app, people,
                                                                          new_browser):
    """The session is saved (and, in the database, committed) after the request: a view
    that failed half-way leaves nothing, though it changed the session too."""

    @app.post("/test-half-way")
    def half_way() -> str:
        user = db.session.get(User, people.host_a.id)
        assert user is not None
        user.name = "Changed half-way"
        db.session.flush()
        session["noted"] = "yes"
        raise Conflict("stop here")

    browser = new_browser().login(people.host_a)
    response = browser.client.post("/test-half-way", headers={"X-CSRFToken": browser.csrf()})
    assert response.status_code == 409
    with app.app_context():
        assert db.session.scalar(select(User.name).where(User.id == people.host_a.id)) \
            != "Changed half-way"
    assert signed_in(browser)


def test_opening_the_session_begins_no_transaction(app, people, new_browser):
    """On SQLite a transaction holds the write lock: reading the session must not begin the
    request's, or a slow view (a password hash) would hold up every other request."""
    began: list[bool] = []
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: began.append(db.session().in_transaction()))
    browser = new_browser().login(people.host_a)
    assert signed_in(browser)
    assert began and not any(began)


# --- headers ------------------------------------------------------------------------------------

def test_permissions_policy_allows_camera_and_microphone_to_this_site_only(people, browser):
    for path in ("/login", "/nope", "/j/unknown"):
        policy = browser.get(path).headers["Permissions-Policy"]
        features = dict(item.strip().split("=") for item in policy.split(","))
        assert features.pop("camera") == "(self)" and features.pop("microphone") == "(self)"
        assert set(features.values()) == {"()"}  # nothing else granted to anyone


def test_hsts_only_over_https(people, browser):
    assert "Strict-Transport-Security" not in browser.get("/login").headers
    secure = browser.client.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_hsts_behind_a_tls_proxy(sqlite_people_template: tuple[Path, People], tmp_path: Path):
    path = tmp_path / "proxied.sqlite3"
    shutil.copy(sqlite_people_template[0], path)
    app = make_app(f"sqlite:///{path}", tmp_path, PROXIES=1,
                   BASE_URL="https://consult.example.org")
    client = app.test_client()
    assert "Strict-Transport-Security" not in client.get("/login").headers
    behind = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert behind.headers["Strict-Transport-Security"] == "max-age=31536000"
    with app.app_context():
        db.engine.dispose()


def test_without_secure_cookies_the_cookie_has_no_host_prefix(tmp_path: Path,
                                                              sqlite_template: Path):
    """Browsers drop a __Host- cookie that is not Secure (PORTAL_COOKIE_SECURE=false)."""
    path = tmp_path / "plain.sqlite3"
    shutil.copy(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", tmp_path, SESSION_COOKIE_SECURE=False)
    assert app.config["SESSION_COOKIE_NAME"] == "session"
    with app.app_context():
        db.engine.dispose()


def test_a_visit_without_signing_in_leaves_its_row_for_an_hour_only(app, new_browser):
    """Each visit to the sign-in page stores a session (its form's CSRF token): a flood of
    visits must not leave rows for the sign-in's 12 hours."""
    clock = hand_clock(app)
    assert new_browser().get("/login").status_code == 200
    with app.app_context():
        expiries = db.session.scalars(select(StoredSession.expiry)).all()
    assert expiries and all(e <= clock.now() + timedelta(hours=1) for e in expiries), expiries
