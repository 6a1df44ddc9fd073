"""Random bearer secrets (invite links, API tokens), stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

#: 24 random bytes: 192 bits, well past the 128 the design asks for.
TOKEN_BYTES = 24


def new_token(prefix: str = "") -> tuple[str, str]:
    """A fresh token and its hash. Show the token once; store only the hash."""
    token = prefix + secrets.token_urlsafe(TOKEN_BYTES)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    """SHA-256 hex: tokens carry enough entropy that a slow hash adds nothing."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
