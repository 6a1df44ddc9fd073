"""Test apps on their databases: `make_app` (recordings and keys in a temporary folder, cheap
password hashing, templates and URL builders compiled once per session) and the PostgreSQL
server's admin connection. The fixtures that use them are in conftest.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from jinja2.bccache import Bucket, BytecodeCache
from live import CHEAP_ARGON2, LOOPBACK
from werkzeug.routing import Rule

from portal import create_app

PG_ADMIN_URL = os.environ.get("PORTAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def make_app(database_url: str, files: Path, **extra: Any) -> Flask:
    """A test app on the database; its recording keys and recordings go into `files` (a
    pytest temporary folder, so that they never land in the checkout's instance/)."""
    config = {
        "RECORDINGS_DIR": str(files / "recordings"),
        "RECORDING_KEYS_DIR": str(files),
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "MFA_KEY": "test-mfa-key",
        "LINK_KEY": "test-link-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "memory://",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "RECORDER_ALLOW_ADDRESSES": list(LOOPBACK),
        # In-process apps record on a thread (the embedded mode): no worker processes to start
        # for every test. The live portal (tests/live.py) records in a worker process.
        "RECORDER_WORKERS": 0,
        # No background look at the hosts' sign-ins: tests call Sockets.sweep() by hand.
        "IDLE_CHECK_SECONDS": 0,
        **CHEAP_ARGON2,
        **extra,
    }
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATES  # compiling every template for every app: 70 ms
    return app


class SharedBytecode(BytecodeCache):
    """Compiled templates shared by the test apps of a session; Jinja checks each one against
    its template's source checksum, so an edited template is compiled again."""

    def __init__(self) -> None:
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self.compiled.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = SharedBytecode()


def _share_url_builders() -> None:
    """werkzeug compiles two URL builders per rule (an AST, then `compile`) for every app: half
    of make_app's 40 ms. A builder is a plain function of the rule's text, its parsed parts and
    its defaults (it reaches the rule's converters through its `.self` argument at call time),
    so the test apps of a session share them."""
    compile_builder = Rule._compile_builder
    built: dict[tuple[Any, ...], Any] = {}

    def shared(self: Rule, append_unknown: bool = True) -> Any:
        defaults = tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items()))
        key = (self.rule, tuple(self._trace), defaults, append_unknown,
               tuple(sorted((k, type(c).__name__) for k, c in self._converters.items())))
        if key not in built:
            built[key] = compile_builder(self, append_unknown)
        return built[key]

    Rule._compile_builder = shared  # type: ignore[method-assign]


_share_url_builders()


def pg_admin() -> psycopg.Connection[Any]:
    """An autocommit connection to the PostgreSQL server, to create and drop databases."""
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail loudly: never skip the PostgreSQL tests
        pytest.fail(f"PostgreSQL is required for the tests ({PG_ADMIN_URL}): {exc}",
                    pytrace=False)


def pg_url(name: str) -> str:
    """The app's URL of the database `name` on the test server."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"
