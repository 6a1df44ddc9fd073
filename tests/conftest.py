"""Fixtures: an app on a freshly migrated database (SQLite, or PostgreSQL where asked), users
of every role, and a browser-like client that carries the CSRF token the way a page does."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from jinja2.bccache import Bucket, BytecodeCache
from live import CHEAP_ARGON2
from netns import Namespace, require_root

from portal import create_app
from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import Role

PASSWORD = "correct horse battery staple"
PG_ADMIN_URL = os.environ.get("PORTAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass
class Staff:
    id: int
    email: str
    password: str = PASSWORD


@dataclass
class People:
    admin: Staff
    host_a: Staff
    host_b: Staff


def add_people(url: str, files: Path) -> People:
    """Add the administrator and two hosts of the `people` fixture to a migrated database."""
    made = {}
    app = make_app(url, files)
    with app.app_context():
        for key, email, role in (("admin", "admin@example.org", Role.ADMIN),
                                 ("host_a", "a@example.org", Role.HOST),
                                 ("host_b", "b@example.org", Role.HOST)):
            user, _ = accounts.create_user(email, key.replace("_", " ").title(), role, PASSWORD)
            user.must_change_password = False
            db.session.commit()
            made[key] = Staff(user.id, email)
        db.session.remove()  # its connection back, so that dispose closes it (the WAL ends)
        db.engine.dispose()
    return People(**made)


def make_app(database_url: str, files: Path, **extra: Any) -> Flask:
    """A test app on the database; its recording keys and recordings go into `files` (a
    pytest temporary folder, so that they never land in the checkout's instance/)."""
    config = {
        "RECORDINGS_DIR": str(files / "recordings"),
        "RECORDING_KEYS_DIR": str(files),
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "memory://",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated through Alembic; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    app = make_app(f"sqlite:///{path}", path.parent)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return path


@pytest.fixture(scope="session")
def sqlite_people_template(sqlite_template: Path,
                           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, People]:
    """The migrated template with the `people` in it (password hashing costs: done once)."""
    path = tmp_path_factory.mktemp("template") / "people.sqlite3"
    shutil.copy(sqlite_template, path)
    return path, add_people(f"sqlite:///{path}", path.parent)


def _pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail loudly: never skip the PostgreSQL tests
        pytest.fail(f"PostgreSQL is required for the tests ({PG_ADMIN_URL}): {exc}",
                    pytrace=False)


def pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database migrated once through Alembic, used as a template."""
    name = f"samtale_tpl_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = make_app(pg_url(name), tmp_path_factory.mktemp("pg-template"))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield name
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_people_template(pg_template: str, tmp_path_factory: pytest.TempPathFactory,
                       ) -> Iterator[tuple[str, People]]:
    """pg_template with the `people` in it, itself a template."""
    name = f"samtale_tplp_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield name, add_people(pg_url(name), tmp_path_factory.mktemp("pg-people"))
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The template fixture the `app` fixture copies when a test asks for `people`, by backend.
PEOPLE_TEMPLATES = {"sqlite": "sqlite_people_template", "postgresql": "pg_people_template"}


@pytest.fixture
def pg_database() -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards; yields its URL."""
    name = f"samtale_t_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the app runs on; model tests override this with both."""
    return str(request.param)


@pytest.fixture
def app(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    # A test with `people` starts from a template that holds them already.
    with_people = "people" in request.fixturenames
    if backend == "sqlite":
        template = (request.getfixturevalue(PEOPLE_TEMPLATES[backend])[0] if with_people
                    else request.getfixturevalue("sqlite_template"))
        path = tmp_path / "portal.sqlite3"
        shutil.copy(template, path)
        url = f"sqlite:///{path}"
        dbname = None
    else:
        template = (request.getfixturevalue(PEOPLE_TEMPLATES[backend])[0] if with_people
                    else request.getfixturevalue("pg_template"))
        dbname = f"samtale_t_{uuid.uuid4().hex[:10]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
        url = pg_url(dbname)
    application = make_app(url, tmp_path)
    yield application
    application.extensions["recording"].shutdown()
    with application.app_context():
        db.engine.dispose()
    if dbname:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def people(app: Flask, backend: str, request: pytest.FixtureRequest) -> People:
    """An administrator and two hosts, all with chosen passwords. They are in the database
    template the `app` fixture copied (made once per session); this returns who they are."""
    made: People = request.getfixturevalue(PEOPLE_TEMPLATES[backend])[1]
    return People(*(Staff(staff.id, staff.email) for staff in
                    (made.admin, made.host_a, made.host_b)))


class Browser:
    """A test client that, like a page, sends the session's CSRF token with every form."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._csrf: str | None = None

    def get(self, url: str, **kw: Any) -> Any:
        response = self.client.get(url, **kw)
        if response.mimetype != "text/html":
            return response
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self._csrf = match.group(1)
        return response

    def csrf(self) -> str:
        if self._csrf is None:
            self.get("/login")
        if self._csrf is None:
            self.get("/account/password")
        assert self._csrf, "no page offered a CSRF token"
        return self._csrf

    def post(self, url: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kw: Any) -> Any:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf())
        response = self.client.post(url, data=data, **kw)
        match = CSRF_RE.search(response.get_data(as_text=True))
        if match:
            self._csrf = match.group(1)
        return response

    def login(self, staff: Staff) -> Browser:
        response = self.post("/login", {"email": staff.email, "password": staff.password})
        assert response.status_code == 302, response.get_data(as_text=True)
        self._csrf = None  # Flask-Login renews the session
        return self


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


@pytest.fixture
def new_browser(app: Flask) -> Any:
    """Make as many independent browsers as a test needs."""
    return lambda: Browser(app.test_client())


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def peers() -> Iterator[Any]:
    """Make aiortc publishers to the recorder (tests/recording_peers.py); closed afterwards."""
    from recording_peers import publishers  # aiortc: imported only by tests that publish

    with publishers() as make:
        yield make


# --- WebRTC stays on loopback: tests/netns.py

@pytest.fixture(scope="session")
def media_namespace() -> Iterator[Namespace]:
    """The run's own network namespace (only `lo`), for every test marked `webrtc`."""
    why = require_root()
    if why:
        pytest.fail(why, pytrace=False)
    namespace = Namespace.create()
    yield namespace
    namespace.remove()


@pytest.fixture(scope="module", autouse=True)
def _webrtc_inside_namespace(request: pytest.FixtureRequest) -> Iterator[None]:
    """A `webrtc` module runs inside the namespace: its live portal, Chromium and aiortc
    peers are started from this thread, and so are in it too. Autouse fixtures come first
    in their scope, so the module's other fixtures start inside."""
    if request.node.get_closest_marker("webrtc") is None:
        yield
        return
    with request.getfixturevalue("media_namespace").entered():
        yield


# --- Signaling through the test client (tests/calls.py)

from calls import consult, host_socket, other  # noqa: E402, F401

# --- Live portal (a real server in a subprocess) for Socket.IO and browser tests: tests/live.py
from live import live_portal, live_portal_factory, live_portal_module  # noqa: E402, F401


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live_portal(grace_seconds=5, env=None): options of the live_portal server")


E2E = Path(__file__).resolve().parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in tests/e2e/ starts a server (or a browser, which needs one): marked `live`
    even where a module forgot, so that `-m "not browser and not live"` leaves it out."""
    for item in items:
        if item.path.is_relative_to(E2E) or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.live)
