"""ICE configuration: STUN as configured, TURN credentials by the TURN REST scheme (coturn)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from calls import Consult, guest_socket, wait_in_lobby
from flask import Flask
from support import SocketClient

from portal.call.ice import ice_servers

CONFIG = {"STUN_URLS": ["stun:turn.example.org:3478"],
          "TURN_URLS": ["turn:turn.example.org:3478?transport=udp",
                        "turns:turn.example.org:5349?transport=tcp"],
          "TURN_SECRET": "north-sea-secret", "TURN_TTL_SECONDS": 600}


def coturn_password(secret: str, username: str) -> str:
    """What coturn computes with use-auth-secret: base64(HMAC-SHA1(secret, username)),
    here through openssl, independently of the portal's code."""
    out = subprocess.run(["openssl", "dgst", "-sha1", "-hmac", secret, "-binary"],
                         input=username.encode(), capture_output=True, check=True).stdout
    return base64.b64encode(out).decode()


def test_turn_credentials_are_what_coturn_expects_and_expire_after_the_ttl() -> None:
    now = 1_800_000_000
    servers, expires = ice_servers(CONFIG, "p42", now=now)
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    turn = servers[1]
    assert turn["urls"] == CONFIG["TURN_URLS"]
    assert expires == now + 600
    assert turn["username"] == f"{now + 600}:p42"
    assert turn["credential"] == coturn_password("north-sea-secret", turn["username"])
    # A credential made with another secret, or for another expiry, does not match.
    assert turn["credential"] != coturn_password("other", turn["username"])


def test_each_participant_gets_their_own_credential() -> None:
    a, _ = ice_servers(CONFIG, "p1", now=1_800_000_000)
    b, _ = ice_servers(CONFIG, "p2", now=1_800_000_000)
    assert a[1]["username"] != b[1]["username"]
    assert a[1]["credential"] != b[1]["credential"]
    c, _ = ice_servers(CONFIG, "evil:label", now=0)
    assert c[1]["username"].count(":") == 1  # the expiry stays the part coturn reads


def test_no_servers_configured_means_direct_connections_only() -> None:
    servers, _ = ice_servers({"STUN_URLS": [], "TURN_URLS": [], "TURN_SECRET": "",
                              "TURN_TTL_SECONDS": 60}, "p1")
    assert servers == []
    # TURN URLs without a secret would give credentials coturn refuses: leave TURN out.
    servers, _ = ice_servers({**CONFIG, "TURN_SECRET": ""}, "p1")
    assert [s["urls"] for s in servers] == [CONFIG["STUN_URLS"]]


def turn_config(app: Flask) -> None:
    app.config.update(STUN_URLS=CONFIG["STUN_URLS"], TURN_URLS=CONFIG["TURN_URLS"],
                      TURN_SECRET=CONFIG["TURN_SECRET"], TURN_TTL_SECONDS=900)


def has_turn(message: Any) -> bool:
    """Any TURN credential anywhere in the message."""
    return "credential" in json.dumps(message) or "turn:" in json.dumps(message)


def assert_fresh_turn(message: dict[str, Any], participant_id: int) -> None:
    turn = message["ice_servers"][1]
    expiry, _, label = turn["username"].partition(":")
    assert label == f"p{participant_id}"
    assert 0 < int(expiry) - time.time() <= 900
    assert int(expiry) == message["ice_expires_at"]
    digest = hmac.new(b"north-sea-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


def test_turn_credentials_only_after_admission(app: Flask, consult: Consult,
                                               host_socket: Callable[..., SocketClient]) -> None:
    """The attack: open the invite link, take the TURN credentials from `welcome`, never
    wait to be let in (or be turned away and reconnect for fresh ones)."""
    turn_config(app)
    host = host_socket(consult)
    assert_fresh_turn(host.welcome or {}, host.id)
    guest = guest_socket(app, consult.token(0))
    welcome = guest.welcome or {}
    assert not has_turn(welcome), welcome
    assert welcome["ice_servers"] is None and welcome["ice_expires_at"] is None
    assert welcome["stun_servers"] == [{"urls": CONFIG["STUN_URLS"]}]  # the device check's
    wait_in_lobby(host, guest)
    host.emit("lobby:admit", {"participant_id": guest.id})
    admitted = guest.last("lobby:state")
    assert admitted["state"] == "admitted"
    assert_fresh_turn(admitted, guest.id)
    guest.disconnect()
    back = guest_socket(app, consult.token(0), label="back")  # admitted: straight back in
    assert_fresh_turn(back.welcome or {}, guest.id)


def test_a_denied_guest_gets_no_turn_credentials(app: Flask, consult: Consult,
                                                 host_socket: Callable[..., SocketClient]
                                                 ) -> None:
    turn_config(app)
    host = host_socket(consult)
    guest = guest_socket(app, consult.token(0))
    wait_in_lobby(host, guest)
    host.emit("lobby:deny", {"participant_id": guest.id})
    assert not has_turn(guest.unread())
    guest.disconnect()
    for i in range(3):
        again = guest_socket(app, consult.token(0), label=f"again{i}")
        again.emit("lobby:join", {})
        assert not has_turn(again.history), again.history
        again.disconnect()
