"""The fuzz pass, bounded in time, on SQLite and PostgreSQL: hypothesis-generated payloads for
every Socket.IO event (never an `internal` error, never an exception logged), and schemathesis
over /api/v1/openapi.json, in process through WSGI with a valid token (never a 5xx)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from calls import Consult, in_call
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from people import People
from schemathesis import GenerationMode
from support import SocketClient, hand_clock

from portal.accounts import services as accounts
from portal.extensions import db, socketio
from portal.models import User

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)

FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=False,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))


class Errors(logging.Handler):
    """Every record of ERROR or worse, from any logger, while the pass runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged_errors() -> Iterator[list[logging.LogRecord]]:
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler.records
    logging.getLogger().removeHandler(handler)


# --- Socket.IO ---------------------------------------------------------------------------------

#: Text the portal must refuse cleanly, among ordinary text.
NASTY = st.sampled_from(["", "\x00", "\ud800", "a\udfffb", "\u202e", "0" * 3000, "null", "{}"])
TEXT = st.text(max_size=40) | NASTY
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | TEXT)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)
#: The protocol's own field names (docs/signaling.md), so that payloads reach the schemas.
FIELDS = ["participant_id", "resume", "notice", "declaration", "to", "description", "candidate",
          "type", "sdp", "sdpMid", "sdpMLineIndex", "usernameFragment", "audio", "video", "text",
          "version", "id", "decision", "pc", "substream", "participant", "lock", "all", "protected",
          "hidden_from", "on", "kind", "members", "body", "level", "rtt_ms", "loss", "kbps"]
SHAPED = st.recursive(
    st.dictionaries(st.sampled_from(FIELDS), SCALARS, max_size=5),
    lambda inner: st.dictionaries(st.sampled_from(FIELDS), SCALARS | inner, max_size=5),
    max_leaves=10)
def sound(ids: list[int]) -> dict[str, st.SearchStrategy[Any]]:
    """Payloads of the documented shape with generated values, event by event: these get past
    the schema to the operations."""
    some_id = st.sampled_from(ids) | st.integers(1, 2**31 - 1)
    some_text = TEXT.filter(bool)
    recording = st.text("0123456789abcdef", min_size=32, max_size=32)
    candidate = st.fixed_dictionaries({"candidate": TEXT}, optional={
        "sdpMid": st.none() | TEXT, "sdpMLineIndex": st.none() | st.integers(0, 3),
        "usernameFragment": st.none() | TEXT})
    description = st.fixed_dictionaries(
        {"type": st.sampled_from(["offer", "answer", "pranswer", "rollback"])},
        optional={"sdp": TEXT})
    target = st.fixed_dictionaries({"participant_id": some_id})
    return {
        "lobby:admit": target, "lobby:deny": target,
        "call:join": st.fixed_dictionaries({"resume": st.booleans()},
                                           optional={"notice": st.none() | TEXT,
                                                     "declaration": st.booleans()}),
        "signal": st.fixed_dictionaries({"to": some_id, "description": description})
        | st.fixed_dictionaries({"to": some_id, "candidate": st.none() | candidate}),
        "media:state": st.fixed_dictionaries({"audio": st.booleans(), "video": st.booleans()}),
        "chat:send": st.fixed_dictionaries({"text": some_text}),
        "record:start": st.fixed_dictionaries({"version": some_text}),
        "record:consent": st.fixed_dictionaries({
            "id": recording, "version": some_text,
            "decision": st.sampled_from(["granted", "declined", "withdrawn"])}),
        "record:stop": st.fixed_dictionaries({"id": recording}),
        "record:offer": st.fixed_dictionaries({"id": recording, "sdp": some_text}),
        "hearing:publish": st.fixed_dictionaries({"sdp": some_text}),
        "hearing:subscribe": st.fixed_dictionaries({"sdp": some_text}),
        "hearing:candidate": st.fixed_dictionaries({
            "pc": st.sampled_from(["publish", "subscribe"]), "candidate": st.none() | candidate}),
        "hearing:layer": st.fixed_dictionaries({"participant_id": some_id,
                                                "substream": st.integers(-1, 3)}),
        "hearing:unpublish": st.just({}),
        # A hearing's court procedure (in this consult: refused as not_a_hearing, or before).
        **{name: st.just({}) for name in ("hearing:start", "hearing:pause", "hearing:resume",
                                          "room:leave", "room:recall")},
        **{name: st.fixed_dictionaries({"participant": some_id})
           for name in ("hearing:call", "hearing:dismiss", "hearing:remove", "room:invite")},
        "hearing:mute": st.fixed_dictionaries({"participant": some_id, "lock": st.booleans()})
        | st.fixed_dictionaries({"all": st.just(True), "lock": st.booleans()}),
        "hearing:screen": st.fixed_dictionaries({"protected": some_id, "hidden_from": some_id,
                                                 "on": st.booleans()}),
        "room:open": st.fixed_dictionaries({
            "kind": st.sampled_from(["counsel", "bench"]),
            "members": st.lists(some_id, min_size=1, max_size=3)}),
        "bench:message": st.fixed_dictionaries({"body": some_text}),
        "quality": st.fixed_dictionaries({
            "level": st.sampled_from(["good", "fair", "poor"]), "rtt_ms": st.integers(-1, 70_000),
            "loss": st.floats(-1, 101), "kbps": st.integers(-1, 10**7)}),
        "device:check": st.fixed_dictionaries({
            "media": st.sampled_from(["pending", "ok", "warn", "fail", "broken"]),
            "network": st.sampled_from(["pending", "ok", "warn", "fail", ""])}),
    }


#: Events that end or leave the call when their payload is sound ({} or none): fuzzing them
#: with a sound payload would only test the rest against a call that is over.
ENDING = {"call:end", "call:leave", "lobby:leave"}


def events() -> list[str]:
    return sorted(name for name in socketio.server.handlers["/"]
                  if name not in ("connect", "disconnect"))


def test_every_socket_event_survives_generated_payloads(
        app: Flask, consult: Consult, host_socket: Callable[..., SocketClient],
        logged_errors: list[logging.LogRecord]) -> None:
    clock = hand_clock(app)
    host, (pat,) = in_call(app, host_socket, consult)
    names = events()
    shaped = sound([host.id, pat.id, consult.guests[1][0]])
    assert set(shaped) <= set(names) and not set(names) - set(shaped) - ENDING - {"lobby:join"}

    @FUZZ
    @given(data=st.data(), name=st.sampled_from(names), from_host=st.booleans())
    def send(data: st.DataObject, name: str, from_host: bool) -> None:
        payload = data.draw(JSON | SHAPED | shaped.get(name, JSON), label="payload")
        if name in ENDING and payload in (None, {}):
            return
        sender = host if from_host else pat
        # Refill the rate limits (the payload, not the limit, is tested), staying well inside
        # the invite's window over all the examples.
        clock.advance(3)
        sender.emit(name, payload)
        for sock in (host, pat):
            errors = sock.take("error")
            assert not [e for e in errors if e.get("code") == "internal"], (name, payload)
        assert not logged_errors, (name, payload, [r.getMessage() for r in logged_errors])
        assert host.connected and pat.connected, (name, payload)

    send()


# --- the JSON API ------------------------------------------------------------------------------

def fuzz(label: str, strategy: st.SearchStrategy[Any], auth: dict[str, str],
         logged_errors: list[logging.LogRecord]) -> None:
    """Call one operation with generated cases; none may answer 5xx or log an error."""

    @settings(FUZZ, max_examples=40)
    @given(case=strategy)
    def call(case: Any) -> None:
        response = case.call(headers=auth)
        assert response.status_code < 500, (label, case.body, case.query,
                                            response.status_code, response.text[:300])
        assert not logged_errors, [r.getMessage() for r in logged_errors]

    call()


def test_the_api_answers_generated_requests_without_a_server_error(
        app: Flask, people: People, consult: Consult,
        logged_errors: list[logging.LogRecord]) -> None:
    app.config["API_RATE_LIMIT"] = "1000000 per minute"  # the input, not the limit, is tested
    with app.app_context():
        _token, plain = accounts.issue_api_token(db.session.get(User, people.host_a.id), "fuzz")
        db.session.commit()
    auth = {"Authorization": f"Bearer {plain}"}
    real = {"appointment_id": consult.id, "participant_id": consult.guests[0][0]}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        known = {k: v for k, v in real.items() if "{" + k + "}" in operation.path}
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known or None),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known or None))

        fuzz(operation.label, strategy, auth, logged_errors)
