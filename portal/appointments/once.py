"""A link shown once, across a redirect (post/redirect/get): the POST that makes an invite
link keeps it in the session, sealed, and the appointment page it redirects to takes it out.
A reload of that page neither shows the link again nor makes another one. The token must not
be readable in the session store (database or Redis): it is sealed with a key derived from
the app's secret key, bound to the appointment, and gone after the one page."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app, session

_KEY = "new_link"


@dataclass(frozen=True)
class NewLink:
    """participant: the guest's id, or None for a hearing's observer link."""

    participant: int | None
    url: str


def _aead() -> AESGCM:
    secret = current_app.secret_key
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret or b"")
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"samtale link shown once v1").derive(raw))


def keep(appointment_id: int, link: NewLink) -> None:
    """Keep the link for the next page of this appointment (one at a time: a newer wins)."""
    nonce = secrets.token_bytes(12)
    plain = json.dumps({"participant": link.participant, "url": link.url}).encode()
    sealed = _aead().encrypt(nonce, plain, f"appointment:{appointment_id}".encode())
    session[_KEY] = {"appointment": appointment_id,
                     "sealed": base64.urlsafe_b64encode(nonce + sealed).decode("ascii")}


def take(appointment_id: int) -> NewLink | None:
    """The link kept for this appointment, removed from the session; else None."""
    kept = session.get(_KEY)
    if not isinstance(kept, dict) or kept.get("appointment") != appointment_id:
        return None
    session.pop(_KEY)
    try:
        raw = base64.urlsafe_b64decode(str(kept.get("sealed", "")))
        plain = json.loads(_aead().decrypt(raw[:12], raw[12:],
                                           f"appointment:{appointment_id}".encode()))
        participant = plain["participant"]
        return NewLink(participant if isinstance(participant, int) else None, str(plain["url"]))
    except (InvalidTag, ValueError, KeyError, TypeError):  # another key: nothing to show
        return None
