"""Signaling over the wire: real python-socketio clients (websocket transport) against the
portal running as `python app.py` (tests/live.py). Waits are event-driven, 5 s at most."""

from __future__ import annotations

import sqlite3
import time

import pytest
from live import WAIT, LivePortal, SignalClient, into_call, self_id

from portal.models import Status

pytestmark = [pytest.mark.live]

SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54400 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}


def test_host_login_cookie_and_welcome(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host = live.host_client(consult)
    welcome = host.wait_for("welcome")
    assert welcome["protocol"] == 1
    assert welcome["self"]["role"] == "host"
    assert welcome["appointment"]["id"] == consult.appointment_id
    assert welcome["reconnect_grace_seconds"] == live.grace_seconds
    assert host.wait_for("lobby:list") == {"waiting": []}


def test_admission_flow_end_to_end(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat Patient"])
    host = live.host_client(consult)
    host_id = self_id(host)
    host.emit("call:join", {"resume": False})
    assert host.wait_for("call:joined")["peers"] == []

    guest = live.guest_client(consult.guest)
    welcome = guest.wait_for("welcome")
    assert welcome["state"] == "invited" and welcome["resumable"] is False
    guest_id = welcome["self"]["id"]
    assert welcome["self"]["name"] == "Pat Patient"

    guest.emit("lobby:join", {})
    assert guest.wait_for("lobby:state") == {"state": "waiting"}
    waiting = host.wait_for("lobby:list", lambda p: bool(p["waiting"]))["waiting"]
    assert [(w["id"], w["name"], w["role"]) for w in waiting] == [
        (guest_id, "Pat Patient", "patient")]

    host.emit("lobby:admit", {"participant_id": guest_id})
    assert guest.wait_for("lobby:state")["state"] == "admitted"
    assert host.wait_for("lobby:list") == {"waiting": []}

    guest.emit("call:join", {"resume": False})
    joined = guest.wait_for("call:joined")
    assert [(p["id"], p["role"]) for p in joined["peers"]] == [(host_id, "host")]
    seen = host.wait_for("call:peer-joined")
    assert seen["peer"]["id"] == guest_id and seen["resume"] is False
    assert live.get_appointment(consult.appointment_id).status is Status.LIVE
    for client in (host, guest):
        client.assert_none("error", within=0.2)


def test_denied_guest_stays_out(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host = live.host_client(consult)
    self_id(host)
    guest = live.guest_client(consult.guest)
    guest_id = self_id(guest)
    guest.emit("lobby:join", {})
    assert guest.wait_for("lobby:state") == {"state": "waiting"}
    host.wait_for("lobby:list", lambda p: bool(p["waiting"]))
    host.emit("lobby:deny", {"participant_id": guest_id})
    assert guest.wait_for("lobby:state") == {"state": "denied"}
    guest.emit("call:join", {"resume": False})
    err = guest.wait_for("error")
    assert (err["code"], err["event"]) == ("forbidden", "call:join")
    guest.assert_none("call:joined", within=0.2)


def test_signal_relay_both_ways(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)

    offer = {"type": "offer", "sdp": SDP}
    host.emit("signal", {"to": guest_id, "description": offer})
    assert guest.wait_for("signal") == {"from": host_id, "description": offer}
    answer = {"type": "answer", "sdp": SDP}
    guest.emit("signal", {"to": host_id, "description": answer})
    assert host.wait_for("signal") == {"from": guest_id, "description": answer}

    # A burst of candidates arrives complete and in order.
    for i in range(30):
        guest.emit("signal", {"to": host_id, "candidate": {**CANDIDATE, "sdpMLineIndex": i}})
    guest.emit("signal", {"to": host_id, "candidate": None})
    got = [host.wait_for("signal") for _ in range(31)]
    assert [g["candidate"]["sdpMLineIndex"] for g in got[:30]] == list(range(30))
    assert got[30] == {"from": guest_id, "candidate": None}
    assert all(g["from"] == guest_id for g in got)
    host.emit("signal", {"to": guest_id, "candidate": CANDIDATE})
    assert guest.wait_for("signal") == {"from": host_id, "candidate": CANDIDATE}
    for client in (host, guest):
        client.assert_none("error", within=0.2)


def test_cross_appointment_signal_is_refused(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    a = live.book_consult(live.create_host(), ["Pat"])
    b = live.book_consult(live.create_host(), ["Olav"])
    host_a, pat, host_a_id, pat_id = into_call(live, a)
    host_b, olav, host_b_id, olav_id = into_call(live, b)
    assert not {host_b_id, olav_id} & {host_a_id, pat_id}
    for target in (host_b_id, olav_id):
        pat.emit("signal", {"to": target, "description": {"type": "offer", "sdp": SDP}})
        err = pat.wait_for("error")
        assert (err["code"], err["event"]) == ("unknown_peer", "signal")
        pat.emit("signal", {"to": target, "candidate": CANDIDATE})
        assert pat.wait_for("error")["code"] == "unknown_peer"
    host_b.assert_none("signal", within=0.5)
    olav.assert_none("signal", within=0.0)
    assert pat.connected


def test_connect_refusals(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    a = live.book_consult(live.create_host(), ["Pat"])
    b = live.book_consult(live.create_host(), ["Olav"])

    def refused(client: SignalClient, codes: set[str]) -> None:
        client.connect(expect_refusal=True)
        packet = client.connect_error
        assert isinstance(packet, dict), packet
        data = packet.get("data")  # what socket.io-client shows the page as err.data
        assert isinstance(data, dict) and {"code", "message"} <= data.keys(), packet
        assert data["code"] in codes, packet
        client.assert_none("welcome", within=0.0)

    refused(live.guest_client("not-a-real-invite", connect=False), {"unauthorized"})
    refused(live.client(auth={"appointment": a.appointment_id}, connect=False),
            {"unauthorized"})
    # Host B's session for host A's appointment.
    refused(live.client(cookie=live.login_cookie(b.host),
                        auth={"appointment": a.appointment_id}, connect=False),
            {"unauthorized", "forbidden"})
    refused(live.client(cookie="session=forged.cookie.value",
                        auth={"appointment": a.appointment_id}, connect=False),
            {"unauthorized"})


def test_payload_limits_over_the_wire(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    host.emit("signal", {"to": guest_id,
                         "description": {"type": "offer", "sdp": "x" * (70 * 1024)}})
    err = host.wait_for("error")
    assert (err["code"], err["event"]) == ("too_large", "signal")
    assert host.connected
    guest.assert_none("signal", within=0.2)
    # Above 1 MiB the connection is closed.
    host.emit("chat:send", {"text": "y" * (1024 * 1024 + 10)})
    assert host.disconnected.wait(WAIT), "a 1 MiB message did not close the connection"
    guest.assert_none("chat:message", within=0.2)
    assert live.alive()


def test_undecodable_frames_do_not_break_anything(live_portal_module: LivePortal) -> None:
    """Frames that are not Socket.IO packets (broken JSON, nesting too deep for the parser,
    unknown packet types) neither kill the connection nor the server."""
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    guest = live.guest_client(consult.guest)
    guest.wait_for("welcome")
    for raw in ['2["lobby:join",{', "9zzz", "2", '2"str"', "2[]", "2[1,2]", "2[null]",
                '2["lobby:join",' + "[" * 50_000 + "]" * 50_000 + "]",
                '2["lobby:join",' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "]"]:
        guest.sio.eio.send(raw)
    guest.emit("lobby:join", {})
    assert guest.wait_for("lobby:state") == {"state": "waiting"}
    assert guest.connected and live.alive()


def test_rate_limit_over_the_wire(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    # Well past the burst (200) even if a busy server handles only 50 a second, while the
    # bucket refills at 40 a second.
    for i in range(1500):
        host.emit("media:state", {"audio": bool(i % 2), "video": True})
    err = host.wait_for("error", timeout=30)
    assert (err["code"], err["event"]) == ("rate_limited", "media:state")
    assert host.connected


@pytest.mark.live_portal(grace_seconds=2)
def test_reconnect_within_the_grace_period(live_portal: LivePortal) -> None:
    live = live_portal
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)

    guest.drop()
    assert host.wait_for("call:peer-reconnecting") == {"id": guest_id}

    back = live.guest_client(consult.guest, label="guest back")
    welcome = back.wait_for("welcome")
    assert welcome["self"]["id"] == guest_id
    assert welcome["resumable"] is True
    assert welcome["state"] == "admitted"
    back.emit("call:join", {"resume": True})  # no lobby
    joined = back.wait_for("call:joined")
    assert host_id in [p["id"] for p in joined["peers"]]
    seen = host.wait_for("call:peer-joined")
    assert seen["peer"]["id"] == guest_id and seen["resume"] is True

    host.emit("signal", {"to": guest_id, "description": {"type": "offer", "sdp": SDP}})
    assert back.wait_for("signal")["from"] == host_id
    # The old grace timer must not put the returned guest out afterwards.
    host.assert_none("call:peer-left", within=live.grace_seconds + 1.5)
    host.emit("signal", {"to": guest_id, "candidate": None})
    assert back.wait_for("signal") == {"from": host_id, "candidate": None}


@pytest.mark.live_portal(grace_seconds=2)
def test_reload_within_the_grace_period_renegotiates(live_portal: LivePortal) -> None:
    """A reloaded page comes back with resume false; the others are told so."""
    live = live_portal
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    guest.goodbye()  # a page reload
    assert host.wait_for("call:peer-reconnecting") == {"id": guest_id}
    back = live.guest_client(consult.guest, label="reloaded")
    assert back.wait_for("welcome")["resumable"] is True
    back.emit("call:join", {"resume": False})
    back.wait_for("call:joined")
    seen = host.wait_for("call:peer-joined")
    assert seen["peer"]["id"] == guest_id and seen["resume"] is False


@pytest.mark.live_portal(grace_seconds=2)
def test_after_the_grace_period_the_guest_waits_in_the_lobby(live_portal: LivePortal) -> None:
    live = live_portal
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)

    started = time.monotonic()
    guest.drop()
    assert host.wait_for("call:peer-reconnecting") == {"id": guest_id}
    assert host.wait_for("call:peer-left", timeout=live.grace_seconds + WAIT) == {
        "id": guest_id}
    assert time.monotonic() - started >= live.grace_seconds - 0.5, "left before the grace ended"

    back = live.guest_client(consult.guest, label="too late")
    welcome = back.wait_for("welcome")
    assert welcome["resumable"] is False
    assert welcome["state"] == "left"
    back.emit("call:join", {"resume": True})
    err = back.wait_for("error")
    assert (err["code"], err["event"]) == ("forbidden", "call:join")
    host.assert_none("call:peer-joined", within=0.2)

    back.emit("lobby:join", {})
    assert back.wait_for("lobby:state") == {"state": "waiting"}
    host.wait_for("lobby:list", lambda p: guest_id in [w["id"] for w in p["waiting"]])
    host.emit("lobby:admit", {"participant_id": guest_id})
    assert back.wait_for("lobby:state")["state"] == "admitted"
    back.emit("call:join", {"resume": False})
    back.wait_for("call:joined")
    assert host.wait_for("call:peer-joined")["peer"]["id"] == guest_id


@pytest.mark.live_portal(grace_seconds=2)
def test_host_reconnects_within_the_grace_period(live_portal: LivePortal) -> None:
    live = live_portal
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    cookie = host.cookie
    host.drop()
    assert guest.wait_for("call:peer-reconnecting") == {"id": host_id}
    back = live.host_client(consult, cookie=cookie, label="host back")
    assert back.wait_for("welcome")["resumable"] is True
    back.emit("call:join", {"resume": True})
    assert guest_id in [p["id"] for p in back.wait_for("call:joined")["peers"]]
    seen = guest.wait_for("call:peer-joined")
    assert seen["peer"]["id"] == host_id and seen["resume"] is True


def test_host_ends_the_call_over_the_wire(live_portal_module: LivePortal) -> None:
    live = live_portal_module
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    host.emit("call:end", {})
    assert guest.wait_for("call:ended") == {}
    assert host.wait_for("call:ended") == {}
    assert live.get_appointment(consult.appointment_id).status is Status.ENDED
    problems = []
    for client in (guest, host):
        if not client.disconnected.wait(WAIT):
            problems.append(f"{client.label} still connected: call:ended — the server then "
                            "disconnects everyone")
    late = live.guest_client(consult.guest, connect=False, label="late")
    late.connect(expect_refusal=True)
    packet = late.connect_error
    if not (isinstance(packet, dict) and isinstance(packet.get("data"), dict)
            and packet["data"].get("code") == "ended"):
        problems.append(f"connect after the end: connect_error {packet!r}, expected err.data "
                        "{code: 'ended', message}")
    assert not problems, problems


@pytest.mark.live_portal(grace_seconds=5, env={"PORTAL_SOCKET_PING_INTERVAL_SECONDS": "1",
                                               "PORTAL_SOCKET_PING_TIMEOUT_SECONDS": "2"})
def test_a_late_pong_closes_a_socket_without_stalling_whoever_sends_to_it(
        live_portal: LivePortal) -> None:
    """engine.io closes a socket whose pong is late inside the emit that finds it so. The
    disconnect's database write must not run in that sender's thread: with the database's
    write lock held elsewhere, the sender's next events are answered at once, and the
    disconnect is recorded once the lock is free."""
    live = live_portal
    consult = live.book_consult(live.create_host(), ["Pat"])
    host, guest, host_id, guest_id = into_call(live, consult)
    pinged = guest.mute_pongs()
    locker = sqlite3.connect(live.database_url.removeprefix("sqlite:///"), timeout=WAIT,
                             isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        assert pinged.wait(WAIT), "the server sent no ping"
        deadline = time.monotonic() + 3 * WAIT
        while not guest.disconnected.is_set():
            assert time.monotonic() < deadline, "the server never closed the silent socket"
            host.emit("signal", {"to": guest_id, "candidate": None})
            host.emit("signal", {"to": guest_id})  # no description or candidate: refused
            err = host.wait_for("error", timeout=1.0)
            assert (err["code"], err["event"]) == ("bad_request", "signal")
            time.sleep(0.05)  # within the event rate limit
        host.assert_none("call:peer-reconnecting", within=0.2)  # still waiting for the lock
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert host.wait_for("call:peer-reconnecting") == {"id": guest_id}
