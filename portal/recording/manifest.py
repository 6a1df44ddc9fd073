"""Canonical bytes, Ed25519 signature and durable storage of a recording's manifest.

The manifest's content is assembled by the caller; this module only signs and checks it. The
signature covers CONTEXT ‖ canonical(manifest), so that a signature made for a manifest can
never be taken for one over anything else the same key may sign later.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from portal.recording.durable import replace_private
from portal.recording.keys import public_key_id

CONTEXT = b"samtale recording manifest v1\n"
SIGNATURE_BYTES = 64


class ManifestError(Exception):
    """A signed manifest is malformed, or its signature does not hold."""


def canonical(manifest: dict[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no spaces, UTF-8, no NaN/Infinity."""
    return json.dumps(
        manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """{"manifest": manifest, "signature": base64, "key_id": id of the signing key}."""
    signature = key.sign(CONTEXT + canonical(manifest))
    return {
        "manifest": manifest,
        "signature": base64.b64encode(signature).decode("ascii"),
        "key_id": public_key_id(key.public_key()),
    }


def verify(signed: Any, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The manifest if `signed` carries a valid signature by `public_key`; else ManifestError."""
    if not isinstance(signed, dict) or set(signed) != {"manifest", "signature", "key_id"}:
        raise ManifestError("not a signed manifest (expected manifest, signature and key_id)")
    manifest, encoded, key_id = signed["manifest"], signed["signature"], signed["key_id"]
    if not isinstance(manifest, dict) or not isinstance(encoded, str):
        raise ManifestError("not a signed manifest (manifest must be an object)")
    expected_id = public_key_id(public_key)
    if key_id != expected_id:
        raise ManifestError(
            f"signed by key {key_id!r}, not by this server's key {expected_id!r}: the signing "
            "key was replaced, or the manifest comes from elsewhere"
        )
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ManifestError("the signature is not valid base64") from None
    if len(signature) != SIGNATURE_BYTES:
        raise ManifestError("the signature has the wrong length")
    try:
        payload = CONTEXT + canonical(manifest)
    except ValueError:
        raise ManifestError("the manifest holds values JSON cannot represent") from None
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise ManifestError(
            "the signature does not match: the manifest was altered after signing"
        ) from None
    return manifest


def write_signed(path: Path, signed: dict[str, Any]) -> None:
    """Write a signed manifest atomically (temp file, fsync, rename; mode 0600)."""
    text = json.dumps(signed, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    replace_private(Path(path), (text + "\n").encode("utf-8"))


def read_signed(path: Path) -> dict[str, Any]:
    """Load a signed manifest (not yet verified); ManifestError if it is not a JSON object."""
    try:
        loaded: Any = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ManifestError(f"{path} is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise ManifestError(f"{path} is not a signed manifest")
    return loaded
