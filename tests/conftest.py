"""Fixtures every test module may use: an app on a freshly migrated database (SQLite, or
PostgreSQL where asked), users of every role, browser-like clients, sockets into a consult
starting now, aiortc publishers and the WebRTC tests' network namespace. The browser and
live-server fixtures of tests/e2e/ are in e2e/conftest.py. Plain helpers are in modules of
their own (apps, people, support, calls, live, ...): test modules import those, never this
file or each other (tests/test_test_layout.py checks)."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.nodeid import coerce_node_id  # see pytest_collection_modifyitems
from apps import make_app, pg_admin, pg_url
from calls import Consult, consult_now
from flask import Flask
from flask_migrate import upgrade
from janus import JanusProcess, missing_janus, running_janus
from netns import Namespace, require_root
from people import Browser, People, Staff, add_people
from support import SocketClient

from portal.extensions import db


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


@pytest.fixture(scope="session")
def pg_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database migrated once through Alembic, used as a template."""
    name = f"samtale_tpl_{uuid.uuid4().hex[:8]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = make_app(pg_url(name), tmp_path_factory.mktemp("pg-template"))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield name
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_people_template(pg_template: str, tmp_path_factory: pytest.TempPathFactory,
                       ) -> Iterator[tuple[str, People]]:
    """pg_template with the `people` in it, itself a template."""
    name = f"samtale_tplp_{uuid.uuid4().hex[:8]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield name, add_people(pg_url(name), tmp_path_factory.mktemp("pg-people"))
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The template fixture the `app` fixture copies when a test asks for `people`, by backend.
PEOPLE_TEMPLATES = {"sqlite": "sqlite_people_template", "postgresql": "pg_people_template"}


@pytest.fixture
def pg_database() -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped afterwards; yields its URL."""
    name = f"samtale_t_{uuid.uuid4().hex[:10]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_url(name)
    with pg_admin() as conn:
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
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
        url = pg_url(dbname)
    application = make_app(url, tmp_path)
    yield application
    application.extensions["recording"].shutdown()
    with application.app_context():
        db.engine.dispose()
    if dbname:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def people(app: Flask, backend: str, request: pytest.FixtureRequest) -> People:
    """An administrator and two hosts, all with chosen passwords. They are in the database
    template the `app` fixture copied (made once per session); this returns who they are."""
    made: People = request.getfixturevalue(PEOPLE_TEMPLATES[backend])[1]
    return People(*(Staff(staff.id, staff.email, totp_secret=staff.totp_secret) for staff in
                    (made.admin, made.host_a, made.host_b)))


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


# --- Janus, the hearings' media server: tests/janus.py

@pytest.fixture(scope="module")
def janus(request: pytest.FixtureRequest, media_namespace: Namespace,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusProcess]:
    """A real Janus for the module, in the run's namespace (API on 127.0.0.1, media on
    127.0.0.2), with the portal's locked-down configuration and fresh secrets. Fails (never
    skips) where Janus is not installed; its log's tail is shown when a test failed."""
    why = missing_janus()
    if why:
        pytest.fail(why, pytrace=False)
    failed_before = request.session.testsfailed
    with running_janus(tmp_path_factory.mktemp("janus"), media_namespace) as made:
        yield made
        if request.session.testsfailed > failed_before:
            sys.stderr.write(f"\n{made.diagnose()}\n")


# --- Signaling through the test client (tests/calls.py)

@pytest.fixture
def consult(app: Flask, people: People) -> Consult:
    """Host A's consult, starting now, with guests Pat and Kim."""
    return consult_now(app, people.host_a, ["Pat", "Kim"], "Follow-up A")


@pytest.fixture
def other(app: Flask, people: People) -> Consult:
    """Host B's consult, starting now, with guest Olav."""
    return consult_now(app, people.host_b, ["Olav"], "Follow-up B")


@pytest.fixture
def host_socket(app: Flask, new_browser: Any) -> Callable[..., SocketClient]:
    """host_socket(consult) — the consult's host, signed in, connected; `as_staff` to be
    someone else; `welcome=False` to not require a welcome (a refused connect)."""

    def connect(c: Consult, *, as_staff: Staff | None = None, auth: Any = None,
                label: str = "host", welcome: bool = True) -> SocketClient:
        browser = new_browser().login(as_staff or c.host)
        sock = SocketClient(app, flask_client=browser.client, label=label,
                            auth={"appointment": c.id} if auth is None else auth)
        if welcome:
            assert sock.connected, f"{label} refused: {sock.connect_error!r}"
            sock.only("welcome")
        return sock

    return connect


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "live_portal(grace_seconds=5, env=None): options of the live_portal server")


E2E = Path(__file__).resolve().parent / "e2e"
MEDIA_MARKS = ("webrtc",)
#: In the run's network namespace (marked webrtc) but sending no media: Janus's API, its
#: configuration, the namespace itself. One at a time beside the media tests.
NO_MEDIA = {"test_janus_config.py", "test_janus_live.py", "test_janus_pool.py",
            "test_netns.py"}
SERVER_MARKS = ("live", "slow", "browser")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything in tests/e2e/ starts a server: marked `live` even where a module forgot, so
    that `-m "not browser and not live"` leaves it out (tests/js drives Chromium, no server)."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.live)
        # scripts/test runs two xdist workers (--dist loadgroup): media (WebRTC, timing-bound) runs
        # one test at a time, and so does what starts servers without media, in a group of its
        # own that may run beside it; the rest spreads over both. (Media in two groups side by
        # side, or a third worker, overloads two cores: measured slower, and flaky.) xdist 3.8
        # names the group by setting `_nodeid`, which pytest 9 no longer reads: do it here.
        if getattr(config.option, "loadgroup", False) and "@" not in item.nodeid:
            if (any(item.get_closest_marker(m) for m in MEDIA_MARKS)
                    and item.path.name not in NO_MEDIA):
                item._id = coerce_node_id(f"{item.nodeid}@media")
            elif (any(item.get_closest_marker(m) for m in SERVER_MARKS)
                    or item.path.name in NO_MEDIA):
                item._id = coerce_node_id(f"{item.nodeid}@servers")
