"""Signaling through Flask-SocketIO's test client, set up for a test: a consult starting now
with its guests, host and guest sockets, the lobby and the call. The fixtures `consult`,
`other` and `host_socket` are imported into conftest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from conftest import People, Staff
from flask import Flask
from support import SocketClient, book, invite


@dataclass
class Consult:
    """An appointment starting now, its host and its guests' (participant id, token)."""

    id: int
    host: Staff
    guests: list[tuple[int, str]]

    def token(self, i: int = 0) -> str:
        return self.guests[i][1]


def _consult(app: Flask, staff: Staff, names: list[str], title: str) -> Consult:
    appointment_id = book(app, staff.id, starts_in=timedelta(0), minutes=60, title=title)
    return Consult(appointment_id, staff, [invite(app, appointment_id, name) for name in names])


@pytest.fixture
def consult(app: Flask, people: People) -> Consult:
    """Host A's consult, starting now, with guests Pat and Kim."""
    return _consult(app, people.host_a, ["Pat", "Kim"], "Follow-up A")


@pytest.fixture
def other(app: Flask, people: People) -> Consult:
    """Host B's consult, starting now, with guest Olav."""
    return _consult(app, people.host_b, ["Olav"], "Follow-up B")


@pytest.fixture
def host_socket(app: Flask, new_browser: Any) -> Callable[..., SocketClient]:
    """host_socket(consult) — the consult's host, signed in, connected; `as_staff` to be
    someone else; `welcome=False` to not require a welcome (a refused connect)."""

    def connect(c: Consult, *, as_staff: Staff | None = None, auth: Any = None,
                label: str = "host", welcome: bool = True) -> SocketClient:
        browser = new_browser().login(as_staff or c.host)
        sock = SocketClient(app, flask_client=browser.client, label=label,
                            auth={"appointment": c.id} if auth is None else auth)
        if welcome:
            assert sock.connected, f"{label} refused: {sock.connect_error!r}"
            sock.only("welcome")
        return sock

    return connect


def guest_socket(app: Flask, token: str, label: str = "guest",
                 welcome: bool = True) -> SocketClient:
    sock = SocketClient(app, auth={"invite": token}, label=label)
    if welcome:
        assert sock.connected, f"{label} refused: {sock.connect_error!r}"
        sock.only("welcome")
    return sock


def join_call(sock: SocketClient, resume: bool = False) -> dict[str, Any]:
    sock.emit("call:join", {"resume": resume})
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
    assert guest.last("lobby:state") == {"state": "admitted"}
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
