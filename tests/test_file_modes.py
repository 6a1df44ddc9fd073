"""What the portal writes is its own user's alone: the SQLite database with its -wal and -shm,
the secret key, recordings and exports are 0600, their folders 0700, even when the process was
started with a umask that lets everyone read (022, the usual default)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import make_app
from flask_migrate import upgrade

from portal.audit import services as audit
from portal.config import load_secret_key
from portal.extensions import db


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual default umask; the one before is put back afterwards."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path, open_umask: None):
    folder = tmp_path / "data"
    database = folder / "samtale.sqlite3"
    app = make_app(f"sqlite:///{database}", tmp_path)
    with app.app_context():
        upgrade()
        audit.record("test.written")
        db.session.commit()
        wal, shm = (database.with_name(database.name + s) for s in ("-wal", "-shm"))
        assert wal.exists() and shm.exists()  # WAL mode, a connection open
        assert {p.name: mode(p) for p in (database, wal, shm)} == {
            database.name: 0o600, wal.name: 0o600, shm.name: 0o600}
        db.engine.dispose()
    assert mode(folder) == 0o700
    assert os.umask(0o022) & 0o077 == 0o077  # the process's own umask, for every later file


def test_a_world_readable_database_of_an_earlier_version_is_tightened(tmp_path: Path,
                                                                      open_umask: None):
    database = tmp_path / "old.sqlite3"
    first = make_app(f"sqlite:///{database}", tmp_path)
    with first.app_context():
        upgrade()
        db.engine.dispose()
    for path in (database, database.with_name(database.name + "-wal")):
        path.touch()
        path.chmod(0o644)
    make_app(f"sqlite:///{database}", tmp_path)
    assert mode(database) == 0o600
    assert mode(database.with_name(database.name + "-wal")) == 0o600


def test_the_secret_key_file_is_private(tmp_path: Path, open_umask: None,
                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PORTAL_SECRET_KEY", raising=False)
    instance = tmp_path / "instance"
    assert load_secret_key(instance)
    assert mode(instance / "secret_key") == 0o600 and mode(instance) == 0o700
