"""The hearing's socket events as the guard checks them (docs/signaling.md, "Hearings"),
through Flask-SocketIO's test client and without a media server: who may send them, what a
bad payload gets, what a call says when no Janus is configured, and that `signal` is refused
in a call that goes through Janus. Media through a real Janus: e2e/test_hearing_live.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from calls import Consult, admit, guest_socket, in_call, join_call, wait_in_lobby
from flask import Flask
from people import People
from support import SocketClient, book, invite, snapshot

from portal.models import Kind, RecordingPolicy

SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 54400 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0}
#: A sound payload of every hearing event.
EVENTS: list[tuple[str, dict[str, Any]]] = [
    ("hearing:publish", {"sdp": SDP}),
    ("hearing:subscribe", {"sdp": SDP}),
    ("hearing:candidate", {"pc": "publish", "candidate": CANDIDATE}),
    ("hearing:candidate", {"pc": "subscribe", "candidate": None}),
    ("hearing:layer", {"participant_id": 1, "substream": 2}),
    ("hearing:unpublish", {}),
]


@pytest.fixture
def hearing(app: Flask, people: People) -> Consult:
    """Host A's hearing, starting now (not recorded), with Pat and Kim."""
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(0), minutes=60,
                          kind=Kind.HEARING, title="Hearing", policy=RecordingPolicy.OFF)
    return Consult(appointment_id, people.host_a,
                   [invite(app, appointment_id, name) for name in ("Pat", "Kim")])


def hearing_said(sock: SocketClient) -> list[tuple[str, Any]]:
    return [(e, p) for e, p in sock.unread() if e.startswith("hearing:")]


def test_welcome_says_whether_the_call_goes_through_janus(
        app: Flask, consult: Consult, hearing: Consult,
        host_socket: Callable[..., SocketClient]) -> None:
    host = host_socket(consult, welcome=False)
    assert host.only("welcome")["media"] == "mesh"
    assert hearing_said(host) == []
    judge = host_socket(hearing, welcome=False)
    assert judge.only("welcome")["media"] == "janus"
    # No Janus configured here (PORTAL_JANUS_URLS empty): the page says so at once.
    said = judge.only("hearing:media")
    assert said["state"] == "unavailable" and "janus" in said["message"]
    pat = guest_socket(app, hearing.token(0), welcome=False)
    assert pat.only("welcome")["media"] == "janus"
    assert pat.only("hearing:media")["state"] == "unavailable"


def test_a_consult_of_more_than_four_goes_through_janus(
        app: Flask, consult: Consult, host_socket: Callable[..., SocketClient]) -> None:
    for name in ("Ola", "Kari"):  # with the host and Pat and Kim: five
        invite(app, consult.id, name)
    host = host_socket(consult, welcome=False)
    assert host.only("welcome")["media"] == "janus"


def test_without_janus_a_hearing_says_unavailable_and_changes_nothing(
        app: Flask, hearing: Consult, host_socket: Callable[..., SocketClient]) -> None:
    judge, (pat,) = in_call(app, host_socket, hearing)
    before = snapshot(app)
    for event, payload in EVENTS:
        pat.emit(event, payload)
        pat.no_errors()
        assert [p["state"] for e, p in hearing_said(pat)] == ["unavailable"], event
        pat.take("hearing:media")
    assert snapshot(app) == before
    assert hearing_said(judge) == []
    # Joining again says it again, after call:joined.
    join_call(pat)
    assert pat.only("hearing:media")["state"] == "unavailable"


def test_signal_is_refused_in_a_janus_call(
        app: Flask, hearing: Consult, host_socket: Callable[..., SocketClient]) -> None:
    judge, (pat,) = in_call(app, host_socket, hearing)
    for payload in ({"to": judge.id, "description": {"type": "offer", "sdp": SDP}},
                    {"to": judge.id, "candidate": CANDIDATE}):
        pat.emit("signal", payload)
        assert pat.error("signal")["code"] == "use_hearing"
    assert judge.take("signal") == []


def test_hearing_events_from_who_is_not_in_the_janus_call_are_refused(
        app: Flask, consult: Consult, hearing: Consult,
        host_socket: Callable[..., SocketClient]) -> None:
    """Every hearing event, from everyone who is not in this Janus call on this socket: an
    error with a code, nothing stored, nothing said to anyone."""
    judge = host_socket(hearing, label="judge")
    judge_out = host_socket(hearing, label="judge's other tab")  # the judge is not in yet
    pat = guest_socket(app, hearing.token(0), label="pat waiting")
    wait_in_lobby(judge, pat)
    kim = guest_socket(app, hearing.token(1), label="kim admitted, not joined")
    kim.emit("lobby:join", {})
    judge.emit("lobby:admit", {"participant_id": kim.id})
    assert kim.last("lobby:state")["state"] == "admitted"
    host, (olav,) = in_call(app, host_socket, consult)  # in a consult, peer to peer
    senders = {judge_out: "not_in_call", pat: "forbidden", kim: "not_in_call",
               olav: "forbidden", host: "forbidden"}
    everyone = [judge, *senders]
    for sock in everyone:
        sock.take("hearing:media")  # the welcome's: no Janus here
        sock.take("hearing:state")  # the hosts' board, as people came into the lobby
    before = snapshot(app)
    for sender, code in senders.items():
        for event, payload in EVENTS:
            sender.emit(event, payload)
            err = sender.error(event)
            assert err["code"] == code, (sender.label, event, err)
            assert sender.connected
    assert snapshot(app) == before
    for sock in everyone:
        assert hearing_said(sock) == [], sock.label


@pytest.mark.parametrize(("event", "payload"), [
    ("hearing:publish", {}),
    ("hearing:publish", {"sdp": ""}),
    ("hearing:publish", {"sdp": 12}),
    ("hearing:publish", {"sdp": SDP, "to": 3}),
    ("hearing:publish", {"sdp": "x" * (33 * 1024)}),
    ("hearing:subscribe", {"sdp": None}),
    ("hearing:subscribe", []),
    ("hearing:candidate", {"pc": "both", "candidate": CANDIDATE}),
    ("hearing:candidate", {"pc": "publish"}),
    ("hearing:candidate", {"pc": "publish", "candidate": {"sdpMid": "0"}}),
    ("hearing:candidate", {"pc": "publish", "candidate": {**CANDIDATE, "candidate": "c" * 2000}}),
    ("hearing:candidate", {"pc": "subscribe", "candidate": "candidate:1"}),
    ("hearing:layer", {"participant_id": 1}),
    ("hearing:layer", {"participant_id": 1, "substream": 3}),
    ("hearing:layer", {"participant_id": 1, "substream": -1}),
    ("hearing:layer", {"participant_id": "1", "substream": 0}),
    ("hearing:layer", {"participant_id": 0, "substream": 0}),
    ("hearing:layer", {"participant_id": 1, "substream": True}),
    ("hearing:unpublish", {"now": True}),
    ("hearing:unpublish", "please"),
])
def test_bad_hearing_payloads_are_refused(
        app: Flask, hearing: Consult, host_socket: Callable[..., SocketClient], event: str,
        payload: Any) -> None:
    judge, (pat,) = in_call(app, host_socket, hearing)
    pat.emit(event, payload)
    assert pat.error(event)["code"] == "bad_request"
    assert hearing_said(pat) == [] and hearing_said(judge) == []
    assert pat.connected


def test_a_hearing_payload_above_64_kib_is_too_large(
        app: Flask, hearing: Consult, host_socket: Callable[..., SocketClient]) -> None:
    judge, (pat,) = in_call(app, host_socket, hearing)
    pat.emit("hearing:publish", {"sdp": SDP, "x": "y" * (65 * 1024)})
    assert pat.error("hearing:publish")["code"] == "too_large"
    assert pat.connected


def test_a_guest_admitted_later_may_send_hearing_events(
        app: Flask, hearing: Consult, host_socket: Callable[..., SocketClient]) -> None:
    """The roster is forgotten when someone comes in: the new member is not refused."""
    judge, (pat,) = in_call(app, host_socket, hearing)
    kim = guest_socket(app, hearing.token(1), label="kim")
    kim.emit("hearing:unpublish", {})
    assert kim.error("hearing:unpublish")["code"] == "forbidden"
    admit(judge, kim)
    kim.take("hearing:media")
    kim.emit("hearing:unpublish", {})
    kim.no_errors()
    assert kim.only("hearing:media")["state"] == "unavailable"
