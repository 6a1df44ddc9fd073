"""Accessibility (docs/accessibility.md): every kind of page outside the call checked with
axe-core at WCAG 2.1 A and AA, in English and Norwegian, at a desktop's and a phone's size, and
the layout at 320 px. The call's pages (device check, waiting room, call, consent prompt, the
ends) are checked in test_accessibility_call.py, on real emulated phones and with media.

One live portal and one Chromium for the module. No page here sends media: this module runs
outside the network namespace, beside the media tests. Chromium must be at /usr/bin/chromium
(or $SAMTALE_CHROMIUM): never skipped."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from axe import AXE, LOCALES, below_the_fold, context_options, fits, violations
from browser_call import DESKTOP, PHONE, STEP_MS
from live import Host, LivePortal
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from portal.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.live]


@dataclass
class World:
    live: LivePortal
    host: Host
    admin: Host


@pytest.fixture(scope="module")
def world(live_portal_module: LivePortal) -> World:
    live = live_portal_module
    return World(live, live.create_host(name="Dr. Ada Host"),
                 live.create_host(name="Ola Admin", role=Role.ADMIN))


@pytest.fixture
def contexts(chromium: Browser) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def open_page(chromium: Browser, playwright: Playwright, contexts: list[BrowserContext],
              lang: str, device: str, user: Host | None = None, live: LivePortal | None = None
              ) -> tuple[Page, list[str]]:
    """A tab (signed in as user, if any); the second value collects the page's errors and the
    addresses that answered 4xx/5xx (a missing favicon too)."""
    context = chromium.new_context(**context_options(playwright, lang, device))
    contexts.append(context)
    context.add_init_script(path=AXE)  # in every page from the start: not sent again each time
    if user is not None and live is not None:
        context.add_cookies(live.playwright_cookies(user))  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith(("/nope", "/j/not-a-real-link"))
            else None)
    return page, problems


# --- every kind of page -----------------------------------------------------------------------

@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_every_page_passes_axe(world: World, chromium: Browser,
                               playwright_instance: Playwright,
                               contexts: list[BrowserContext], lang: str) -> None:
    """Each page is loaded once on a desktop (1280×800) and checked there, then at a phone's
    size (Pixel 7's 412 px) and at 320 px: these pages' layout follows the width alone."""
    live, found = world.live, []
    consult = live.book_consult(world.host, ["Pat Phone"], title=f"Axe {lang}")
    base = live.base_url
    appointment = f"{base}/appointments/{consult.appointment_id}"
    phone = playwright_instance.devices[PHONE]["viewport"]

    def check(page: Page, label: str) -> None:
        found.extend(violations(page, f"{lang} desktop: {label}"))
        try:
            page.set_viewport_size(phone)
            found.extend(violations(page, f"{lang} phone: {label}"))
            found.extend(fits(page))
            page.set_viewport_size({"width": 320, "height": 640})
            found.extend(fits(page))
        finally:
            page.set_viewport_size(DESKTOP["viewport"])

    # Nobody signed in: sign-in, a dead link, an unknown page.
    anon, anon_problems = open_page(chromium, playwright_instance, contexts, lang, "desktop")
    for label, url in (("sign-in", "/login"), ("dead link", "/j/not-a-real-link"),
                       ("not found", "/nope")):
        anon.goto(base + url)
        check(anon, label)

    # The host: lists, booking (with its mistakes shown), the appointment (a new link shown
    # once, with its copy button), editing, recordings, account, error pages.
    host, host_problems = open_page(chromium, playwright_instance, contexts, lang, "desktop",
                                    world.host, live)
    for label, url in (("appointments", "/appointments/"), ("booking", "/appointments/new")):
        host.goto(base + url)
        check(host, label)
    host.click("form button[type=submit].primary")
    host.wait_for_selector(".field-error")
    check(host, "booking with mistakes")
    host.goto(appointment)
    host.fill("#display_name", "Kim Keyboard")
    host.click("form[action$='/guests'] button[type=submit]")
    host.wait_for_selector("#new-link button[data-copy]:not([hidden])")
    check(host, "appointment with a new link")
    host.reload()  # post/redirect/get: the reload shows the page, not the link, not a guest more
    assert host.locator("#new-link").count() == 0
    assert host.locator("#participants li", has_text="Kim Keyboard").count() == 1
    for label, url in (("editing", "/edit"), ("recordings", "/recordings")):
        host.goto(appointment + url)
        check(host, label)
    for label, url in (("password", "/account/password"), ("two-step sign-in", "/account/mfa"),
                       ("someone else's appointment", "/appointments/999999"),
                       ("forbidden", "/admin/users")):
        host.goto(base + url)
        check(host, label)
    # 1280×800: the waiting room and Start call without scrolling.
    host.goto(appointment)
    assert below_the_fold(host, "#start-call", "#waiting-room h2") == []

    admin, admin_problems = open_page(chromium, playwright_instance, contexts, lang, "desktop",
                                      world.admin, live)
    for label, url in (("staff", "/admin/users"), ("API tokens", "/admin/tokens"),
                       ("audit", "/admin/audit")):
        admin.goto(base + url)
        check(admin, label)

    assert not found, "\n".join(found)
    # The error pages answer 4xx by design; nothing else may (a favicon neither).
    expected = ("404 " + appointment.rsplit("/", 1)[0] + "/999999", f"403 {base}/admin/users",
                f"400 {base}/appointments/new")
    problems = [p for p in anon_problems + host_problems + admin_problems
                if not p.startswith(expected)]
    assert not problems, problems


def test_axe_finds_what_it_should(chromium: Browser) -> None:
    """The checker itself works here: an unlabelled field and an image without text fail."""
    context = chromium.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.set_content('<!doctype html><html lang="en"><title>t</title><main>'
                         '<input type="text"><img src="data:,"></main></html>')
        found = " ".join(violations(page, "broken"))
        assert "label" in found and "image-alt" in found, found
    finally:
        context.close()
