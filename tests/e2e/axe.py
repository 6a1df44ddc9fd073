"""axe-core (tests/vendor, see its README) in a Playwright page: the WCAG 2.1 A and AA rules
only; and what the accessibility tests share (docs/accessibility.md). A context made with
`context_options` gets axe in every page through `add_init_script`; without it, `violations`
adds it with add_script_tag, which the portal's Content-Security-Policy refuses unless the
context has `bypass_csp=True` (as `context_options` gives)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser_call import DESKTOP, PHONE
from playwright.sync_api import Page, Playwright

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core-4.14.1" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
#: The browser's language for each of the portal's (the portal follows Accept-Language).
LOCALES = {"en": "en-GB", "nb": "nb-NO"}

RUN_JS = """async (tags) => {
  const result = await window.axe.run(document, {runOnly: {type: "tag", values: tags},
                                                 resultTypes: ["violations"]});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " — " +
                                       (n.failureSummary || "").replace(/\\s+/g, " "))}));
}"""


def violations(page: Page, label: str) -> list[str]:
    """What axe finds wrong on the page as it is now, one line per rule, named by label."""
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(RUN_JS, TAGS)
    return [f"{label}: {v['id']} ({v['impact']}): {v['help']}: {v['nodes']}" for v in found]


def context_options(playwright: Playwright, lang: str, device: str) -> dict[str, Any]:
    """A context in this language on this device ("desktop": 1280×800, "phone": Pixel 7)."""
    base = dict(playwright.devices[PHONE]) if device == "phone" else dict(DESKTOP)
    return {**base, "locale": LOCALES[lang], "bypass_csp": True,
            "permissions": ["camera", "microphone"]}


def fits(page: Page) -> list[str]:
    """Nothing sticks out sideways (WCAG 1.4.10 reflow at 320 px)."""
    wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return [] if wide[0] <= wide[1] else [f"{page.url}: {wide[0]} px wide in {wide[1]} px"]


def below_the_fold(page: Page, *selectors: str) -> list[str]:
    """Those of the elements whose bottom edge is below the window's."""
    found: list[str] = page.evaluate("""(selectors) => selectors.filter((s) =>
        document.querySelector(s).getBoundingClientRect().bottom > window.innerHeight)""",
                                     list(selectors))
    return found
