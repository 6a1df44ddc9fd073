"""A hearing's declaration ("I will not record or photograph this hearing"): nobody enters a
hearing's call without it (`call:join` with `declaration: true`, docs/signaling.md); it is kept
once, with its time and an audit event, for guests, observers and staff alike. A consult asks
for none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from calls import guest_socket
from court import Court, janus_app, make_court, participant, staff_socket
from fake_videoroom import FakeVideoRoom
from flask import Flask
from people import People
from support import SocketClient, audit_events, snapshot


@pytest.fixture
def hearing(sqlite_people_template: tuple[Path, People], tmp_path: Path,
            ) -> Iterator[tuple[Flask, FakeVideoRoom, Court]]:
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, fake):
        yield app, fake, make_court(app, people)


def admitted(app: Flask, court: Court, clerk: SocketClient, name: str) -> SocketClient:
    guest = guest_socket(app, court.tokens[name], label=name)
    guest.emit("lobby:join", {})
    clerk.emit("lobby:admit", {"participant_id": guest.id})
    clerk.no_errors()
    guest.unread()
    return guest


@pytest.mark.parametrize("name", ["party", "observer", "judge"])
def test_joining_a_hearing_without_the_declaration_is_refused_and_changes_nothing(
        hearing: Any, name: str) -> None:
    app, _fake, court = hearing
    clerk = staff_socket(app, court, "clerk")
    sock = (staff_socket(app, court, name) if name == "judge"
            else admitted(app, court, clerk, name))
    before = snapshot(app)
    sock.emit("call:join", {"resume": False})
    error = sock.error("call:join")
    assert error["code"] == "declaration_required"
    assert "record or photograph" in error["message"]
    assert sock.take("call:joined") == []
    assert snapshot(app) == before
    assert participant(app, court.ids[name]).declared_at is None


def test_the_declaration_is_kept_once_with_an_audit_event(hearing: Any) -> None:
    app, _fake, court = hearing
    clerk = staff_socket(app, court, "clerk")
    party = admitted(app, court, clerk, "party")
    party.emit("call:join", {"resume": False, "declaration": True})
    party.no_errors()
    assert party.take("call:joined")
    declared = participant(app, court.ids["party"]).declared_at
    assert declared is not None
    events = audit_events(app, "declaration.confirmed")
    assert [(e.object_id, e.actor_type, e.actor_id) for e in events] == [
        (str(court.ids["party"]), "guest", str(court.ids["party"]))]
    # Later joins (a reload) need no second declaration, and keep the first one's time.
    party.emit("call:leave", {})
    party.no_errors()
    again = admitted(app, court, clerk, "party")
    again.emit("call:join", {"resume": False})
    again.no_errors()
    assert again.take("call:joined")
    assert participant(app, court.ids["party"]).declared_at == declared
    assert len(audit_events(app, "declaration.confirmed")) == 1


def test_a_declaration_must_be_true(hearing: Any) -> None:
    app, _fake, court = hearing
    judge = staff_socket(app, court, "judge")
    for bad in ("yes", 1, None):
        judge.emit("call:join", {"resume": False, "declaration": bad})
        assert judge.error("call:join")["code"] == "bad_request"
    judge.emit("call:join", {"resume": False, "declaration": False})
    assert judge.error("call:join")["code"] == "declaration_required"
    assert participant(app, court.ids["judge"]).declared_at is None
