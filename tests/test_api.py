"""The JSON API under /api/v1: bearer tokens, ownership, validation, audit, and the OpenAPI
document matching the routes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from sqlalchemy import select

from portal.accounts import services as accounts
from portal.audit import services as audit
from portal.extensions import db
from portal.models import ApiToken, Appointment, AuditEvent, Status, User

OSLO_WINTER = timezone(timedelta(hours=1))


def soon(minutes: int = 10, tz: timezone = OSLO_WINTER) -> str:
    """A start time this many minutes from now, written with a UTC offset."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).astimezone(tz).isoformat()


def booking(**overrides: Any) -> dict[str, Any]:
    return {"kind": "consult", "title": "Follow-up", "starts_at": soon(),
            "duration_minutes": 30, "recording_policy": "consent", **overrides}


def issue_token(app: Flask, user_id: int, name: str = "EPJ") -> tuple[int, str]:
    with app.app_context():
        token, plain = accounts.issue_api_token(db.session.get(User, user_id), name)
        db.session.commit()
        return token.id, plain


@dataclass
class ApiClient:
    """A test client that sends one host's bearer token with every request."""

    client: FlaskClient
    token: str
    token_id: int

    def _headers(self, kw: dict[str, Any]) -> dict[str, Any]:
        return {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self._headers(kw), **kw)

    def post(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(url, json=json, headers=self._headers(kw), **kw)

    def patch(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(url, json=json, headers=self._headers(kw), **kw)

    def book(self, **overrides: Any) -> dict[str, Any]:
        response = self.post("/api/v1/appointments", booking(**overrides))
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def invite(self, appointment_id: int, **overrides: Any) -> dict[str, Any]:
        response = self.post(f"/api/v1/appointments/{appointment_id}/participants",
                             {"display_name": "Pat", "role": "patient", **overrides})
        assert response.status_code == 201, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body


@pytest.fixture
def api_a(app: Flask, people: Any) -> ApiClient:
    token_id, plain = issue_token(app, people.host_a.id)
    return ApiClient(app.test_client(), plain, token_id)


@pytest.fixture
def api_b(app: Flask, people: Any) -> ApiClient:
    token_id, plain = issue_token(app, people.host_b.id, "Case system")
    return ApiClient(app.test_client(), plain, token_id)


def events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        rows = list(found)
        db.session.expunge_all()
        return rows


def link_path(url: str) -> str:
    return urlsplit(url).path


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    assert body["code"] == "unauthorized"
    assert body["message"]


# The OpenAPI document -----------------------------------------------------------------------

AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}


def test_openapi_document_is_valid_and_matches_the_routes(app: Flask) -> None:
    response = app.test_client().get("/api/v1/openapi.json")  # anonymous: it is public
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.")

    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.rule != "/api/v1/openapi.json":
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(
                m.lower() for m in (rule.methods or set()) - AUTOMATIC_METHODS)
    documented = {path: {m for m in ops if m != "parameters"}
                  for path, ops in document["paths"].items()}
    assert routes == documented
    assert len(routes) == 11  # 6, a participant's screening, the observer link, and e-mail:
    # the messages, a resend, reminders on or off


def test_openapi_document_declares_bearer_auth_enums_and_errors(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "description": scheme["description"]}
    assert document["security"] == [{"bearerAuth": []}]
    schemas = document["components"]["schemas"]
    create = schemas["AppointmentCreate"]
    assert create["properties"]["kind"]["enum"] == ["consult", "hearing"]
    assert create["properties"]["recording_policy"]["enum"] == ["off", "consent", "notice"]
    assert create["properties"]["duration_minutes"]["minimum"] == 5
    assert set(create["required"]) == {"kind", "title", "starts_at", "duration_minutes",
                                       "recording_policy"}
    assert "required" not in schemas["AppointmentUpdate"]
    guest_roles = schemas["ParticipantCreate"]["properties"]["role"]["enum"]
    assert "host" not in guest_roles and "interpreter" in guest_roles
    assert set(schemas["Error"]["required"]) == {"code", "message"}
    assert "invite_url" in schemas["InvitedParticipant"]["properties"]
    properties = {name for schema in schemas.values() for name in schema.get("properties", {})}
    assert not [name for name in properties if "hash" in name or "token" in name]


def test_no_documentation_ui_is_served(app: Flask) -> None:
    client = app.test_client()
    for path in ("/api/v1/swagger-ui", "/api/v1/redoc", "/api/v1/rapidoc"):
        assert client.get(path).status_code == 404


# Authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic YTpi", "Token smt_x", "Bearer smt_not-a-real-token",
    "Bearer " + "x" * 5000,
])
def test_without_a_valid_token_the_answer_is_401(app: Flask, people: Any,
                                                 header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = app.test_client().get("/api/v1/appointments", headers=headers)
    assert_unauthorized(response)


def test_revoked_token_is_refused(app: Flask, api_a: ApiClient) -> None:
    assert api_a.get("/api/v1/appointments").status_code == 200
    with app.app_context():
        accounts.revoke_api_token(db.session.get(ApiToken, api_a.token_id))
        db.session.commit()
    assert_unauthorized(api_a.get("/api/v1/appointments"))
    rejected = events(app, "api_token.rejected")
    assert [(e.object_id, json.loads(e.details)["reason"]) for e in rejected] == [
        (str(api_a.token_id), "revoked")]


def test_token_of_a_disabled_account_is_refused(app: Flask, people: Any,
                                                api_a: ApiClient) -> None:
    with app.app_context():
        accounts.set_disabled(db.session.get(User, people.host_a.id), True)
        db.session.commit()
    assert_unauthorized(api_a.get("/api/v1/appointments"))
    assert json.loads(events(app, "api_token.rejected")[0].details)["reason"] == \
        "account_disabled"


def test_a_signed_in_session_is_not_an_api_credential(app: Flask, people: Any,
                                                      browser: Any) -> None:
    browser.login(people.host_a)
    assert_unauthorized(browser.client.get("/api/v1/appointments"))
    # No CSRF token either: the API answers 401, not the form's CSRF error.
    response = browser.client.post("/api/v1/appointments", json=booking())
    assert_unauthorized(response)
    with app.app_context():
        assert db.session.scalar(select(Appointment)) is None


def test_a_one_time_password_does_not_redirect_the_api(app: Flask, people: Any,
                                                       browser: Any) -> None:
    browser.login(people.host_a)
    with app.app_context():
        user = db.session.get(User, people.host_a.id)
        assert user is not None
        user.must_change_password = True
        db.session.commit()
    assert browser.client.get("/appointments/").status_code == 302  # the pages do redirect
    assert browser.client.get("/api/v1/openapi.json").status_code == 200
    assert_unauthorized(browser.client.get("/api/v1/appointments"))


def test_bearer_requests_need_no_csrf_token(api_a: ApiClient) -> None:
    assert api_a.post("/api/v1/appointments", booking()).status_code == 201


def test_rejected_token_is_audited_without_the_secret(app: Flask, people: Any) -> None:
    secret = "smt_guessed-but-wrong-0123456789"
    response = app.test_client().post(
        "/api/v1/appointments", json=booking(), headers={"Authorization": f"Bearer {secret}"})
    assert_unauthorized(response)
    (event,) = events(app, "api_token.rejected")
    assert event.actor_type == "anonymous"
    assert event.object_id is None
    assert json.loads(event.details) == {"endpoint": "api.appointments", "method": "POST",
                                         "reason": "unknown", "status": 401}
    assert secret not in event.details and secret[4:12] not in event.details
    # Without any token there is nothing to audit.
    app.test_client().get("/api/v1/appointments")
    assert len(events(app, "api_token.rejected")) == 1


def test_token_use_is_audited_and_attributed_to_the_token(app: Flask,
                                                          api_a: ApiClient) -> None:
    created = api_a.book()
    used = events(app, "api_token.used")
    assert [(e.actor_type, e.actor_id, e.object_id) for e in used] == [
        ("api_token", str(api_a.token_id), str(api_a.token_id))]
    assert json.loads(used[0].details) == {"endpoint": "api.appointments", "method": "POST",
                                           "status": 201}
    (booked,) = events(app, "appointment.created")
    assert (booked.actor_type, booked.actor_id) == ("api_token", str(api_a.token_id))
    assert booked.object_id == str(created["id"])
    with app.app_context():
        token = db.session.get(ApiToken, api_a.token_id)
        assert token is not None and token.last_used_at is not None
        assert audit.verify().ok


def test_a_refused_change_is_rolled_back_but_its_token_use_audited(app: Flask,
                                                                  api_a: ApiClient) -> None:
    response = api_a.post("/api/v1/appointments", booking(recording_policy="notice"))
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(Appointment)) is None
    assert events(app, "appointment.created") == []
    (used,) = events(app, "api_token.used")
    assert json.loads(used.details)["status"] == 422


# Ownership ----------------------------------------------------------------------------------


def test_another_hosts_appointment_is_not_found(app: Flask, api_a: ApiClient,
                                               api_b: ApiClient) -> None:
    mine = api_a.book(title="A's consult")
    guest = api_a.invite(mine["id"])
    base = f"/api/v1/appointments/{mine['id']}"
    attempts = [
        api_b.get(base),
        api_b.patch(base, {"title": "Taken over"}),
        api_b.post(base + "/cancel"),
        api_b.get(base + "/participants"),
        api_b.post(base + "/participants", {"display_name": "Eve", "role": "observer"}),
        api_b.post(f"{base}/participants/{guest['id']}/revoke"),
        api_b.post(f"{base}/participants/{guest['id']}/reissue"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.request.path
        assert response.get_json()["code"] == "not_found"
    assert api_b.get("/api/v1/appointments").get_json() == []
    unchanged = api_a.get(base).get_json()
    assert (unchanged["title"], unchanged["status"]) == ("A's consult", "scheduled")
    names = [p["display_name"] for p in api_a.get(base + "/participants").get_json()]
    assert names == ["Host A", "Pat"]
    assert app.test_client().get(link_path(guest["invite_url"])).status_code == 200


def test_unknown_ids_are_not_found(api_a: ApiClient) -> None:
    mine = api_a.book()
    base = f"/api/v1/appointments/{mine['id']}"
    host_row = api_a.get(base + "/participants").get_json()[0]
    assert host_row["role"] == "host"
    assert api_a.get("/api/v1/appointments/999999").status_code == 404
    assert api_a.post(f"{base}/participants/999999/revoke").status_code == 404
    # The host's own row is no guest: it has no invite to revoke.
    assert api_a.post(f"{base}/participants/{host_row['id']}/revoke").status_code == 404


# The round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_book_invite_revoke_reissue_cancel(app: Flask, api_a: ApiClient) -> None:
    response = api_a.post("/api/v1/appointments", booking(title="  Knee check  "))
    assert response.status_code == 201
    appointment = response.get_json()
    assert response.headers["Location"] == f"/api/v1/appointments/{appointment['id']}"
    assert appointment["title"] == "Knee check"
    assert appointment["status"] == "scheduled"
    assert appointment["duration_minutes"] == 30
    starts = datetime.fromisoformat(appointment["starts_at"])
    assert starts.utcoffset() == timedelta(0)
    assert datetime.fromisoformat(appointment["ends_at"]) - starts == timedelta(minutes=30)
    window = appointment["invite_window"]
    assert datetime.fromisoformat(window["opens_at"]) == starts - timedelta(minutes=30)
    assert datetime.fromisoformat(window["closes_at"]) == \
        starts + timedelta(minutes=30 + 60)
    base = f"/api/v1/appointments/{appointment['id']}"
    # The booking's answer also holds its people (with links, this once) and observer link.
    assert [p["role"] for p in appointment.pop("participants")] == ["host"]
    assert appointment.pop("observer_url") is None
    assert api_a.get(base).get_json() == appointment
    assert api_a.get("/api/v1/appointments").get_json() == [appointment]

    guest = api_a.invite(appointment["id"], email="pat@example.org", role="patient")
    assert guest["role"] == "patient" and guest["email"] == "pat@example.org"
    assert guest["lobby_state"] == "invited" and guest["invite_revoked_at"] is None
    first_link = link_path(guest["invite_url"])
    assert first_link.startswith("/j/")
    visitor = app.test_client()
    assert visitor.get(first_link).status_code == 200
    listed = api_a.get(base + "/participants").get_json()
    assert [p["role"] for p in listed] == ["host", "patient"]
    assert all("invite_url" not in p for p in listed)

    revoked = api_a.post(f"{base}/participants/{guest['id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.get_json()["invite_revoked_at"] is not None
    assert visitor.get(first_link).status_code == 410

    reissued = api_a.post(f"{base}/participants/{guest['id']}/reissue")
    assert reissued.status_code == 200
    second_link = link_path(reissued.get_json()["invite_url"])
    assert second_link != first_link
    assert reissued.get_json()["invite_revoked_at"] is None
    assert visitor.get(second_link).status_code == 200
    assert visitor.get(first_link).status_code == 410  # replaced: it says so (README)

    cancelled = api_a.post(base + "/cancel")
    assert cancelled.status_code == 200
    assert cancelled.get_json()["status"] == "cancelled"
    assert visitor.get(second_link).status_code == 410
    assert api_a.get("/api/v1/appointments?status=cancelled").get_json()[0]["id"] == \
        appointment["id"]
    assert api_a.get("/api/v1/appointments?status=scheduled").get_json() == []

    for path in (base, base + "/participants"):
        assert "hash" not in api_a.get(path).get_data(as_text=True).lower()
    # Ids past what the database holds are simply not found (no driver overflow, no 500).
    assert api_a.get(f"/api/v1/appointments/{2**40}").status_code == 404
    assert api_a.post(f"{base}/participants/{2**31}/revoke").status_code == 404
    with app.app_context():
        assert audit.verify().ok
        actions = [e.action for e in audit.latest(limit=1000)
                   if e.actor_type == "api_token" and e.action != "api_token.used"]
    assert list(reversed(actions)) == ["appointment.created", "invite.created",
                                       "invite.revoked", "invite.reissued",
                                       "appointment.cancelled"]


def test_reschedule_and_edit_via_patch(app: Flask, api_a: ApiClient) -> None:
    appointment = api_a.book(kind="hearing", recording_policy="notice")
    guest = api_a.invite(appointment["id"], role="witness")
    base = f"/api/v1/appointments/{appointment['id']}"
    new_start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = api_a.patch(base, {"starts_at": new_start.astimezone(OSLO_WINTER).isoformat(),
                                  "duration_minutes": 90})
    assert response.status_code == 200, response.get_json()
    moved = response.get_json()
    assert datetime.fromisoformat(moved["starts_at"]) == new_start
    assert moved["starts_at"].endswith("+00:00")
    assert datetime.fromisoformat(moved["ends_at"]) == new_start + timedelta(minutes=90)
    assert datetime.fromisoformat(moved["invite_window"]["opens_at"]) == \
        new_start - timedelta(minutes=30)
    assert (moved["kind"], moved["recording_policy"], moved["title"]) == \
        ("hearing", "notice", "Follow-up")
    assert datetime.fromisoformat(moved["updated_at"]) >= \
        datetime.fromisoformat(appointment["updated_at"])
    # The invite follows the new time: two days ahead it does not open yet.
    assert app.test_client().get(link_path(guest["invite_url"])).status_code == 403
    (event,) = events(app, "appointment.rescheduled")
    assert json.loads(event.details)["changed"] == ["duration_minutes", "starts_at"]

    renamed = api_a.patch(base, {"title": "Preliminary hearing"})
    assert renamed.get_json()["title"] == "Preliminary hearing"
    assert api_a.patch(base, {}).status_code == 200  # nothing to change is no error
    # A hearing recorded by notice cannot simply become a consult.
    refused = api_a.patch(base, {"kind": "consult"})
    assert refused.status_code == 422
    assert refused.get_json()["field"] == "recording_policy"


def test_changes_to_a_cancelled_appointment_conflict(api_a: ApiClient) -> None:
    appointment = api_a.book()
    base = f"/api/v1/appointments/{appointment['id']}"
    assert api_a.post(base + "/cancel").status_code == 200
    for response in (api_a.post(base + "/cancel"),
                     api_a.patch(base, {"title": "Again"}),
                     api_a.post(base + "/participants",
                                {"display_name": "Pat", "role": "patient"})):
        assert response.status_code == 409
        body = response.get_json()
        assert body["code"] == "conflict" and body["message"] and body["field"] is None


# Validation ---------------------------------------------------------------------------------

_MISSING = object()


@pytest.mark.parametrize(("field", "value"), [
    ("title", _MISSING),
    ("title", ""),
    ("title", "x" * 201),
    ("title", None),
    ("starts_at", "2030-01-01T10:00:00"),  # naive: no offset
    ("starts_at", "next Tuesday"),
    ("duration_minutes", 4),
    ("duration_minutes", 721),
    ("duration_minutes", "30"),
    ("duration_minutes", 30.5),
    ("kind", "meeting"),
    ("recording_policy", "always"),
    ("recording_policy", _MISSING),
])
def test_invalid_booking_fields_are_422(app: Flask, api_a: ApiClient, field: str,
                                        value: Any) -> None:
    data = booking()
    if value is _MISSING:
        del data[field]
    else:
        data[field] = value
    response = api_a.post("/api/v1/appointments", data)
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "invalid"
    assert body["message"]
    assert list(body["errors"]["json"]) == [field]
    with app.app_context():
        assert db.session.scalar(select(Appointment)) is None


@pytest.mark.parametrize(("overrides", "field"), [
    ({"kind": "consult", "recording_policy": "notice"}, "recording_policy"),
    ({"starts_at": soon(-24 * 60)}, "starts_at"),
    ({"title": "   "}, "title"),
])
def test_bookings_the_domain_refuses_are_422_with_the_field(api_a: ApiClient,
                                                            overrides: dict[str, Any],
                                                            field: str) -> None:
    response = api_a.post("/api/v1/appointments", booking(**overrides))
    assert response.status_code == 422
    body = response.get_json()
    assert (body["code"], body["field"]) == ("invalid", field)
    assert body["errors"] == {"json": {field: [body["message"]]}}


def test_invalid_bodies(api_a: ApiClient) -> None:
    url = "/api/v1/appointments"
    garbage = api_a.client.post(url, data="{not json", content_type="application/json",
                                headers={"Authorization": f"Bearer {api_a.token}"})
    assert garbage.status_code == 400
    assert garbage.get_json()["code"] == "bad_request"
    assert garbage.get_json()["errors"] == {"json": ["Invalid JSON body."]}
    form = api_a.client.post(url, data=booking(),
                             headers={"Authorization": f"Bearer {api_a.token}"})
    assert form.status_code == 400
    assert form.get_json()["code"] == "bad_request"
    for body in ([booking()], "consult", 42):
        response = api_a.post(url, body)
        assert response.status_code == 422, body
        assert response.get_json()["code"] == "invalid"
    unknown = api_a.post(url, booking(host_id=1))
    assert unknown.status_code == 422
    assert list(unknown.get_json()["errors"]["json"]) == ["host_id"]
    empty = api_a.post(url)
    assert empty.status_code == 422
    assert api_a.get(url + "?status=bogus").status_code == 422


@pytest.mark.parametrize("guest", [
    {"display_name": "Pat"},
    {"display_name": "", "role": "patient"},
    {"display_name": "Pat", "role": "host"},
    {"display_name": "Pat", "role": "judge"},
    {"display_name": "Pat", "role": "patient", "email": "not an address"},
])
def test_invalid_guests_are_422(api_a: ApiClient, guest: dict[str, Any]) -> None:
    appointment = api_a.book()
    response = api_a.post(f"/api/v1/appointments/{appointment['id']}/participants", guest)
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid"


# Errors elsewhere, and limits ---------------------------------------------------------------


def test_html_error_pages_survive_and_api_errors_are_json(app: Flask, api_a: ApiClient) -> None:
    client = app.test_client()
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "There is nothing here" in page.get_data(as_text=True)
    for response in (client.get("/api/v1/no/such/thing"), api_a.get("/api/v1/nothing")):
        assert response.status_code == 404
        assert response.mimetype == "application/json"
        assert response.get_json()["code"] == "not_found"
    wrong_method = api_a.client.delete("/api/v1/appointments",
                                       headers={"Authorization": f"Bearer {api_a.token}"})
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["code"] == "method_not_allowed"


def test_too_large_a_body_is_413_json(app: Flask, api_a: ApiClient) -> None:
    response = api_a.post("/api/v1/appointments",
                          booking(title="x" * (app.config["MAX_CONTENT_LENGTH"] + 1)))
    assert response.status_code == 413
    assert response.get_json()["code"] == "request_entity_too_large"


def test_the_guest_limit_is_a_conflict(app: Flask, api_a: ApiClient) -> None:
    app.config["MAX_GUESTS"] = 1
    appointment = api_a.book()
    api_a.invite(appointment["id"])
    response = api_a.post(f"/api/v1/appointments/{appointment['id']}/participants",
                          {"display_name": "Sam", "role": "interpreter"})
    assert response.status_code == 409
    assert response.get_json()["code"] == "conflict"


def test_the_api_is_rate_limited(app: Flask, api_a: ApiClient) -> None:
    app.config["API_RATE_LIMIT"] = "3 per minute"
    statuses = [api_a.get("/api/v1/appointments").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = api_a.get("/api/v1/appointments")
    assert limited.get_json()["code"] == "too_many_requests"
    # Failed authentication counts too: guessing tokens is limited as well.
    assert app.test_client().get("/api/v1/appointments").status_code == 429


def test_cancelled_appointment_lists_by_status(api_a: ApiClient) -> None:
    first, second = api_a.book(title="One"), api_a.book(title="Two", starts_at=soon(60))
    api_a.post(f"/api/v1/appointments/{first['id']}/cancel")
    scheduled = api_a.get("/api/v1/appointments?status=scheduled").get_json()
    assert [a["id"] for a in scheduled] == [second["id"]]
    everything = api_a.get("/api/v1/appointments").get_json()
    assert [a["title"] for a in everything] == ["One", "Two"]
    assert {a["status"] for a in everything} == {Status.CANCELLED.value, Status.SCHEDULED.value}
