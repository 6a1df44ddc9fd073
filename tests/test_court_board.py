"""The hosts' status board of a hearing (`hearing:state` to the judge and the clerk), pushed
live (docs/signaling.md, "Court procedure"): when someone joins or leaves the waiting room,
when a socket drops or comes back, and with each participant's connection quality (the
`quality` event). Flask-SocketIO's test client, a fake VideoRoom as Janus, the portal's clock
moved by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from calls import guest_socket, join_call
from court import Court, janus_app, make_court, staff_socket
from flask import Flask
from people import People
from support import HandClock, SocketClient, hand_clock, snapshot

GOOD = {"level": "good", "rtt_ms": 40, "loss": 0.0, "kbps": 900}
POOR = {"level": "poor", "rtt_ms": 650, "loss": 12.5, "kbps": 25}


@pytest.fixture
def setup(sqlite_people_template: tuple[Path, People], tmp_path: Path,
          ) -> Iterator[tuple[Flask, HandClock, Court, dict[str, SocketClient]]]:
    """The judge, the clerk and the panel connected (in the call); no guest yet."""
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, _fake):
        clock = hand_clock(app)
        court = make_court(app, people)
        socks = {name: staff_socket(app, court, name) for name in ("judge", "clerk", "panel")}
        for sock in socks.values():
            join_call(sock)
        for sock in socks.values():
            sock.unread()
            sock._unread.clear()
        yield app, clock, court, socks


def line(board: dict[str, Any], participant_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(p for p in board["participants"] if p["id"] == participant_id)
    return found


def boards(sock: SocketClient) -> list[dict[str, Any]]:
    return [b for b in sock.take("hearing:state") if "participants" in b]


def test_the_waiting_room_reaches_the_board_as_people_come_and_go(setup: Any) -> None:
    app, _clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    party.emit("lobby:join", {})
    for host in ("judge", "clerk"):
        assert line(socks[host].last("hearing:state"), party.id)["state"] == "lobby"
    assert boards(socks["panel"]) == []  # the panel is not a host
    party.emit("lobby:leave", {})
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "not_joined"
    # Closing the page leaves the waiting room too.
    party.emit("lobby:join", {})
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "lobby"
    party.disconnect()
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "not_joined"
    # A guest a host lets in: the board says so at once.
    witness = guest_socket(app, court.tokens["witness"], label="witness")
    witness.emit("lobby:join", {})
    socks["judge"].take("hearing:state")
    socks["clerk"].emit("lobby:admit", {"participant_id": witness.id})
    socks["clerk"].no_errors()
    assert line(socks["judge"].last("hearing:state"), witness.id)["state"] == "not_joined"


def test_a_dropped_socket_and_its_return_reach_the_board(setup: Any) -> None:
    app, _clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    party.emit("lobby:join", {})
    socks["clerk"].emit("lobby:admit", {"participant_id": party.id})
    join_call(party)
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "in_call"
    party.disconnect()  # the phone leaves Wi-Fi
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "disconnected"
    assert line(socks["judge"].last("hearing:state"), party.id)["state"] == "disconnected"
    back = guest_socket(app, court.tokens["party"], label="party again")
    assert back.welcome is not None and back.welcome["resumable"] is True
    join_call(back, resume=True)
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "in_call"
    # Leaving the call on purpose.
    back.emit("call:leave", {})
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "not_joined"


def test_each_participants_quality_is_on_the_board(setup: Any) -> None:
    app, clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    party.emit("lobby:join", {})
    socks["clerk"].emit("lobby:admit", {"participant_id": party.id})
    join_call(party)
    assert line(socks["clerk"].last("hearing:state"), party.id)["quality"] is None
    party.emit("quality", GOOD)
    party.no_errors()
    assert line(socks["clerk"].last("hearing:state"), party.id)["quality"] == GOOD
    assert boards(socks["panel"]) == []
    # One report every two seconds or so: a quicker one is refused and not kept.
    party.emit("quality", POOR)
    assert party.error("quality")["code"] == "rate_limited"
    assert socks["clerk"].take("hearing:state") == []
    # The same level again is kept, but the hosts are not told: only a change is pushed.
    clock.advance(2)
    party.emit("quality", {**GOOD, "rtt_ms": 55})
    party.no_errors()
    assert socks["clerk"].take("hearing:state") == []
    clock.advance(2)
    party.emit("quality", POOR)
    assert line(socks["judge"].last("hearing:state"), party.id)["quality"] == POOR
    # A host's own quality is on the board too.
    socks["judge"].emit("quality", GOOD)
    judge_id = court.ids["judge"]
    assert line(socks["clerk"].last("hearing:state"), judge_id)["quality"] == GOOD
    # Gone: no quality until their browser reports again.
    party.disconnect()
    assert line(socks["clerk"].last("hearing:state"), party.id)["quality"] is None
    back = guest_socket(app, court.tokens["party"], label="party again")
    join_call(back, resume=True)
    assert line(socks["clerk"].last("hearing:state"), party.id)["quality"] is None


@pytest.mark.parametrize("payload", [
    {}, {**GOOD, "level": "great"}, {**GOOD, "rtt_ms": -1}, {**GOOD, "rtt_ms": 1.5},
    {**GOOD, "loss": "1.5"}, {**GOOD, "loss": True}, {**GOOD, "loss": 101},
    {**GOOD, "kbps": "900"}, {**GOOD, "extra": 1}, [GOOD],
])
def test_a_bad_quality_report_is_refused(setup: Any, payload: Any) -> None:
    app, _clock, _court, socks = setup
    before = snapshot(app)
    socks["judge"].emit("quality", payload)
    assert socks["judge"].error("quality")["code"] == "bad_request"
    assert socks["clerk"].take("hearing:state") == []
    assert snapshot(app) == before


def test_a_quality_report_needs_the_sockets_place(setup: Any) -> None:
    """From a socket that is neither in the waiting room nor in the call: refused."""
    app, _clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    party.emit("quality", GOOD)
    assert party.error("quality")["code"] == "not_in_call"
    party.emit("lobby:join", {})
    party.emit("quality", GOOD)  # in the waiting room: counted (the device check's link)
    party.no_errors()
    assert line(socks["clerk"].last("hearing:state"), party.id)["quality"] == GOOD
    assert boards(socks["panel"]) == []


def test_who_is_stuck_on_the_device_check_is_on_the_board(setup: Any) -> None:
    app, _clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    party.emit("device:check", {"media": "pending", "network": "pending"})
    party.no_errors()
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "device_check"
    # No microphone, no camera: the clerk sees it before the start, and what failed.
    party.emit("device:check", {"media": "fail", "network": "ok"})
    seen = line(socks["judge"].last("hearing:state"), party.id)
    assert seen["state"] == "device_check_failed"
    assert seen["device_check"] == {"media": "fail", "network": "ok"}
    assert boards(socks["panel"]) == []  # the panel is not a host
    # The same outcome again tells nobody; waiting to be let in outranks the check.
    socks["clerk"].take("hearing:state")
    party.emit("device:check", {"media": "fail", "network": "ok"})
    assert socks["clerk"].take("hearing:state") == []
    party.emit("lobby:join", {})
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "lobby"
    party.emit("lobby:leave", {})
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == \
        "device_check_failed"
    # The page closed: the check is gone with it.
    party.disconnect()
    assert line(socks["clerk"].last("hearing:state"), party.id)["state"] == "not_joined"


@pytest.mark.parametrize("payload", [
    {}, {"media": "ok"}, {"media": "broken", "network": "ok"}, {"media": "ok", "network": 1},
    {"media": "ok", "network": "ok", "extra": 1}, ["ok", "ok"],
])
def test_a_bad_device_check_report_is_refused(setup: Any, payload: Any) -> None:
    app, _clock, court, socks = setup
    party = guest_socket(app, court.tokens["party"], label="party")
    socks["clerk"].take("hearing:state")
    party.emit("device:check", payload)
    assert party.error("device:check")["code"] == "bad_request"
    assert socks["clerk"].take("hearing:state") == []
