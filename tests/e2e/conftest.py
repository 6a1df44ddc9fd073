"""Fixtures of the end-to-end tests: live portals (tests/live.py) and Chromium through
Playwright (browser_call.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_call import CHROMIUM, CHROMIUM_ARGS, Sides
from janus import JanusProcess
from live import LivePortal, running
from netns import outside_loopback
from playwright.sync_api import Browser, Playwright, sync_playwright

# --- a new user's clone ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def fresh_clone() -> Iterator[Path]:
    """A clone of this repository's HEAD into an empty folder, as a new user makes it. The
    first-try test runs scripts/start in it, and the wheel test then reuses the .venv that
    made (one install of the runtime lock, not two)."""
    root = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse",
                           "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="samtale-clone-", ignore_cleanup_errors=True) as tmp:
        clone = Path(tmp) / "samtale"
        subprocess.run(["git", "clone", "--quiet", root, str(clone)], check=True, timeout=120)
        assert not (clone / ".venv").exists() and not (clone / "instance").exists()
        yield clone


# --- live portals (a real server in a subprocess) --------------------------------------------

@pytest.fixture
def live_portal_factory(request: pytest.FixtureRequest, sqlite_template: Path,
                        tmp_path: Path) -> Iterator[Callable[..., LivePortal]]:
    """Start servers on demand: `live_portal_factory(grace_seconds=2, env={...})`."""
    stack = contextlib.ExitStack()

    def make(**options: Any) -> LivePortal:
        return stack.enter_context(running(request, sqlite_template, tmp_path / "live",
                                           **options))

    with stack:
        yield make


@pytest.fixture
def live_portal(request: pytest.FixtureRequest,
                live_portal_factory: Callable[..., LivePortal]) -> LivePortal:
    """A live portal of this test's own; `@pytest.mark.live_portal(grace_seconds=...)`."""
    marker = request.node.get_closest_marker("live_portal")
    options = dict(marker.kwargs) if marker else {}
    return live_portal_factory(**options)


@pytest.fixture(scope="module")
def live_portal_module(request: pytest.FixtureRequest, sqlite_template: Path,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    """One live portal for all tests of a module (default grace period)."""
    with running(request, sqlite_template, tmp_path_factory.mktemp("live")) as live:
        yield live
        live.close_clients()


# --- the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def chromium(playwright_instance: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the module; a test that cannot have it fails."""
    try:
        browser = playwright_instance.chromium.launch(executable_path=CHROMIUM,
                                                      args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001 - any launch failure is a test failure
        pytest.fail(f"Chromium could not be started from {CHROMIUM}: {exc}", pytrace=False)
    yield browser
    browser.close()


@pytest.fixture
def sides(request: pytest.FixtureRequest, chromium: Browser, playwright_instance: Playwright,
          live_portal_module: LivePortal) -> Iterator[Sides]:
    """Host and guest tabs (`sides.host(consult)`, `sides.guest()`); afterwards the pages must
    have reported no errors and their ICE must have stayed on loopback."""
    made = Sides(chromium, playwright_instance, live_portal_module)
    failed_before = request.session.testsfailed
    yield made
    if request.session.testsfailed > failed_before:
        for side in made.sides:
            sys.stderr.write(f"\n----- {side.name} -----\n{side.diagnose()}\n")
    try:
        errors = [e for side in made.sides for e in side.errors]
        assert not errors, f"the pages reported errors: {errors}"
        for side in made.sides:  # media stayed in the test's own namespace, on loopback
            outside = outside_loopback(side.gathered + side.used + side.remote)
            assert not outside, (f"{side.name}: ICE outside loopback: {outside} (gathered "
                                 f"{side.gathered}, used {side.used}, offered {side.remote})")
    finally:
        made.close()


# --- Janus for live portals (the `janus` fixture is in ../conftest.py) -----------------------

@pytest.fixture(scope="module")
def janus_env(janus: JanusProcess) -> dict[str, str]:
    """`live_portal_factory(env=janus_env)`: a live portal that uses the module's Janus."""
    return janus.portal_env()
