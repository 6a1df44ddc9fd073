"""Master-key keyring (wraps per-recording data keys) and the server's Ed25519 signing key.

Master keys live in `instance/recording_keys.json` (created on first use, mode 0600) or, read-only,
in the environment variable PORTAL_RECORDING_KEYS (`id:base64key,id:base64key`, last = current).
A data key is wrapped with AES-256-GCM under the current master key, bound to the recording id
and the key id, and stored with its key id in the database. Rotation adds a new current key and
re-wraps data keys; media files are never re-encrypted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from portal.recording.durable import (
    PRIVATE_MODE,
    create_exclusive,
    exposed_to_others,
    read_private,
    replace_private,
)

KEYS_FILE = "recording_keys.json"
KEYS_ENV = "PORTAL_RECORDING_KEYS"
SIGNING_KEY_FILE = "recording_signing_key.pem"
SIGNING_KEY_ENV = "PORTAL_RECORDING_SIGNING_KEY"
KEY_BYTES = 32
WRAP_NONCE_BYTES = 12
WRAPPED_BYTES = WRAP_NONCE_BYTES + KEY_BYTES + 16  # nonce ‖ ciphertext ‖ GCM tag
_FILE_FORMAT = "samtale-recording-keys"
_WRAP_CONTEXT = b"SAMTREC key wrap v1\x00"
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class KeyringError(Exception):
    """The keyring or signing key cannot be used; the message tells the operator what to do."""


def new_data_key() -> bytes:
    """A fresh random 32-byte data key for one recording."""
    return os.urandom(KEY_BYTES)


def _wrap_aad(key_id: str, recording_id: str) -> bytes:
    # Length-prefixed so that no (key id, recording id) pair can collide with another.
    kid, rid = key_id.encode(), recording_id.encode()
    return _WRAP_CONTEXT + struct.pack(">H", len(kid)) + kid + struct.pack(">H", len(rid)) + rid


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.strip(), validate=True)


def _check_key_id(key_id: str, where: str) -> None:
    if not _KEY_ID_RE.match(key_id):
        raise KeyringError(
            f"{where}: key id {key_id!r} is invalid (use 1-64 letters, digits, '_', '.', '-')"
        )


class Keyring:
    """Master keys by id; the last one is current and wraps new data keys."""

    def __init__(self, keys: list[tuple[str, bytes]], *, path: Path | None, source: str) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._source = source
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, bytes] = {}
        self._set_keys(keys)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, instance_path: Path, env_value: str | None) -> Keyring:
        """The keyring from PORTAL_RECORDING_KEYS if set, else `instance_path/recording_keys.json`
        (created with one fresh key, mode 0600, on first use)."""
        if env_value is not None and env_value.strip():
            return cls(_parse_env(env_value), path=None, source=f"environment variable {KEYS_ENV}")
        path = Path(instance_path) / KEYS_FILE
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # A concurrent first start may win the race: then its file is the keyring.
            create_exclusive(path, _dump_file([(_new_key_id(set()), new_data_key())]))
        keyring = cls([], path=path, source=str(path))
        keyring._reload()
        return keyring

    @property
    def current_id(self) -> str:
        """Id of the key that wraps new data keys."""
        self._refresh()
        with self._lock:
            return next(reversed(self._keys))

    @property
    def source(self) -> str:
        """Where the keys come from (a file path or the environment variable), for messages."""
        return self._source

    @property
    def from_environment(self) -> bool:
        """True if the keys come from PORTAL_RECORDING_KEYS (the keyring is then read-only)."""
        return self._path is None

    def ids(self) -> list[str]:
        """All key ids, oldest first; the last is current."""
        self._refresh()
        with self._lock:
            return list(self._keys)

    # -- wrapping ----------------------------------------------------------------------------

    def wrap(self, data_key: bytes, recording_id: str) -> tuple[str, bytes]:
        """Wrap a data key with the current master key: (key id, nonce ‖ ciphertext ‖ tag)."""
        if len(data_key) != KEY_BYTES:
            raise ValueError("a recording data key is 32 bytes")
        self._refresh()
        with self._lock:
            key_id, master = next(reversed(self._keys.items()))
        nonce = os.urandom(WRAP_NONCE_BYTES)
        sealed = AESGCM(master).encrypt(nonce, data_key, _wrap_aad(key_id, recording_id))
        return key_id, nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, recording_id: str) -> bytes:
        """Recover a data key wrapped by `wrap` for this recording id."""
        master = self._key(key_id)
        if len(wrapped) != WRAPPED_BYTES:
            raise KeyringError(
                f"the data key of recording {recording_id} cannot be unwrapped: it is "
                f"{len(wrapped)} bytes instead of {WRAPPED_BYTES} (damaged database value)"
            )
        nonce, sealed = wrapped[:WRAP_NONCE_BYTES], wrapped[WRAP_NONCE_BYTES:]
        try:
            return AESGCM(master).decrypt(nonce, sealed, _wrap_aad(key_id, recording_id))
        except InvalidTag:
            raise KeyringError(
                f"the data key of recording {recording_id} cannot be unwrapped: wrong master "
                f"key for id {key_id!r} or damaged database value"
            ) from None

    def rewrap(self, key_id: str, wrapped: bytes, recording_id: str) -> tuple[str, bytes]:
        """Unwrap with the old key and wrap again with the current key (used after rotate)."""
        return self.wrap(self.unwrap(key_id, wrapped, recording_id), recording_id)

    def rotate(self) -> str:
        """Add a new current key, rewrite the keyring file atomically; returns the new id."""
        if self._path is None:
            raise KeyringError(
                f"the recording keys come from {KEYS_ENV} and cannot be rotated here: add a new "
                f"key at the end of {KEYS_ENV} (id:base64 of 32 random bytes), keep the old "
                "ones, restart, then re-wrap the data keys"
            )
        with self._file_lock():
            # Re-read under the lock: another process may have rotated since we loaded.
            self._reload()
            with self._lock:
                keys = list(self._keys.items())
            new_id = _new_key_id(set(self._keys))
            keys.append((new_id, new_data_key()))
            replace_private(self._path, _dump_file(keys))
            self._reload()
        return new_id

    # -- internals ---------------------------------------------------------------------------

    def _key(self, key_id: str) -> bytes:
        with self._lock:
            master = self._keys.get(key_id)
        if master is None and self._path is not None:
            # Another process (e.g. `flask recordings rotate-key`) may have added it.
            self._reload()
            with self._lock:
                master = self._keys.get(key_id)
        if master is None:
            raise KeyringError(
                f"unknown key id {key_id!r}: the keyring ({self._source}) holds "
                f"{', '.join(self._keys)}; restore the key that was removed or the media "
                "wrapped with it cannot be decrypted"
            )
        return master

    def _set_keys(self, keys: list[tuple[str, bytes]]) -> None:
        with self._lock:
            self._keys = dict(keys)

    def _refresh(self) -> None:
        """Reload the file if another process replaced it (rotation) since we read it."""
        if self._path is None:
            return
        try:
            info = self._path.stat()
        except FileNotFoundError:
            raise KeyringError(
                f"the recording keyring {self._path} has disappeared: restore it from backup; "
                "without it no recording can be decrypted"
            ) from None
        if (info.st_ino, info.st_mtime_ns, info.st_size) != self._stamp:
            self._reload()

    def _reload(self) -> None:
        assert self._path is not None
        path = self._path
        raw, info = _read_secret(path, "keyring", "check who may have copied it")
        self._set_keys(_parse_file(raw, path))
        self._stamp = (info.st_ino, info.st_mtime_ns, info.st_size)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        assert self._path is not None
        lock_path = self._path.with_name(self._path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _read_secret(path: Path, what: str, advice: str) -> tuple[bytes, os.stat_result]:
    """A key file's bytes; refused when others may read it (a copied key opens everything)."""
    try:
        raw, info = read_private(path)
    except OSError as exc:
        raise KeyringError(f"cannot read the recording {what} {path}: {exc}") from None
    if exposed_to_others(info):
        raise KeyringError(
            f"the recording {what} {path} is accessible to other users "
            f"(mode {info.st_mode & 0o777:03o}); run `chmod 600 {path}` and {advice}"
        )
    return raw, info


def _new_key_id(taken: set[str]) -> str:
    while True:
        key_id = secrets.token_hex(4)
        if key_id not in taken:
            return key_id


def _parse_env(value: str) -> list[tuple[str, bytes]]:
    where = f"{KEYS_ENV}"
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(value.split(","), start=1):
        entry = entry.strip()
        key_id, sep, encoded = entry.partition(":")
        if not sep:
            raise KeyringError(
                f"{where}: entry {position} is not of the form id:base64key "
                "(entries are separated by commas; the last one is current)"
            )
        key_id = key_id.strip()
        _check_key_id(key_id, where)
        keys.append((key_id, _decode_key(encoded, f"{where}: key {key_id!r}")))
    _check_unique(keys, where)
    return keys


def _decode_key(encoded: str, where: str) -> bytes:
    try:
        key = _b64decode(encoded)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(
            f"{where} is {len(key)} bytes; a master key is 32 random bytes "
            "(e.g. `openssl rand -base64 32`)"
        )
    return key


def _check_unique(keys: list[tuple[str, bytes]], where: str) -> None:
    if not keys:
        raise KeyringError(f"{where}: holds no key")
    seen: set[str] = set()
    for key_id, _ in keys:
        if key_id in seen:
            raise KeyringError(f"{where}: key id {key_id!r} appears twice")
        seen.add(key_id)


def _parse_file(raw: bytes, path: Path) -> list[tuple[str, bytes]]:
    where = f"the recording keyring {path}"
    try:
        doc: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyringError(f"{where} is not valid JSON: restore it from backup") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != _FILE_FORMAT
        or doc.get("version") != 1
        or not isinstance(doc.get("keys"), list)
    ):
        raise KeyringError(f"{where} is not a Samtale recording keyring (version 1)")
    keys: list[tuple[str, bytes]] = []
    for entry in doc["keys"]:
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("key"), str)
        ):
            raise KeyringError(f"{where}: every key needs a string 'id' and 'key'")
        _check_key_id(entry["id"], where)
        keys.append((entry["id"], _decode_key(entry["key"], f"{where}: key {entry['id']!r}")))
    _check_unique(keys, where)
    return keys


def _dump_file(keys: list[tuple[str, bytes]]) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    doc = {
        "format": _FILE_FORMAT,
        "version": 1,
        "note": "Master keys for recordings; the last key is current. Never delete a key that "
        "still wraps a data key. Back this file up separately from the recordings.",
        "keys": [
            {"id": key_id, "key": base64.b64encode(key).decode("ascii"), "added": now}
            for key_id, key in keys
        ],
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


# -- signing key -------------------------------------------------------------------------------


def load_signing_key(instance_path: Path, env_value: str | None) -> Ed25519PrivateKey:
    """The server's manifest-signing key: PORTAL_RECORDING_SIGNING_KEY (base64 of the 32-byte raw
    private key) if set, else `instance_path/recording_signing_key.pem` (created 0600)."""
    if env_value is not None and env_value.strip():
        try:
            raw = _b64decode(env_value)
        except (binascii.Error, ValueError):
            raise KeyringError(f"{SIGNING_KEY_ENV} is not valid base64") from None
        if len(raw) != 32:
            raise KeyringError(
                f"{SIGNING_KEY_ENV} is {len(raw)} bytes; it must be the base64 of a 32-byte "
                "raw Ed25519 private key"
            )
        return Ed25519PrivateKey.from_private_bytes(raw)
    path = Path(instance_path) / SIGNING_KEY_FILE
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        create_exclusive(path, pem)
    pem, _info = _read_secret(path, "signing key",
                              "consider it compromised if it may have been copied")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyringError(
            f"the recording signing key {path} is not an unencrypted PKCS#8 PEM key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyringError(f"the recording signing key {path} is not an Ed25519 key")
    return key


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """Short id of a signing key: the first 16 hex digits of SHA-256 of the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
