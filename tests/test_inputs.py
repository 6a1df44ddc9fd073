"""Input the portal will not take (portal/inputs.py), on SQLite and PostgreSQL: a NUL, a lone
surrogate or JSON nested 100,000 deep, sent to the API, a page or a socket, is a 400 or an
`error` {code: bad_request}; never a 500 or `internal`, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from calls import Consult, guest_socket, in_call
from flask import Flask
from people import People
from support import SocketClient, snapshot

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import User

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

#: JSON text as an attacker writes it: escapes that decode to what the portal refuses.
NUL, SURROGATE = "\\u0000", "\\ud800"


def bearer(app: Flask, user_id: int) -> dict[str, str]:
    with app.app_context():
        _token, plain = accounts.issue_api_token(db.session.get(User, user_id), "fuzz")
        db.session.commit()
    return {"Authorization": f"Bearer {plain}", "Content-Type": "application/json"}


def booking(title: str) -> str:
    return ('{"kind": "consult", "title": "' + title + '", "starts_at": '
            '"2031-01-02T10:00:00+00:00", "duration_minutes": 30, "recording_policy": "consent"}')


@pytest.mark.parametrize("body", [
    booking(f"Pat{SURROGATE}"), booking(f"Pat{NUL}"), booking("ok").replace('"kind"', f'"k{NUL}"'),
    "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
])
def test_api_bodies_the_portal_will_not_take(app: Flask, people: People, body: str) -> None:
    headers = bearer(app, people.host_a.id)
    before = snapshot(app)
    response = app.test_client().post("/api/v1/appointments", data=body, headers=headers)
    assert response.status_code == 400, (response.status_code, response.get_data()[:300])
    assert response.get_json()["code"] == "bad_request"
    assert snapshot(app) == before


def test_api_query_strings_the_portal_will_not_take(app: Flask, people: People) -> None:
    headers = bearer(app, people.host_a.id)
    for query in ("status=%00", "status=scheduled%00"):
        response = app.test_client().get(f"/api/v1/appointments?{query}", headers=headers)
        assert response.status_code == 400, response.get_data()[:300]


def test_a_sound_body_with_brackets_in_strings_passes(app: Flask, people: People) -> None:
    headers = bearer(app, people.host_a.id)
    title = "[" * 60 + "{" * 60  # deep-looking text is text
    response = app.test_client().post("/api/v1/appointments", data=booking(title),
                                      headers=headers)
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "nul\x00"])
def test_chat_the_portal_will_not_take(app: Flask, consult: Consult, text: str,
                                       host_socket: Callable[..., SocketClient]) -> None:
    host, (pat,) = in_call(app, host_socket, consult)
    before = snapshot(app)
    pat.emit("chat:send", {"text": text})
    assert pat.error("chat:send")["code"] == "bad_request"
    assert pat.connected and host.take("chat:message") == []
    assert snapshot(app) == before


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize("payload", [{"text": deep(40)}, {"\ud800": 1}, {"text\x00": "x"}])
def test_socket_payloads_the_portal_will_not_take(app: Flask, consult: Consult, payload: Any,
                                                  host_socket: Callable[..., SocketClient]
                                                  ) -> None:
    _host, (pat,) = in_call(app, host_socket, consult)
    pat.emit("chat:send", payload)
    assert pat.error("chat:send")["code"] == "bad_request"


@pytest.mark.parametrize("token", ["\ud800" * 30, "tok\x00en" * 5])
def test_connect_data_the_portal_will_not_take(app: Flask, token: str) -> None:
    sock = guest_socket(app, token, welcome=False)
    assert not sock.connected
    assert sock.connect_error["data"]["code"] == "bad_request", sock.connect_error


@pytest.mark.parametrize("starts_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:00-14:00",
                                       "9999-12-31T23:00:00+00:00"])
def test_times_at_the_ends_of_the_calendar(app: Flask, people: People, starts_at: str) -> None:
    """Found by the fuzz pass: turning such a time to UTC (or adding the duration) overflowed
    into a 500."""
    body = booking("Edge").replace("2031-01-02T10:00:00+00:00", starts_at)
    response = app.test_client().post("/api/v1/appointments", data=body,
                                      headers=bearer(app, people.host_a.id))
    assert response.status_code == 422, response.get_data()[:300]
