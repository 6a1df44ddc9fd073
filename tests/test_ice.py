"""ICE configuration: STUN as configured, TURN credentials by the TURN REST scheme (coturn)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time
from datetime import timedelta
from typing import Any

from flask import Flask

from portal.appointments import services
from portal.call.ice import ice_servers
from portal.extensions import db, socketio
from portal.models import Kind, ParticipantRole, RecordingPolicy, User, utcnow

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


def test_welcome_carries_fresh_turn_credentials(app: Flask, people: Any) -> None:
    app.config.update(STUN_URLS=CONFIG["STUN_URLS"], TURN_URLS=CONFIG["TURN_URLS"],
                      TURN_SECRET=CONFIG["TURN_SECRET"], TURN_TTL_SECONDS=900)
    with app.app_context():
        host = db.session.get(User, people.host_a.id)
        appointment = services.book(
            host, kind=Kind.CONSULT, title="Check-up", starts_at=utcnow() + timedelta(minutes=5),
            duration_minutes=30, recording_policy=RecordingPolicy.OFF)
        guest, token = services.add_guest(appointment, display_name="Pat",
                                          role=ParticipantRole.PATIENT)
        db.session.commit()
        guest_id = guest.id
    client = socketio.test_client(app, auth={"invite": token})
    welcome = next(m for m in client.get_received() if m["name"] == "welcome")["args"][0]
    turn = welcome["ice_servers"][1]
    expiry, _, label = turn["username"].partition(":")
    assert label == f"p{guest_id}"
    assert 0 < int(expiry) - time.time() <= 900
    assert int(expiry) == welcome["ice_expires_at"]
    digest = hmac.new(b"north-sea-secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()
    client.disconnect()
