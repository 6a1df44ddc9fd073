"""Signaling limits as an attacker meets them (docs/signaling.md, "Limits"): more sockets bring
no more events, one invite holds only a few sockets, guessing invites over Socket.IO is as slow
as at /j/, and one address cannot open sockets or send events without end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from calls import Consult, consult_now, guest_socket, in_call
from flask import Flask
from people import People
from support import SocketClient, hand_clock

from portal.call.identity import ADDRESS_BURST, EVENT_BURST


def refused_with(sock: SocketClient, code: str) -> dict[str, Any]:
    """The connect was refused with connect_error data {code, message}."""
    assert not sock.connected, f"{sock.label} was let in"
    packet = sock.connect_error
    assert isinstance(packet, dict), packet
    data = packet.get("data")
    assert isinstance(data, dict) and data.get("code") == code and data.get("message"), packet
    return data


def flood(sockets: list[SocketClient], count: int) -> int:
    """Send `count` cheap events, round robin over the sockets; how many were rate limited."""
    for i in range(count):
        sockets[i % len(sockets)].emit("media:state", {"audio": True, "video": True})
    return sum(e["code"] == "rate_limited"
               for sock in sockets for e in sock.take("error"))


def test_more_sockets_of_one_invite_bring_no_more_events(app: Flask, consult: Consult) -> None:
    """The attack: open several sockets of one invite, each with a fresh allowance."""
    hand_clock(app)  # frozen: nothing refills
    socks = [guest_socket(app, consult.token(0), label=f"tab{i}") for i in range(3)]
    limited = flood(socks, EVENT_BURST + 30)
    assert limited == 30, limited


def test_one_invite_holds_only_a_few_sockets(app: Flask, consult: Consult) -> None:
    most = app.config["SOCKETS_PER_PARTICIPANT"]
    held = [guest_socket(app, consult.token(0), label=f"tab{i}") for i in range(most)]
    extra = guest_socket(app, consult.token(0), label="one too many", welcome=False)
    refused_with(extra, "too_many_sockets")
    held[0].disconnect()
    assert guest_socket(app, consult.token(0), label="after one closed").connected
    other = guest_socket(app, consult.token(1), label="another guest")  # a limit per guest
    assert other.connected


def test_the_hosts_sockets_are_capped_too(app: Flask, consult: Consult,
                                         host_socket: Callable[..., SocketClient]) -> None:
    for i in range(app.config["SOCKETS_PER_PARTICIPANT"]):
        host_socket(consult, label=f"host tab {i}")
    refused_with(host_socket(consult, welcome=False), "too_many_sockets")


def test_guessing_invites_over_socketio_is_limited(app: Flask, consult: Consult) -> None:
    """Once an address has used up its failed invites, even a right guess is refused."""
    app.config["INVITE_RATE_LIMIT"] = "5 per minute"
    for i in range(5):
        guess = guest_socket(app, f"guess-{i:04d}-aaaaaaaaaaaaaaaaaaaa", welcome=False)
        refused_with(guess, "unauthorized")
    refused_with(guest_socket(app, "guess-5-aaaaaaaaaaaaaaaaaaaa", welcome=False),
                 "rate_limited")
    refused_with(guest_socket(app, consult.token(0), welcome=False), "rate_limited")


def test_working_invites_do_not_use_up_the_guessing_allowance(app: Flask,
                                                              consult: Consult) -> None:
    app.config["INVITE_RATE_LIMIT"] = "2 per minute"
    for _ in range(4):
        guest_socket(app, consult.token(0)).disconnect()
    assert guest_socket(app, consult.token(1)).connected


def test_connects_per_address_are_limited(app: Flask, consult: Consult) -> None:
    app.config["SOCKET_CONNECT_RATE_LIMIT"] = "4 per minute"
    for _ in range(4):
        guest_socket(app, consult.token(0)).disconnect()
    refused_with(guest_socket(app, consult.token(1), welcome=False), "rate_limited")


def test_events_per_address_are_limited(app: Flask, people: People,
                                        host_socket: Callable[..., SocketClient]) -> None:
    """Many invites from one address: each participant within its own limit, the address
    not."""
    hand_clock(app)
    guests = 1 + ADDRESS_BURST // EVENT_BURST
    c = consult_now(app, people.host_a, [f"G{i}" for i in range(guests)], "Crowd")
    _host, socks = in_call(app, host_socket, c, guests=guests)  # the guests share an address
    assert (ADDRESS_BURST + 40) / len(socks) + 5 < EVENT_BURST  # each participant within
    assert flood(socks, ADDRESS_BURST + 40) >= 40


def test_behind_a_proxy_a_socket_has_its_clients_address(sqlite_template: Any,
                                                           tmp_path: Any) -> None:
    """Behind a proxy every socket arrives from the proxy's address: unless X-Forwarded-For
    reaches the Socket.IO path too, one guest flooding events uses up the address allowance
    (and the connect limit) of every call on the server."""
    import shutil

    from apps import make_app

    from portal.extensions import socketio

    path = tmp_path / "proxied.sqlite3"
    shutil.copy(sqlite_template, path)
    app = make_app(f"sqlite:///{path}", tmp_path, PROXIES=1,
                   BASE_URL="https://consult.example.org")
    seen: list[str] = []

    def handle_request(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["REMOTE_ADDR"])
        start_response("200 OK", [])
        return [b""]

    original = socketio.server.eio.handle_request
    socketio.server.eio.handle_request = handle_request
    try:
        with app.test_client() as http:
            http.get("/socket.io/?EIO=4&transport=polling",
                     headers={"X-Forwarded-For": "203.0.113.7"},
                     environ_base={"REMOTE_ADDR": "10.0.0.1"})
    finally:
        socketio.server.eio.handle_request = original
        app.extensions["recording"].shutdown()
    assert seen == ["203.0.113.7"]
