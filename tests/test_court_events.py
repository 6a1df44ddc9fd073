"""A hearing's court procedure through the sockets (docs/signaling.md, "Court procedure"),
with Flask-SocketIO's test client and a fake VideoRoom (tests/fake_videoroom.py) as Janus:
who each event moves, what the media server is asked to forward to whom, and that every
forbidden action by every role is refused and changes nothing. The rules themselves, role by
role: test_procedure.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from court import (
    Court,
    everyone_in,
    janus_app,
    make_court,
    participant,
    publish_all,
    staff_socket,
    stage,
)
from fake_videoroom import FakeVideoRoom
from flask import Flask
from people import Browser, People, Staff
from support import SocketClient, audit_events, snapshot

from portal.extensions import db
from portal.models import Appointment, HearingStage, LobbyState, Place, Status

AV = {"audio", "video"}


@pytest.fixture
def setup(sqlite_people_template: tuple[Path, People], tmp_path: Path,
          ) -> Iterator[tuple[Flask, FakeVideoRoom, Court, dict[str, SocketClient]]]:
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, fake):
        court = make_court(app, people)
        socks = everyone_in(app, court)
        publish_all(fake, court, socks)
        yield app, fake, court, socks


def holds(app: Flask, fake: FakeVideoRoom, court: Court, name: str) -> dict[int, set[str]]:
    """What the media server forwards to that participant now: feed -> media."""
    handle = app.extensions["hearing"].subscriber(court.id, court.ids[name])
    found: dict[int, set[str]] = {}
    for feed, kind in fake.holds(handle):
        found.setdefault(feed, set()).add(kind)
    return found


def settle(app: Flask, fake: FakeVideoRoom, court: Court, expected: dict[str, dict[str, set[str]]],
           ) -> None:
    """Until each named participant's subscription on the media server is as expected
    (names -> media)."""
    def by_name(name: str) -> dict[str, set[str]]:
        names = {v: k for k, v in court.ids.items()}
        return {names[f]: m for f, m in holds(app, fake, court, name).items()}

    def done() -> bool:
        return all(by_name(name) == want for name, want in expected.items())

    fake.settle(done, lambda: {n: by_name(n) for n in expected})


def send(sock: SocketClient, event: str, payload: dict[str, Any]) -> None:
    sock.emit(event, payload)
    sock.no_errors()


HEARING = ("judge", "clerk", "panel", "counsel", "party", "other party")


def test_before_the_start_nobody_receives_anyone_and_the_start_moves_the_right_people(
        setup: Any) -> None:
    app, fake, court, socks = setup
    settle(app, fake, court, {name: {} for name in socks})
    # Counsel takes their party aside before the start: the start brings them back first.
    send(socks["counsel"], "room:open", {"kind": "counsel", "members": [court.ids["party"]]})
    settle(app, fake, court, {"counsel": {"party": AV}, "party": {"counsel": AV}})
    send(socks["judge"], "hearing:start", {})
    assert stage(app, court) is HearingStage.IN_SESSION
    places = {name: participant(app, court.ids[name]).place for name in socks}
    assert places == {**{name: Place.HEARING for name in HEARING},
                      "witness": Place.WAITING, "interpreter": Place.WAITING,
                      "observer": Place.WAITING}
    everyone_else = {name: {other: AV for other in HEARING if other != name} for name in HEARING}
    settle(app, fake, court, {**everyone_else, "witness": {}, "interpreter": {},
                              "observer": {name: AV for name in HEARING}})
    # Who may know what: the hosts the board, the others their own place.
    board = socks["clerk"].last("hearing:state")
    assert board["stage"] == "in_session" and board["observers"] == 1
    assert {p["id"]: p["place"] for p in board["participants"]}[court.ids["witness"]] == "waiting"
    assert socks["party"].last("hearing:state") == {
        "stage": "in_session", "place": "hearing", "room": None, "mute_locked": False,
        "represents": [], "interprets_for": None, "observers": 1}
    assert socks["counsel"].last("hearing:state")["represents"] == [
        {"id": court.ids["party"], "name": "party"}]
    assert "participants" not in socks["panel"].last("hearing:state")
    assert socks["interpreter"].last("hearing:state")["interprets_for"] == {
        "id": court.ids["witness"], "name": "witness", "role": "witness"}
    started = audit_events(app, "hearing.started")
    assert len(started) == 1 and started[0].actor_id == str(court.staff["judge"].id)
    assert [e.action for e in audit_events(app) if e.action.startswith("consultation.")] == [
        "consultation.opened", "consultation.closed"]


def test_call_and_dismiss_a_witness_with_their_interpreter(setup: Any) -> None:
    app, fake, court, socks = setup
    send(socks["clerk"], "hearing:start", {})
    send(socks["judge"], "hearing:call", {"participant": court.ids["witness"]})
    for name in ("witness", "interpreter"):
        assert participant(app, court.ids[name]).place is Place.HEARING
    settle(app, fake, court, {
        "witness": {n: AV for n in (*HEARING, "interpreter")},
        "interpreter": {n: AV for n in (*HEARING, "witness")}})
    assert socks["witness"].last("hearing:state")["place"] == "hearing"
    send(socks["judge"], "hearing:dismiss", {"participant": court.ids["witness"]})
    for name in ("witness", "interpreter"):
        p = participant(app, court.ids[name])
        assert p.place is Place.WAITING and p.lobby_state is LobbyState.ADMITTED
    settle(app, fake, court, {"witness": {}, "interpreter": {},
                              "judge": {n: AV for n in HEARING if n != "judge"}})
    assert socks["witness"].connected  # their link still works: they can be called again
    send(socks["judge"], "hearing:call", {"participant": court.ids["witness"]})
    assert [e.action for e in audit_events(app) if e.action.startswith("hearing.")] == [
        "hearing.started", "hearing.called", "hearing.dismissed", "hearing.called"]


def test_a_screened_person_gets_the_protected_ones_audio_never_their_video(setup: Any) -> None:
    app, fake, court, socks = setup
    send(socks["clerk"], "hearing:screen", {"protected": court.ids["witness"],
                                            "hidden_from": court.ids["party"], "on": True})
    send(socks["clerk"], "hearing:start", {})
    send(socks["judge"], "hearing:call", {"participant": court.ids["witness"]})
    settle(app, fake, court, {
        "party": {**{n: AV for n in HEARING if n != "party"}, "interpreter": AV,
                  "witness": {"audio"}},
        "judge": {**{n: AV for n in HEARING if n != "judge"}, "interpreter": AV,
                  "witness": AV}})
    handle = app.extensions["hearing"].subscriber(court.id, court.ids["party"])
    assert (court.ids["witness"], "video") not in fake.ever_held(handle)
    # What the party's browser was offered says so too.
    # (the offer leaves the worker just after the media server's change: wait for it)
    offered: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while not any(s["participant_id"] == court.ids["witness"] for s in offered):
        assert time.monotonic() < deadline, offered
        offered += [s for o in socks["party"].take("hearing:offer") for s in o["streams"]]
        time.sleep(0.02)
    assert {s["kind"] for s in offered if s["participant_id"] == court.ids["witness"]} == {
        "audio"}
    # Lifted live: the video is added to the same subscription.
    send(socks["clerk"], "hearing:screen", {"protected": court.ids["witness"],
                                            "hidden_from": court.ids["party"], "on": False})
    settle(app, fake, court, {"party": {**{n: AV for n in HEARING if n != "party"},
                                        "interpreter": AV, "witness": AV}})
    assert [e.action for e in audit_events(app, "hearing.screened")] == ["hearing.screened"] * 2


def test_a_consultation_rooms_members_receive_only_each_other(setup: Any) -> None:
    app, fake, court, socks = setup
    send(socks["judge"], "hearing:start", {})
    send(socks["judge"], "hearing:pause", {})
    send(socks["counsel"], "room:open", {"kind": "counsel", "members": [court.ids["party"]]})
    room = socks["party"].last("hearing:state")["room"]
    assert (room["private"], room["recorded"]) == (True, False)
    assert room["opened_by"] == {"id": court.ids["counsel"], "name": "counsel"}
    settle(app, fake, court, {"counsel": {"party": AV}, "party": {"counsel": AV},
                              **{n: {} for n in socks if n not in ("counsel", "party")}})
    send(socks["judge"], "hearing:resume", {})  # the rooms close: back into the hearing
    send(socks["judge"], "hearing:pause", {})
    send(socks["judge"], "room:open", {"kind": "bench", "members": [court.ids["panel"]]})
    settle(app, fake, court, {"judge": {"panel": AV}, "panel": {"judge": AV}, "clerk": {}})
    board = socks["clerk"].last("hearing:state")
    assert board["rooms"] and board["rooms"][0]["kind"] == "bench"  # in use, not its content
    send(socks["clerk"], "room:recall", {})
    assert participant(app, court.ids["panel"]).place is Place.HEARING
    send(socks["judge"], "hearing:resume", {})
    settle(app, fake, court, {"judge": {n: AV for n in HEARING if n != "judge"}})


def test_observers_never_publish_and_nobody_ever_receives_them(setup: Any) -> None:
    app, fake, court, socks = setup
    observer = court.ids["observer"]
    assert observer not in fake.publishing  # refused when everyone published (setup)
    socks["observer"].emit("hearing:publish", {"sdp": "v=0\r\ns=-\r\n"})
    assert socks["observer"].error("hearing:publish")["code"] == "forbidden"
    socks["observer"].emit("chat:send", {"text": "hello"})
    assert socks["observer"].error("chat:send")["code"] == "forbidden"
    send(socks["judge"], "hearing:start", {})
    send(socks["judge"], "hearing:call", {"participant": court.ids["witness"]})
    settle(app, fake, court, {"observer": {n: AV for n in (*HEARING, "witness",
                                                           "interpreter")}})
    assert all(feed != observer for held in fake.ever.values() for feed, _kind in held)
    assert not any(r.get("request") == "publish" for r in fake.requests
                   if r.get("id") == observer)
    # Not shown to the others: a guest who joins now is not told of them; hosts see a count.
    late = socks["other party"]
    late.emit("call:leave", {})
    late.emit("lobby:join", {})
    socks["clerk"].emit("lobby:admit", {"participant_id": late.id})
    late.emit("call:join", {"resume": False, "declaration": True})
    peers = [p["id"] for p in late.last("call:joined")["peers"]]
    assert court.ids["judge"] in peers and observer not in peers
    assert socks["judge"].last("hearing:state")["observers"] == 1


def test_mute_lock_and_bench_messages(setup: Any) -> None:
    app, fake, court, socks = setup
    send(socks["judge"], "hearing:start", {})
    send(socks["clerk"], "hearing:mute", {"participant": court.ids["party"], "lock": True})
    assert socks["party"].last("hearing:muted") == {"locked": True}
    socks["party"].emit("media:state", {"audio": True, "video": True})
    assert socks["party"].error("media:state")["code"] == "mute_locked"
    assert not participant(app, court.ids["party"]).audio_on
    settle(app, fake, court, {"judge": {**{n: AV for n in HEARING if n not in ("judge",)},
                                        "party": {"video"}}})
    send(socks["clerk"], "hearing:mute", {"all": True, "lock": False})
    send(socks["party"], "media:state", {"audio": True, "video": True})
    send(socks["judge"], "bench:message", {"body": "Break at eleven?"})
    said = socks["clerk"].last("bench:message")
    assert said["text"] == "Break at eleven?"
    for name in ("panel", "party", "counsel", "observer"):
        assert socks[name].take("bench:message") == []
    socks["party"].emit("call:leave", {})
    socks["party"].emit("lobby:join", {})
    socks["clerk"].emit("lobby:admit", {"participant_id": court.ids["party"]})
    socks["party"].emit("call:join", {"resume": False, "declaration": True})
    assert socks["party"].last("call:joined")["chat"] == []


def test_remove_takes_someone_out_for_good(setup: Any) -> None:
    app, fake, court, socks = setup
    send(socks["judge"], "hearing:start", {})
    send(socks["clerk"], "hearing:remove", {"participant": court.ids["other party"]})
    assert socks["other party"].error()["code"] == "removed"
    assert not socks["other party"].connected
    p = participant(app, court.ids["other party"])
    assert p.lobby_state is LobbyState.DENIED and p.joined_call_at is None
    settle(app, fake, court, {"judge": {n: AV for n in HEARING if n not in ("judge",
                                                                           "other party")}})


# --- every forbidden action by every role ------------------------------------------------------

#: Every procedure event with a payload a host could send.
def procedure_events(court: Court) -> list[tuple[str, dict[str, Any]]]:
    ids = court.ids
    return [
        ("hearing:start", {}), ("hearing:pause", {}), ("hearing:resume", {}),
        ("hearing:call", {"participant": ids["witness"]}),
        ("hearing:dismiss", {"participant": ids["party"]}),
        ("hearing:mute", {"participant": ids["party"], "lock": True}),
        ("hearing:mute", {"all": True, "lock": False}),
        ("hearing:remove", {"participant": ids["other party"]}),
        ("hearing:screen", {"protected": ids["witness"], "hidden_from": ids["party"],
                            "on": True}),
        ("room:open", {"kind": "bench", "members": [ids["panel"]]}),
        ("room:recall", {}), ("bench:message", {"body": "only for the bench"}),
    ]


@pytest.mark.parametrize("name", ["panel", "counsel", "party", "other party", "witness",
                                  "interpreter", "observer"])
def test_no_host_action_is_allowed_to_anyone_but_a_host(setup: Any, name: str) -> None:
    app, fake, court, socks = setup
    send(socks["judge"], "hearing:start", {})
    sock = socks[name]
    before = snapshot(app)
    for event, payload in procedure_events(court):
        sock.emit(event, payload)
        assert sock.error(event)["code"] == "forbidden", (name, event)
    assert snapshot(app) == before
    assert stage(app, court) is HearingStage.IN_SESSION


def test_what_even_a_host_or_counsel_may_not_do(setup: Any) -> None:
    app, fake, court, socks = setup
    ids = court.ids
    refused: list[tuple[str, str, dict[str, Any], str]] = [
        ("judge", "hearing:call", {"participant": ids["witness"]}, "not_started"),
        ("clerk", "hearing:mute", {"participant": ids["judge"], "lock": True}, "forbidden"),
        ("judge", "hearing:remove", {"participant": ids["panel"]}, "forbidden"),
        ("judge", "hearing:call", {"participant": ids["observer"]}, "forbidden"),
        ("judge", "hearing:screen", {"protected": ids["witness"], "hidden_from": ids["judge"],
                                     "on": True}, "forbidden"),
        ("judge", "hearing:screen", {"protected": ids["witness"],
                                     "hidden_from": ids["interpreter"], "on": True},
         "interpreter"),
        ("judge", "hearing:call", {"participant": 999999}, "unknown_peer"),
        ("judge", "hearing:pause", {}, "conflict"),
        ("counsel", "room:open", {"kind": "counsel", "members": [ids["other party"]]},
         "forbidden"),
        ("counsel", "room:open", {"kind": "counsel", "members": [ids["witness"]]},
         "forbidden"),
        ("counsel", "room:open", {"kind": "bench", "members": [ids["party"]]}, "forbidden"),
        ("party", "room:open", {"kind": "counsel", "members": [ids["counsel"]]}, "forbidden"),
        ("counsel", "room:invite", {"participant": ids["party"]}, "not_in_room"),
        ("party", "room:leave", {}, "not_in_room"),
        ("panel", "bench:message", {"body": "hello"}, "forbidden"),
    ]
    before = snapshot(app)
    for name, event, payload, code in refused:
        socks[name].emit(event, payload)
        assert socks[name].error(event)["code"] == code, (name, event, payload)
    assert snapshot(app) == before
    # In session, no private room opens.
    send(socks["judge"], "hearing:start", {})
    before = snapshot(app)
    socks["counsel"].emit("room:open", {"kind": "counsel", "members": [ids["party"]]})
    assert socks["counsel"].error("room:open")["code"] == "in_session"
    socks["judge"].emit("hearing:start", {})
    assert socks["judge"].error("hearing:start")["code"] == "conflict"
    assert snapshot(app) == before


@pytest.mark.parametrize(("event", "payload"), [
    ("hearing:call", {}), ("hearing:call", {"participant": "3"}),
    ("hearing:call", {"participant": 0}), ("hearing:mute", {"lock": True}),
    ("hearing:mute", {"participant": 3, "all": True, "lock": True}),
    ("hearing:mute", {"participant": 3}), ("hearing:mute", {"all": False, "lock": True}),
    ("hearing:screen", {"protected": 3, "hidden_from": 4}),
    ("hearing:screen", {"protected": 3, "hidden_from": 4, "on": "yes"}),
    ("room:open", {"kind": "lounge", "members": [3]}), ("room:open", {"kind": "bench"}),
    ("room:open", {"kind": "bench", "members": []}),
    ("room:open", {"kind": "bench", "members": list(range(1, 30))}),
    ("bench:message", {"body": ""}), ("bench:message", {"body": "x" * 2001}),
    ("hearing:start", {"now": True}), ("room:leave", []),
])
def test_bad_procedure_payloads_are_refused(sqlite_people_template: tuple[Path, People],
                                            tmp_path: Path, event: str, payload: Any) -> None:
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, _fake):
        court = make_court(app, people)
        judge = staff_socket(app, court, "judge")
        judge.emit(event, payload)
        assert judge.error(event)["code"] == "bad_request"


def test_staff_connect_with_their_own_row_and_only_hosts_get_the_hosts_room(
        sqlite_people_template: tuple[Path, People], tmp_path: Path) -> None:
    template, people = sqlite_people_template
    with janus_app(template, tmp_path) as (app, _fake):
        court = make_court(app, people)
        clerk, panel = staff_socket(app, court, "clerk"), staff_socket(app, court, "panel")
        assert clerk.id == court.ids["clerk"] and panel.id == court.ids["panel"]
        assert clerk.take("lobby:list") != [] and panel.take("lobby:list") == []
        # Host B's consult: not theirs to enter; no row in the hearing: refused.
        outsider = Browser(app.test_client()).login(Staff(people.admin.id, people.admin.email,
                                                          totp_secret=people.admin.totp_secret))
        sock = SocketClient(app, flask_client=outsider.client, auth={"appointment": court.id})
        assert not sock.connected and sock.connect_error["data"]["code"] == "forbidden"


def test_the_panel_is_not_a_host_and_the_judge_is(setup: Any) -> None:
    app, fake, court, socks = setup
    panel, judge = socks["panel"], socks["judge"]
    before = snapshot(app)
    for event, payload in (("lobby:admit", {"participant_id": court.ids["party"]}),
                           ("lobby:deny", {"participant_id": court.ids["party"]}),
                           ("record:start", {"version": "1"}), ("call:end", {})):
        panel.emit(event, payload)
        assert panel.error(event)["code"] == "forbidden", event
    assert snapshot(app) == before
    judge.emit("call:end", {})
    assert socks["party"].take("call:ended") == [{}]
    with app.app_context():
        appointment = db.session.get(Appointment, court.id)
        assert appointment is not None and appointment.status is Status.ENDED
