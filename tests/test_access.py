"""Who may reach which page: every role against every HTML route, one test per cell.

Anonymous visitors and guests (who hold an invite link but no account) are sent to sign in on
staff pages. A host sees only their own appointments: another host's is simply not there (404),
and so it is for administrators, who manage accounts but never see hosts' consults (nor their
recordings). Only administrators reach /admin (hosts get 403). Every refused request changes
nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from support import book, hand_clock, invite, local_input, now, snapshot

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import (
    Appointment,
    MessageKind,
    MessageStatus,
    OutboxMessage,
    Recording,
    RecordingStatus,
    RecordingTrack,
    User,
    utcnow,
)

ANON, GUEST, OWNER, OTHER, ADMIN = "anonymous", "guest", "host_a", "host_b", "admin"
ROLES = (ANON, GUEST, OWNER, OTHER, ADMIN)
#: Expected: a redirect to the sign-in page.
LOGIN = "login"
#: Expected (the idle status idle.js asks for): a 200 saying no one is signed in, and no change.
NOBODY = "nobody"
#: Expected: a 200 giving the signed-in session's time left.
SIGNED_IN = "signed in"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    expect: dict[str, int | str]
    data: dict[str, str] | None = None
    #: Where a 302 for an allowed role must lead (a prefix), if it matters.
    redirect_to: str | None = None
    #: Roles whose answer, though not an error, refuses what was asked: nothing may change.
    refused: tuple[str, ...] = ()


def staff_page(ok: int | str) -> dict[str, int | str]:
    return {ANON: LOGIN, GUEST: LOGIN, OWNER: ok, OTHER: ok, ADMIN: ok}


def own_page(ok: int | str) -> dict[str, int | str]:
    return {ANON: LOGIN, GUEST: LOGIN, OWNER: ok, OTHER: 404, ADMIN: 404}


def admin_page(ok: int | str) -> dict[str, int | str]:
    return {ANON: LOGIN, GUEST: LOGIN, OWNER: 403, OTHER: 403, ADMIN: ok}


EDIT = {"kind": "consult", "title": "Moved", "starts_at": "{later}", "duration_minutes": "45",
        "recording_policy": "consent"}
GUEST_FORM = {"display_name": "Kim", "role": "client"}

ROUTES = (
    Route("home", "GET", "/", staff_page(302), redirect_to="/appointments/"),
    Route("login", "GET", "/login", {ANON: 200, GUEST: 200, OWNER: 302, OTHER: 302, ADMIN: 302},
          redirect_to="/appointments/"),
    Route("password", "GET", "/account/password", staff_page(200)),
    # The second step of signing in is for the half-signed-in (tests/test_mfa.py): anyone
    # else is sent to sign in, or home if signed in already.
    Route("code-form", "GET", "/login/code", staff_page(302), redirect_to="/appointments/",
          refused=(OWNER, OTHER, ADMIN)),
    Route("code", "POST", "/login/code", staff_page(302), data={"code": "000000"},
          redirect_to="/appointments/", refused=(OWNER, OTHER, ADMIN)),
    # Setting up two-step sign-in: the hosts have none (a wrong code is refused), the
    # administrator has it on already (the page says so and takes no code).
    Route("mfa-form", "GET", "/account/mfa", staff_page(200), refused=(ADMIN,)),
    Route("mfa", "POST", "/account/mfa", {ANON: LOGIN, GUEST: LOGIN, OWNER: 422, OTHER: 422,
                                          ADMIN: 200}, data={"code": "000000"},
          refused=(ADMIN,)),
    Route("idle", "GET", "/session/idle", {ANON: NOBODY, GUEST: NOBODY, OWNER: SIGNED_IN,
                                           OTHER: SIGNED_IN, ADMIN: SIGNED_IN}),
    Route("touch", "POST", "/session/touch", {ANON: NOBODY, GUEST: NOBODY, OWNER: SIGNED_IN,
                                              OTHER: SIGNED_IN, ADMIN: SIGNED_IN}),
    Route("logout", "POST", "/logout", staff_page(302), redirect_to="/login"),
    Route("appointments", "GET", "/appointments/", staff_page(200)),
    Route("book-form", "GET", "/appointments/new", staff_page(200)),
    Route("book", "POST", "/appointments/new", staff_page(302), data=EDIT),
    Route("show", "GET", "/appointments/{appt}", own_page(200)),
    Route("call", "GET", "/appointments/{appt}/call", own_page(200)),
    Route("edit-form", "GET", "/appointments/{appt}/edit", own_page(200)),
    Route("edit", "POST", "/appointments/{appt}/edit", own_page(302), data=EDIT,
          redirect_to="/appointments/{appt}"),
    Route("cancel", "POST", "/appointments/{appt}/cancel", own_page(302),
          redirect_to="/appointments/{appt}"),
    Route("add-guest", "POST", "/appointments/{appt}/guests", own_page(302), data=GUEST_FORM,
          redirect_to="/appointments/{appt}"),
    Route("revoke", "POST", "/appointments/{appt}/guests/{guest}/revoke", own_page(302),
          redirect_to="/appointments/{appt}"),
    Route("reissue", "POST", "/appointments/{appt}/guests/{guest}/reissue", own_page(302),
          redirect_to="/appointments/{appt}"),
    # Guests' e-mail: reminders on or off; resend (no mail server here: 409 for the owner).
    Route("reminders", "POST", "/appointments/{appt}/reminders", own_page(302),
          redirect_to="/appointments/{appt}"),
    Route("resend", "POST", "/appointments/{appt}/messages/{message}/resend", own_page(409)),
    Route("users", "GET", "/admin/users", admin_page(200)),
    Route("create-user", "POST", "/admin/users", admin_page(200),
          data={"email": "new@example.org", "name": "New Host", "role": "host"}),
    Route("disable", "POST", "/admin/users/{user}/disable", admin_page(302),
          redirect_to="/admin/users"),
    Route("enable", "POST", "/admin/users/{user}/enable", admin_page(302),
          redirect_to="/admin/users"),
    Route("reset-password", "POST", "/admin/users/{user}/reset-password", admin_page(200)),
    Route("tokens", "GET", "/admin/tokens", admin_page(200)),
    Route("issue-token", "POST", "/admin/tokens", admin_page(200),
          data={"user_id": "{owner}", "name": "Record system"}),
    Route("revoke-token", "POST", "/admin/tokens/{token}/revoke", admin_page(302),
          redirect_to="/admin/tokens"),
    Route("audit", "GET", "/admin/audit", admin_page(200)),
    Route("audit-verify", "GET", "/admin/audit/verify", admin_page(200)),
    Route("invite", "GET", "/j/{invite}", dict.fromkeys(ROLES, 200)),
    # Recordings: the host only. The track has no file here, so the host gets 409.
    Route("recordings", "GET", "/appointments/{appt}/recordings", own_page(200)),
    Route("recording-media", "GET", "/recordings/{recording}/tracks/{track}", own_page(409)),
    Route("recording-delete", "POST", "/recordings/{recording}/delete", own_page(302),
          redirect_to="/appointments/{appt}/recordings"),
)


@pytest.fixture
def world(app, people, new_browser) -> dict[str, Any]:
    """Host A's consult (starting in ten minutes) with one invited guest, an API token for
    host A, and a target account (host B) for the account actions."""
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(minutes=10))
    guest_id, token = invite(app, appointment_id)
    with app.app_context():
        owner = db.session.get(User, people.host_a.id)
        assert owner is not None
        api_token, _ = accounts.issue_api_token(owner, "Record system")
        host_row = next(p for p in db.session.get(Appointment, appointment_id).participants
                        if p.user_id == owner.id)
        recording = Recording(id="ab" * 16, appointment_id=appointment_id,
                              requested_by_id=host_row.id, status=RecordingStatus.COMPLETE,
                              wording_version="consent-test", started_at=utcnow(),
                              stopped_at=utcnow())
        db.session.add(recording)
        db.session.flush()
        track = RecordingTrack(recording_id=recording.id, participant_id=guest_id, name="p1-1")
        db.session.add(track)
        message = OutboxMessage(participant_id=guest_id, appointment_id=appointment_id,
                                kind=MessageKind.INVITATION, status=MessageStatus.FAILED,
                                last_error="ConnectionRefusedError")
        db.session.add(message)
        db.session.commit()
        token_id, track_id, message_id = api_token.id, track.id, message.id
    return {"appt": appointment_id, "guest": guest_id, "invite": token, "token": token_id,
            "recording": "ab" * 16, "track": track_id, "message": message_id,
            "user": people.host_b.id, "owner": people.host_a.id,
            "later": local_input(now() + timedelta(hours=2))}


def browser_for(role: str, people, new_browser, world) -> Any:
    browser = new_browser()
    if role == GUEST:
        assert browser.get(f"/j/{world['invite']}").status_code == 200
    elif role != ANON:
        browser.login(getattr(people, role))
    browser.csrf()  # fetched before the request under test, so only access is being tested
    return browser


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_access(app, people, new_browser, world, route: Route, role: str):
    browser = browser_for(role, people, new_browser, world)
    path = route.path.format(**world)
    data = {k: v.format(**world) for k, v in (route.data or {}).items()}
    before = snapshot(app)

    response = browser.get(path) if route.method == "GET" else browser.post(path, data)

    expected = route.expect[role]
    if expected == LOGIN:
        assert response.status_code == 302, response.get_data(as_text=True)
        assert response.headers["Location"].startswith("/login")
    elif expected in (NOBODY, SIGNED_IN):
        assert response.status_code == 200, response.get_data(as_text=True)
        answer = response.get_json()
        assert answer["signed_in"] is (expected == SIGNED_IN), answer
        assert (answer["seconds_left"] > 0) if expected == SIGNED_IN else answer == {
            "signed_in": False}
    else:
        assert response.status_code == expected, response.get_data(as_text=True)[:2000]
        if expected == 302 and route.redirect_to:
            assert response.headers["Location"].startswith(route.redirect_to.format(**world))
    if expected in (LOGIN, NOBODY, 403, 404) or role in route.refused:
        assert snapshot(app) == before, "a refused request changed the database"


@pytest.mark.parametrize("role", (OTHER, ADMIN))
def test_other_appointments_are_not_listed(app, people, new_browser, world, role):
    """Host A's consult does not show in anyone else's list, not even an administrator's."""
    browser = browser_for(role, people, new_browser, world)
    page = browser.get("/appointments/").get_data(as_text=True)
    assert "Follow-up" not in page
    assert f"/appointments/{world['appt']}" not in page
    owner = browser_for(OWNER, people, new_browser, world)
    assert f"/appointments/{world['appt']}" in owner.get("/appointments/").get_data(as_text=True)


def test_guest_of_one_appointment_reaches_no_other(app, people, new_browser, world):
    """An invite link is a key to its own landing page only; the guest has no session."""
    guest = browser_for(GUEST, people, new_browser, world)
    other_appt = book(app, people.host_b.id)
    for path in (f"/appointments/{world['appt']}", f"/appointments/{other_appt}"):
        response = guest.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", [
    "/appointments/abc",
    "/appointments/-1",
    "/appointments/1.5",
    "/appointments/99999999999999999999",
    "/appointments/99999999999999999999/edit",
    "/appointments/{appt}/guests/abc/revoke",
    "/appointments/{appt}/guests/99999999999999999999/reissue",
    "/admin/users/abc/disable",
    "/admin/users/99999999999999999999/disable",
    "/admin/users/0/reset-password",
    "/admin/tokens/99999999999999999999/revoke",
])
def test_garbage_ids_are_not_found(app, people, new_browser, world, path):
    owner = browser_for(OWNER, people, new_browser, world)
    admin = browser_for(ADMIN, people, new_browser, world)
    browser = admin if path.startswith("/admin") else owner
    path = path.format(**world)
    before = snapshot(app)
    response = browser.post(path) if path.endswith(("revoke", "reissue", "disable",
                                                     "reset-password")) else browser.get(path)
    assert response.status_code == 404
    assert snapshot(app) == before


@pytest.mark.parametrize("query", ["before=abc", "before=-5", "before=99999999999999999999",
                                   "before=" + "9" * 5000])
def test_audit_list_ignores_garbage_paging(app, people, new_browser, world, query):
    admin = browser_for(ADMIN, people, new_browser, world)
    response = admin.get(f"/admin/audit?{query}")
    assert response.status_code in (200, 400)


def test_another_hosts_guest_cannot_be_reached_through_ones_own_appointment(
        app, people, new_browser, world):
    """Host B names A's guest under B's own appointment: still not found."""
    own = book(app, people.host_b.id)
    host_b = browser_for(OTHER, people, new_browser, world)
    before = snapshot(app)
    for action in ("revoke", "reissue"):
        response = host_b.post(f"/appointments/{own}/guests/{world['guest']}/{action}")
        assert response.status_code == 404
    assert snapshot(app) == before


@pytest.mark.parametrize("cookies,headers", [
    ({"tz": "localtime"}, {}),
    ({"tz": "Factory"}, {}),
    ({"tz": "../../etc/passwd"}, {}),
    ({"tz": "Europe/Nowhere", "lang": "xx"}, {}),
    ({"lang": "../en"}, {"Accept-Language": "*;q=banana, ,;;, nn-NO;q=2"}),
    ({}, {"Accept-Language": "x" * 3000}),
])
@pytest.mark.parametrize("role", (ANON, OWNER))
def test_garbage_cookies_and_headers(app, people, new_browser, world, cookies, headers, role):
    """The viewer's zone and language come from the browser; nonsense falls back to defaults."""
    browser = browser_for(role, people, new_browser, world)
    for name, value in cookies.items():
        browser.client.set_cookie(name, value)
    for path in ("/login", "/appointments/", f"/appointments/{world['appt']}",
                 f"/j/{world['invite']}"):
        response = browser.get(path, headers=headers)
        assert response.status_code in (200, 302), path
    page = browser.get(f"/j/{world['invite']}", headers=headers).get_data(as_text=True)
    assert 'data-tz="UTC"' in page


def test_a_signed_in_session_expires(app, people, new_browser, world):
    """PORTAL_SESSION_HOURS bounds a sign-in, counted from when it was made."""
    clock = hand_clock(app)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=1)
    browser = browser_for(OWNER, people, new_browser, world)
    for _ in range(4):  # being active (within the idle time) does not stretch it
        clock.advance(14 * 60)
        assert browser.get("/appointments/").status_code == 200
    clock.advance(4 * 60 + 1)
    response = browser.get("/appointments/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "Your sign-in has expired" in browser.get("/login").get_data(as_text=True)
    assert browser.get("/appointments/").status_code == 302  # signed out, not just turned away


def test_names_and_titles_are_escaped(app, people, new_browser, world):
    script = "<script>alert(1)</script>"
    appointment_id = book(app, people.host_a.id, title=f"Consult {script}")
    _, token = invite(app, appointment_id, name=f"Pat {script}")
    owner = browser_for(OWNER, people, new_browser, world)
    for browser, path in ((owner, "/appointments/"), (owner, f"/appointments/{appointment_id}"),
                          (new_browser(), f"/j/{token}")):
        page = browser.get(path).get_data(as_text=True)
        assert script not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path


def test_oversized_request_is_refused(app, people, new_browser, world):
    owner = browser_for(OWNER, people, new_browser, world)
    before = snapshot(app)
    response = owner.post(f"/appointments/{world['appt']}/guests",
                          {"display_name": "x" * (2 * 1024 * 1024), "role": "client"})
    assert response.status_code == 413
    assert snapshot(app) == before


def test_administrators_see_no_consult_content_anywhere(app, people, new_browser, world):
    """README: administrators manage accounts, tokens and the audit trail, and do not see hosts'
    consults. No page they reach, and no API call with their own token, shows a consult's
    title or a participant's name, however much the host did with it."""
    title, name = "Custody-Matter-7731", "Guest-Name-4417"
    appointment_id = book(app, people.host_a.id, title=title)
    guest_id, _ = invite(app, appointment_id, name=name)
    owner = browser_for(OWNER, people, new_browser, world)
    assert owner.post(f"/appointments/{appointment_id}/edit",
                      {**EDIT, "title": title, "starts_at": world["later"]}).status_code == 302
    assert owner.post(f"/appointments/{appointment_id}/guests/{guest_id}/reissue"
                      ).status_code == 302
    admin = browser_for(ADMIN, people, new_browser, world)
    for path in ("/appointments/", "/admin/users", "/admin/tokens", "/admin/audit",
                 "/admin/audit/verify", f"/appointments/{appointment_id}",
                 f"/appointments/{appointment_id}/recordings",
                 f"/appointments/{world['appt']}/recordings",
                 f"/recordings/{world['recording']}/tracks/{world['track']}"):
        page = admin.get(path).get_data(as_text=True)
        assert title not in page and name not in page and "Follow-up" not in page, path
    with app.app_context():
        _, plain = accounts.issue_api_token(db.session.get(User, people.admin.id), "Admin's")
        db.session.commit()
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {plain}"}
    for path in ("/api/v1/appointments", f"/api/v1/appointments/{appointment_id}",
                 f"/api/v1/appointments/{appointment_id}/participants"):
        answer = api.get(path, headers=bearer)
        assert answer.status_code in (200, 404), path
        assert title not in answer.get_data(as_text=True)
        assert name not in answer.get_data(as_text=True)
    unknown = api.get("/api/v1/appointments/999999", headers=bearer)
    known = api.get(f"/api/v1/appointments/{appointment_id}", headers=bearer)
    assert known.status_code == unknown.status_code == 404
    assert known.get_json() == unknown.get_json()


# --- A hearing's booking (issue 12): staff seats, screening, the observer link --------------

JUDGE, PANEL = "judge", "panel"
COURT_ROLES = (ANON, GUEST, OWNER, OTHER, ADMIN, JUDGE, PANEL)


def court_page(ok: int | str, *, panel: int | str = 403) -> dict[str, int | str]:
    """The host and a seated judge may; a panel member sees but may not change; everyone
    else is sent to sign in or finds nothing."""
    return {ANON: LOGIN, GUEST: LOGIN, OWNER: ok, OTHER: 404, ADMIN: 404, JUDGE: ok,
            PANEL: panel}


COURT_ROUTES = (
    Route("hearing-show", "GET", "/appointments/{appt}", court_page(200, panel=200)),
    Route("hearing-call", "GET", "/appointments/{appt}/call", court_page(200, panel=200)),
    Route("hearing-add-staff", "POST", "/appointments/{appt}/guests", court_page(302),
          data={"role": "clerk", "staff_email": "{clerk_email}"},
          redirect_to="/appointments/{appt}"),
    Route("hearing-add-guest", "POST", "/appointments/{appt}/guests", court_page(302),
          data={"display_name": "Wes", "role": "witness", "screened_from": "{guest}"},
          redirect_to="/appointments/{appt}"),
    Route("hearing-screening", "POST", "/appointments/{appt}/screening", court_page(302),
          data={"participant": "{guest}", "screened_from": "{party}"},
          redirect_to="/appointments/{appt}"),
    Route("hearing-observer-on", "POST", "/appointments/{appt}/observer-link", court_page(302),
          redirect_to="/appointments/{appt}"),
    Route("hearing-observer-off", "POST", "/appointments/{appt}/observer-link/off",
          court_page(302), redirect_to="/appointments/{appt}"),
    Route("hearing-edit", "POST", "/appointments/{appt}/edit", court_page(302),
          data={**EDIT, "kind": "hearing"}, redirect_to="/appointments/{appt}"),
    Route("hearing-reissue", "POST", "/appointments/{appt}/guests/{guest}/reissue",
          court_page(302), redirect_to="/appointments/{appt}"),
    # The observer link is public: a name, then the observer's own link.
    Route("observer-form", "GET", "/o/{observer}", dict.fromkeys(COURT_ROLES, 200)),
    Route("observer-join", "POST", "/o/{observer}", dict.fromkeys(COURT_ROLES, 303),
          data={"display_name": "Petra Press"}, redirect_to="/j/"),
)


@pytest.fixture
def court(app, people) -> dict[str, Any]:
    """Host A's hearing (in ten minutes) with a judge and a panel member who are not its host,
    a witness (the guest) and a party, and its observer link on."""
    from court_booking import add_staff, book_hearing

    from portal.appointments.hearing import Seat
    from portal.models import ParticipantRole as R

    judge = add_staff(app, "judge@example.org", "Judge")
    panel = add_staff(app, "panel@example.org", "Panel")
    add_staff(app, "clerk@example.org", "Clerk")
    appointment_id, made, observer = book_hearing(app, people.host_a.id, [
        Seat(R.JUDGE, staff_email=judge.email), Seat(R.PANEL, staff_email=panel.email),
        Seat(R.WITNESS, "Wes Witness", ref="guest"), Seat(R.PARTY, "Pat Party", ref="party")],
        observer_link=True)
    return {"appt": appointment_id, "guest": made["guest"][0], "invite": made["guest"][1],
            "party": made["party"][0], "observer": observer, "clerk_email": "clerk@example.org",
            "later": local_input(now() + timedelta(hours=2)), JUDGE: judge, PANEL: panel}


@pytest.mark.parametrize("role", COURT_ROLES)
@pytest.mark.parametrize("route", COURT_ROUTES, ids=lambda r: r.name)
def test_court_booking_access(app, people, new_browser, court, route: Route, role: str):
    browser = new_browser()
    if role == GUEST:
        assert browser.get(f"/j/{court['invite']}").status_code == 200
    elif role in (JUDGE, PANEL):
        browser.login(court[role])
    elif role != ANON:
        browser.login(getattr(people, role))
    if route.path.startswith("/o/"):
        assert browser.get(route.path.format(**court)).status_code == 200  # the form's token
    browser.csrf()
    path = route.path.format(**court)
    data = {k: v.format(**court) for k, v in (route.data or {}).items()}
    before = snapshot(app)

    response = browser.get(path) if route.method == "GET" else browser.post(path, data)

    expected = route.expect[role]
    if expected == LOGIN:
        assert response.status_code == 302, response.get_data(as_text=True)
        assert response.headers["Location"].startswith("/login")
    else:
        assert response.status_code == expected, response.get_data(as_text=True)[:2000]
        if expected in (302, 303) and route.redirect_to:
            assert response.headers["Location"].startswith(route.redirect_to.format(**court))
    if expected in (LOGIN, 403, 404):
        assert snapshot(app) == before, "a refused request changed the database"


def test_the_court_api_refuses_the_wrong_people(app, people, court):
    """The API's new routes: another host and an administrator find nothing; a panel member
    may look but not change; nobody's refusal changes anything."""
    from court_booking import Api

    base = f"/api/v1/appointments/{court['appt']}"
    calls = (("POST", base + "/observer-link", None), ("DELETE", base + "/observer-link", None),
             ("PUT", f"{base}/participants/{court['guest']}/screening", {"screened_from": []}),
             ("POST", base + "/participants", {"role": "party", "display_name": "X"}))
    refusals = ((Api.of(app, people.host_b.id), 404), (Api.of(app, people.admin.id), 404),
                (Api.of(app, court[PANEL].id), 403))
    before = snapshot(app)
    for api, status in refusals:
        for method, path, body in calls:
            assert api.call(method, path, body).status_code == status, (method, path)
    anonymous = app.test_client()
    for method, path, body in calls:
        assert anonymous.open(path, method=method, json=body).status_code == 401
    after = snapshot(app)
    assert {t for t in after if after[t] != before[t]} <= {"audit_events", "audit_head",
                                                           "api_tokens"}
