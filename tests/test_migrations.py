"""The Alembic history builds exactly the schema the models describe, on SQLite and
PostgreSQL, and can be taken down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from apps import make_app
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from portal.audit import services as audit
from portal.extensions import db
from portal.models.audit import GENESIS_DIGEST

TABLES = {"users", "api_tokens", "appointments", "participants", "chat_messages", "audit_events",
          "audit_head", "recordings", "recording_tracks", "consents", "recovery_codes",
          "login_throttles", "sessions", "playbacks", "retired_invites", "representations",
          "screenings", "consultation_rooms", "outbox_messages", "link_secrets"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request: pytest.FixtureRequest, tmp_path: Path):
    """An app on an empty database of either kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_database")
    app = make_app(url, tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def tables(app: Flask) -> set[str]:
    with app.app_context():
        names = set(inspect(db.engine).get_table_names())
        db.engine.dispose()
        return names


def schema_differences(app: Flask) -> list[object]:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "compare_server_default": True})
        return list(compare_metadata(context, db.metadata))


def test_upgrade_matches_the_models_and_downgrade_removes_everything(empty_app):
    assert tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
    assert tables(empty_app) == TABLES | {"alembic_version"}
    assert schema_differences(empty_app) == []

    with empty_app.app_context():
        head = db.session.execute(text("SELECT id, seq, digest FROM audit_head")).all()
        assert [tuple(row) for row in head] == [(1, 0, GENESIS_DIGEST)]
        assert audit.verify().ok
        db.session.remove()
        downgrade(revision="base")
    assert tables(empty_app) == {"alembic_version"}
    if empty_app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        with empty_app.app_context():
            leftovers = db.session.execute(text(
                "SELECT relname FROM pg_class JOIN pg_namespace n ON n.oid = relnamespace "
                "WHERE nspname = 'public' AND relname <> 'alembic_version' "
                "AND relname NOT LIKE 'alembic_version%'")).scalars().all()
            types = db.session.execute(text(
                "SELECT typname FROM pg_type JOIN pg_namespace n ON n.oid = typnamespace "
                "WHERE nspname = 'public' AND typtype = 'e'")).scalars().all()
            db.session.remove()
        assert leftovers == [] and types == []  # no sequences, indexes or enum types left

    with empty_app.app_context():
        upgrade()
    assert tables(empty_app) == TABLES | {"alembic_version"}
    assert schema_differences(empty_app) == []
    with empty_app.app_context():
        assert audit.verify().ok
        db.session.remove()


def test_the_portal_works_on_a_freshly_migrated_database(empty_app):
    with empty_app.app_context():
        upgrade()
    runner = empty_app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "ann@example.org", "Ann Berg",
                                 "--role", "admin"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and result.output.startswith("OK: 1 events")
