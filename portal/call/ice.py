"""ICE servers for a participant: STUN from configuration, TURN with short-lived credentials.

TURN credentials follow the TURN REST scheme that coturn implements with `use-auth-secret`:
username = "<expiry unix time>:<label>", credential = base64(HMAC-SHA1(secret, username)).
coturn recomputes the credential from the shared secret and refuses it after the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def ice_servers(config: Any, label: str, now: float | None = None) -> tuple[list[dict], int]:
    """RTCIceServer dicts for one participant, and the unix time the TURN credential expires.

    label names the participant in coturn's logs; it must not contain ':'.
    """
    servers: list[dict] = []
    if config["STUN_URLS"]:
        servers.append({"urls": list(config["STUN_URLS"])})
    expires = int((time.time() if now is None else now) + config["TURN_TTL_SECONDS"])
    if config["TURN_URLS"] and config["TURN_SECRET"]:
        username = f"{expires}:{label.replace(':', '_')}"
        servers.append({"urls": list(config["TURN_URLS"]), "username": username,
                        "credential": turn_credential(config["TURN_SECRET"], username)})
    return servers, expires


def stun_servers(config: Any) -> list[dict]:
    """STUN only, no credentials: enough for a device check's probe before admission."""
    return [{"urls": list(config["STUN_URLS"])}] if config["STUN_URLS"] else []
