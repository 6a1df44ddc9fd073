"""Unit tests of the call's browser modules, run in headless Chromium: PeerLink
(portal/static/js/peers.js) against a fake RTCPeerConnection (tests/js/fake_pc.js), the
room's stage machine (stage.js) and the idle warning (idle.js, with a fake clock and server).
No server: the page and the modules are served by Playwright's routing from the source tree,
on a made-up origin. Each JS `test("...")` is one pytest case here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, sync_playwright

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
STATIC_JS = HERE.parents[1] / "portal" / "static" / "js"
ORIGIN = "http://samtale.test"
CHROMIUM = os.environ.get("SAMTALE_CHROMIUM", "/usr/bin/chromium")
PAGE = ('<!doctype html><meta charset="utf-8">'
        '<script type="module" src="/tests/js/units.js"></script>')
ROOTS = {"/static/js/": STATIC_JS, "/tests/js/": HERE}

# The test names, read from the test files so that each is its own pytest case.
NAMES = [name for path in sorted(HERE.glob("*.test.js"))
         for name in re.findall(r'^test\("((?:[^"\\]|\\.)*)"', path.read_text(), re.M)]


def _serve(route: Route) -> None:
    path = route.request.url[len(ORIGIN):].split("?")[0]
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body=PAGE)
        return
    for prefix, root in ROOTS.items():
        if path.startswith(prefix):
            file = (root / path[len(prefix):]).resolve()
            if file.is_relative_to(root) and file.suffix == ".js" and file.is_file():
                route.fulfill(status=200, content_type="text/javascript", body=file.read_text())
                return
    route.fulfill(status=404, body="not found")


@pytest.fixture(scope="module")
def results() -> Iterator[dict[str, dict[str, Any]]]:
    """Run every JS test once, in one page; the results by test name."""
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM)
        except Exception as exc:  # noqa: BLE001 - any launch failure is a test failure
            pytest.fail(f"Chromium could not be started from {CHROMIUM}: {exc}", pytrace=False)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route(f"{ORIGIN}/**", _serve)
            page.goto(f"{ORIGIN}/")
            try:
                page.wait_for_function("() => window.__results !== undefined", timeout=15_000)
            except Exception:  # noqa: BLE001 - say why the page never finished
                pytest.fail(f"the JS tests did not finish; page errors: {errors}", pytrace=False)
            found = page.evaluate("() => window.__results")
        finally:
            browser.close()
    yield {r["name"]: r for r in found}


def test_every_js_test_is_collected(results: dict[str, dict[str, Any]]) -> None:
    assert sorted(results) == sorted(NAMES)
    assert len(NAMES) == len(set(NAMES)), "two JS tests share a name"


@pytest.mark.parametrize("name", NAMES)
def test_js(results: dict[str, dict[str, Any]], name: str) -> None:
    result = results.get(name)
    assert result is not None, f"{name!r} did not run"
    assert result["ok"], result["error"]
