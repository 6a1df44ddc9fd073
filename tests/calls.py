"""Signaling through Flask-SocketIO's test client, set up for a test: a consult starting now
with its guests, guest sockets, the lobby and the call. The fixtures built on these (`consult`,
`other`, `host_socket`) are in conftest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask
from people import Staff
from support import SocketClient, book, invite


@dataclass
class Consult:
    """An appointment starting now, its host and its guests' (participant id, token)."""

    id: int
    host: Staff
    guests: list[tuple[int, str]]

    def token(self, i: int = 0) -> str:
        return self.guests[i][1]


def consult_now(app: Flask, staff: Staff, names: list[str], title: str) -> Consult:
    """`staff`'s consult, starting now, with a guest of each name."""
    appointment_id = book(app, staff.id, starts_in=timedelta(0), minutes=60, title=title)
    return Consult(appointment_id, staff, [invite(app, appointment_id, name) for name in names])


def guest_socket(app: Flask, token: str, label: str = "guest",
                 welcome: bool = True) -> SocketClient:
    sock = SocketClient(app, auth={"invite": token}, label=label)
    if welcome:
        assert sock.connected, f"{label} refused: {sock.connect_error!r}"
        sock.only("welcome")
    return sock


def join_call(sock: SocketClient, resume: bool = False) -> dict[str, Any]:
    # A hearing's declaration (no recording, no photos): ignored in a consult.
    sock.emit("call:join", {"resume": resume, "declaration": True})
    sock.no_errors()
    joined = sock.only("call:joined")
    assert isinstance(joined, dict)
    return joined


def wait_in_lobby(host: SocketClient, guest: SocketClient) -> None:
    guest.emit("lobby:join", {})
    guest.no_errors()
    assert guest.last("lobby:state") == {"state": "waiting"}
    waiting = host.last("lobby:list")["waiting"]
    assert guest.id in [w["id"] for w in waiting]


def admit(host: SocketClient, guest: SocketClient) -> None:
    """Guest waits, host admits, guest enters the call."""
    wait_in_lobby(host, guest)
    host.emit("lobby:admit", {"participant_id": guest.id})
    host.no_errors()
    assert guest.last("lobby:state")["state"] == "admitted"
    join_call(guest)


def in_call(app: Flask, host_socket: Callable[..., SocketClient], c: Consult,
            guests: int = 1) -> tuple[SocketClient, list[SocketClient]]:
    """The host and the first `guests` guests, all in the call; queues emptied."""
    host = host_socket(c)
    join_call(host)
    inside = []
    for i in range(guests):
        guest = guest_socket(app, c.token(i), label=f"guest{i}")
        admit(host, guest)
        inside.append(guest)
    for sock in (host, *inside):
        sock.unread()
        sock._unread.clear()
    return host, inside
