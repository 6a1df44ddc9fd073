"""Invite links: valid only inside their window, stoppable, replaceable, never stored."""

from __future__ import annotations

import hashlib
import re
import string
from datetime import timedelta
from pathlib import Path

import pytest
from apps import make_app
from sqlalchemy import select
from support import (
    audit_events,
    book,
    get_appointment,
    invite,
    invite_path,
    local_input,
    now,
)

from portal.accounts import services as accounts
from portal.appointments import services
from portal.appointments.services import InviteState, check_invite
from portal.extensions import db
from portal.links import invite_url
from portal.models import Appointment, Participant, User
from portal.templating import when
from portal.tokens import TOKEN_BYTES

OPENS_BEFORE = timedelta(minutes=30)  # the defaults, which the app fixture keeps
CLOSES_AFTER = timedelta(minutes=60)


@pytest.fixture
def consult(app, people):
    """Host A's 30-minute consult two days ahead with one guest: (appointment id, guest id,
    token)."""
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(days=2), minutes=30)
    guest_id, token = invite(app, appointment_id)
    return appointment_id, guest_id, token


def state_at(app, token, moment):
    with app.app_context():
        return check_invite(token, now=moment).state


def test_window_edges(app, consult):
    appointment_id, guest_id, token = consult
    appointment = get_appointment(app, appointment_id)
    opens = appointment.starts_at - OPENS_BEFORE
    closes = appointment.ends_at + CLOSES_AFTER
    second = timedelta(seconds=1)
    assert state_at(app, token, opens - second) is InviteState.TOO_EARLY
    assert state_at(app, token, opens) is InviteState.VALID
    assert state_at(app, token, appointment.starts_at) is InviteState.VALID
    assert state_at(app, token, closes - second) is InviteState.VALID
    assert state_at(app, token, closes) is InviteState.ENDED
    assert state_at(app, token, closes + timedelta(days=30)) is InviteState.ENDED
    with app.app_context():
        check = check_invite(token, now=opens - second)
        assert check.opens_at == opens
        assert check.guest is not None and check.guest.id == guest_id


def test_window_follows_the_configuration(app, consult):
    appointment_id, _, token = consult
    appointment = get_appointment(app, appointment_id)
    app.config.update(INVITE_OPENS_MINUTES_BEFORE=5, INVITE_CLOSES_MINUTES_AFTER=0)
    assert state_at(app, token, appointment.starts_at - timedelta(minutes=6)) \
        is InviteState.TOO_EARLY
    assert state_at(app, token, appointment.starts_at - timedelta(minutes=5)) is InviteState.VALID
    assert state_at(app, token, appointment.ends_at) is InviteState.ENDED


def test_revoked_and_cancelled_are_gone_even_inside_the_window(app, people):
    appointment_id = book(app, people.host_a.id)
    guest_one, token_one = invite(app, appointment_id)
    _, token_two = invite(app, appointment_id, name="Kim")
    inside = get_appointment(app, appointment_id).starts_at
    with app.app_context():
        services.revoke_invite(db.session.get(Participant, guest_one))
        db.session.commit()
    assert state_at(app, token_one, inside) is InviteState.REVOKED
    assert state_at(app, token_two, inside) is InviteState.VALID
    with app.app_context():
        services.cancel(db.session.get(Appointment, appointment_id))
        db.session.commit()
    assert state_at(app, token_two, inside) is InviteState.CANCELLED


@pytest.mark.parametrize("token", ["", "x", "A" * 32, "A" * 129, "../../etc/passwd", "\x00",
                                   "ümlaut", "%00", "a" * 10_000])
def test_unknown_tokens(app, consult, token):
    assert state_at(app, token, now()) is InviteState.UNKNOWN


def test_reissue_replaces_the_link(app, consult):
    appointment_id, guest_id, old = consult
    inside = get_appointment(app, appointment_id).starts_at
    with app.app_context():
        new = services.reissue_invite(db.session.get(Participant, guest_id))
        db.session.commit()
    assert new != old
    assert state_at(app, old, inside) is InviteState.REPLACED
    assert state_at(app, new, inside) is InviteState.VALID
    with app.app_context():
        newest = services.reissue_invite(db.session.get(Participant, guest_id))
        db.session.commit()
    for earlier in (old, new):  # every replaced link says so, not only the last one
        assert state_at(app, earlier, inside) is InviteState.REPLACED
    assert state_at(app, newest, inside) is InviteState.VALID


def test_reissue_revives_a_revoked_guest_with_a_new_link_only(app, consult):
    appointment_id, guest_id, old = consult
    inside = get_appointment(app, appointment_id).starts_at
    with app.app_context():
        guest = db.session.get(Participant, guest_id)
        services.revoke_invite(guest)
        new = services.reissue_invite(guest)
        db.session.commit()
    assert state_at(app, old, inside) is InviteState.REPLACED
    assert state_at(app, new, inside) is InviteState.VALID


def test_reschedule_moves_the_window(app, consult):
    appointment_id, _, token = consult
    before = get_appointment(app, appointment_id)
    later = before.starts_at + timedelta(days=7)
    with app.app_context():
        services.update(db.session.get(Appointment, appointment_id), starts_at=later,
                        duration_minutes=60)
        db.session.commit()
    assert state_at(app, token, before.starts_at) is InviteState.TOO_EARLY
    assert state_at(app, token, later - OPENS_BEFORE) is InviteState.VALID
    assert state_at(app, token, later + timedelta(minutes=60) + CLOSES_AFTER
                    - timedelta(seconds=1)) is InviteState.VALID
    assert state_at(app, token, later + timedelta(minutes=60) + CLOSES_AFTER) is InviteState.ENDED


# --- the page a guest sees ---------------------------------------------------------------------


def assert_private(response):
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_page_inside_the_window(app, people, new_browser):
    appointment_id = book(app, people.host_a.id, title="Knee follow-up")
    _, token = invite(app, appointment_id, name="Pat")
    response = new_browser().get(f"/j/{token}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Knee follow-up" in page and "Hello Pat." in page
    assert "Host A" in page  # who it is with
    assert_private(response)
    # The page never carries its own token onwards (for example in the language switch).
    assert page.count(token) == 0


def test_page_too_early_says_when_it_opens(app, consult, new_browser):
    appointment_id, _, token = consult
    response = new_browser().get(f"/j/{token}")
    assert response.status_code == 403
    assert_private(response)
    page = response.get_data(as_text=True)
    assert "This link is not open yet" in page
    appointment = get_appointment(app, appointment_id)
    with app.test_request_context():
        opens = when(appointment.starts_at - OPENS_BEFORE)
    assert f"You can join from {opens}." in page


def test_page_too_early_in_the_guests_zone(app, consult, new_browser):
    appointment_id, _, token = consult
    guest = new_browser()
    guest.client.set_cookie("tz", "America/New_York")
    page = guest.get(f"/j/{token}").get_data(as_text=True)
    appointment = get_appointment(app, appointment_id)
    with app.test_request_context(headers={"Cookie": "tz=America/New_York"}):
        opens = when(appointment.starts_at - OPENS_BEFORE)
    assert f"You can join from {opens}." in page
    assert "Eastern" in page


def test_page_after_the_end(app, people, new_browser):
    appointment_id = book(app, people.host_a.id)
    _, token = invite(app, appointment_id)
    with app.app_context():  # as if the consult were yesterday
        appointment = db.session.get(Appointment, appointment_id)
        appointment.starts_at -= timedelta(days=1)
        appointment.ends_at -= timedelta(days=1)
        db.session.commit()
    response = new_browser().get(f"/j/{token}")
    assert response.status_code == 410
    assert "This appointment has ended" in response.get_data(as_text=True)
    assert_private(response)


def test_page_revoked_and_cancelled(app, people, browser, new_browser):
    appointment_id = book(app, people.host_a.id)
    guest_id, token = invite(app, appointment_id)
    _, other = invite(app, appointment_id, name="Kim")
    browser.login(people.host_a)
    response = browser.post(f"/appointments/{appointment_id}/guests/{guest_id}/revoke")
    assert response.status_code == 302
    guest = new_browser()
    response = guest.get(f"/j/{token}")
    assert response.status_code == 410
    assert "This link no longer works" in response.get_data(as_text=True)
    assert_private(response)
    assert guest.get(f"/j/{other}").status_code == 200

    assert browser.post(f"/appointments/{appointment_id}/cancel").status_code == 302
    response = guest.get(f"/j/{other}")
    assert response.status_code == 410
    assert "This appointment was cancelled" in response.get_data(as_text=True)
    assert_private(response)


@pytest.mark.parametrize("path", ["/j/not-a-real-token", "/j/" + "A" * 32, "/j/%00", "/j/%FF%FE",
                                  "/j/" + "a" * 129, "/j/" + "a" * 8000])
def test_page_unknown_link(app, consult, new_browser, path):
    before = len(audit_events(app))
    response = new_browser().get(path)
    assert response.status_code == 404
    assert "This link is not valid" in response.get_data(as_text=True)
    assert_private(response)
    assert len(audit_events(app)) == before  # nothing known was opened


def test_reissue_over_http(app, people, browser, new_browser):
    appointment_id = book(app, people.host_a.id)
    browser.login(people.host_a)
    response = browser.post(f"/appointments/{appointment_id}/guests",
                            {"display_name": "Pat", "role": "patient"}, follow_redirects=True)
    assert response.status_code == 200
    old = invite_path(response)
    guest = new_browser()
    assert guest.get(old).status_code == 200
    with app.app_context():
        guest_id = db.session.scalar(select(Participant.id).where(
            Participant.appointment_id == appointment_id, Participant.display_name == "Pat"))
    response = browser.post(f"/appointments/{appointment_id}/guests/{guest_id}/reissue",
                            follow_redirects=True)
    assert response.status_code == 200
    new = invite_path(response)
    assert new != old
    replaced = guest.get(old)  # README: a stopped or replaced link answers 410, not 404
    assert replaced.status_code == 410
    assert "This link was replaced" in replaced.get_data(as_text=True)
    assert_private(replaced)
    assert guest.get(new).status_code == 200
    # The link is shown once: the appointment page does not show it again.
    page = browser.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert new not in page and 'id="new-link"' not in page


def test_reschedule_over_http_moves_the_window(app, people, browser, new_browser):
    appointment_id = book(app, people.host_a.id)
    _, token = invite(app, appointment_id)
    guest = new_browser()
    assert guest.get(f"/j/{token}").status_code == 200
    browser.login(people.host_a)
    response = browser.post(f"/appointments/{appointment_id}/edit", {
        "kind": "consult", "title": "Follow-up", "recording_policy": "consent",
        "starts_at": local_input(now() + timedelta(days=1)), "duration_minutes": "30"})
    assert response.status_code == 302
    response = guest.get(f"/j/{token}")
    assert response.status_code == 403
    assert "This link is not open yet" in response.get_data(as_text=True)


# --- the token itself --------------------------------------------------------------------------


def test_token_has_at_least_128_bits(app, people):
    assert TOKEN_BYTES * 8 >= 128
    appointment_id = book(app, people.host_a.id)
    tokens = [invite(app, appointment_id, name=f"Guest {i}")[1] for i in range(5)]
    alphabet = set(string.ascii_letters + string.digits + "-_")
    for token in tokens:
        assert set(token) <= alphabet  # URL-safe base64: 6 bits a character
        assert len(token) * 6 >= 128
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    assert len(set(tokens)) == len(tokens)


def _database_text(app) -> str:
    """Every value of every row, as text."""
    with app.app_context():
        parts = []
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)):
                parts.extend(repr(value) for value in row)
        db.session.rollback()
        return "\n".join(parts)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_token_is_stored_only_as_its_sha256(app, people, browser, new_browser, backend):
    appointment_id = book(app, people.host_a.id)
    browser.login(people.host_a)
    response = browser.post(f"/appointments/{appointment_id}/guests",
                            {"display_name": "Pat", "role": "patient"}, follow_redirects=True)
    token = invite_path(response).removeprefix("/j/")
    assert new_browser().get(f"/j/{token}").status_code == 200  # opened: audited too
    browser.post(f"/appointments/{appointment_id}/guests", {"display_name": "Kim",
                                                            "role": "client"})

    with app.app_context():
        stored = db.session.scalar(select(Participant.invite_token_hash).where(
            Participant.display_name == "Pat"))
    assert stored == hashlib.sha256(token.encode()).hexdigest()

    dump = _database_text(app)
    assert stored in dump
    assert token not in dump
    assert token[:12] not in dump  # not even a prefix
    if backend == "sqlite":
        with app.app_context():
            db.engine.dispose()
            path = Path(db.engine.url.database or "")
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert stored.encode() in raw
        assert token.encode() not in raw


def test_opening_a_link_is_audited(app, consult, people, new_browser):
    appointment_id = book(app, people.host_a.id)
    guest_id, token = invite(app, appointment_id)
    new_browser().get(f"/j/{token}")
    _, early_guest, early_token = consult
    new_browser().get(f"/j/{early_token}")

    opened = audit_events(app, "invite.opened")
    assert [(e.actor_type, e.actor_id, e.object_id) for e in opened] == [
        ("guest", str(guest_id), str(guest_id)),
        ("guest", str(early_guest), str(early_guest)),
    ]
    assert '"state":"valid"' in opened[0].details
    assert f'"appointment_id":{appointment_id}' in opened[0].details
    assert '"state":"too_early"' in opened[1].details
    assert all(token not in e.details for e in audit_events(app))


def test_invite_link_rate_limit(app, consult, new_browser):
    app.config["INVITE_RATE_LIMIT"] = "3 per minute"
    _, _, token = consult
    guest = new_browser()
    statuses = [guest.get(f"/j/{token}").status_code for _ in range(3)]
    assert statuses == [403, 403, 403]
    assert guest.get(f"/j/{token}").status_code == 429
    assert guest.get("/j/guessing-other-tokens").status_code == 429


# --- where links point -------------------------------------------------------------------------


def test_links_ignore_the_host_header(app, people):
    """The attack: a forged Host header (or a proxy passing the client's on) made the link the
    portal hands out point at another site. Links come from PORTAL_BASE_URL only, else the
    server's own loopback address."""
    appointment_id = book(app, people.host_a.id)
    with app.app_context():
        _, bearer = accounts.issue_api_token(db.session.get(User, people.host_a.id), "test")
        db.session.commit()
    client = app.test_client()

    def link(name: str) -> str:
        response = client.post(f"/api/v1/appointments/{appointment_id}/participants",
                               json={"display_name": name, "role": "patient"},
                               headers={"Authorization": f"Bearer {bearer}",
                                        "Host": "evil.example",
                                        "X-Forwarded-Host": "evil.example"})
        assert response.status_code == 201, response.get_json()
        url: str = response.get_json()["invite_url"]
        return url

    assert link("Pat").startswith("http://127.0.0.1:5000/j/")
    app.config["BASE_URL"] = "https://consult.example.org"
    assert link("Kim").startswith("https://consult.example.org/j/")
    with app.test_request_context("/", headers={"Host": "evil.example"}):
        assert invite_url("tok") == "https://consult.example.org/j/tok"


ALL_V4 = "0.0.0.0"  # noqa: S104 - a setting under test; nothing binds it


@pytest.mark.parametrize("extra", [{"HOST": ALL_V4}, {"HOST": "192.0.2.10"},
                                   {"HOST": "::"}, {"PROXIES": 1},
                                   {"BASE_URL": "javascript:alert(1)"},
                                   {"BASE_URL": "consult.example.org"},
                                   {"BASE_URL": "https://user:pw@consult.example.org"}])
def test_no_start_without_a_public_address_off_loopback(tmp_path: Path, extra):
    """Serving anywhere but loopback (or behind a proxy) needs PORTAL_BASE_URL: else links
    would point at the wrong place. The error says what to set."""
    with pytest.raises(RuntimeError, match="PORTAL_BASE_URL"):
        make_app(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path, **extra)


@pytest.mark.parametrize("extra,base", [
    ({}, "http://127.0.0.1:5000"),
    ({"HOST": "localhost", "PORT": 8080}, "http://localhost:8080"),
    ({"HOST": "::1"}, "http://[::1]:5000"),
    ({"HOST": "127.0.0.2", "PORT": 5123}, "http://127.0.0.2:5123"),
    ({"HOST": ALL_V4, "BASE_URL": "https://consult.example.org"},
     "https://consult.example.org"),
    ({"PROXIES": 1, "BASE_URL": "https://example.org/samtale"}, "https://example.org/samtale"),
])
def test_link_base_on_loopback_or_as_configured(tmp_path: Path, extra, base):
    made = make_app(f"sqlite:///{tmp_path / 'x.sqlite3'}", tmp_path, **extra)
    with made.app_context():
        assert invite_url("tok") == f"{base}/j/tok"
