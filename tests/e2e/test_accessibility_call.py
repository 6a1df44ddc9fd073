"""Accessibility (docs/accessibility.md) in the call: a whole consult done with the keyboard
alone (Tab, Enter and Space, and typing a chat message) by a host and a guest, one of them on an
emulated phone, in English and in Norwegian; axe-core (WCAG 2.1 A and AA) at each stage on both
sides; what the live regions say; where focus goes; and, on the phone, the call's top lines and
controls at 320 to 430 px. The other pages are in test_accessibility_pages.py.

Real media between the two Chromium tabs: in the run's network namespace. Chromium must be at
/usr/bin/chromium (or $SAMTALE_CHROMIUM): never skipped."""

from __future__ import annotations

import time

import pytest
from axe import AXE, below_the_fold, context_options, violations
from browser_call import Side, Sides
from live import Host, LivePortal
from playwright.sync_api import Browser, Page, Playwright

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc]


@pytest.fixture(scope="module")
def host_account(live_portal_module: LivePortal) -> Host:
    return live_portal_module.create_host(name="Dr. Ada Host")


def focused(page: Page, selector: str) -> bool:
    return bool(page.evaluate(
        "(s) => !!document.activeElement && document.activeElement.matches(s)", selector))


def tab_to(side: Side, selector: str, limit: int = 60) -> None:
    """Press Tab until the element has focus, as someone without a mouse does."""
    for _ in range(limit):
        if focused(side.page, selector):
            return
        side.page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got focus in {limit} presses of Tab\n"
                         f"{side.diagnose()}")


def said(side: Side, region: str, key: str) -> None:
    """A live region says (has said last) the page's string `key`, in the page's language
    (its longest part without a placeholder)."""
    side.wait(r"""([id, key]) => {
      const words = JSON.parse(document.getElementById("call-text").textContent)[key];
      const fixed = words.split(/\{\w+\}/).sort((a, b) => b.length - a.length)[0].trim();
      return !!fixed && (document.getElementById(id).textContent || "").includes(fixed);
    }""", arg=[region, key])


OVERLAP_JS = """() => {
  const shown = ["quality", "rec-indicator", "rec-status"]
    .map((id) => document.getElementById(id))
    .filter((el) => el && !el.hidden && el.getClientRects().length);
  const boxes = shown.map((el) => [el.id, el.getBoundingClientRect()]);
  const out = [...document.querySelectorAll(".controls .ctl")]
    .filter((el) => el.getClientRects().length)
    .filter((el) => {
      const r = el.getBoundingClientRect();
      return r.left < 0 || r.right > window.innerWidth;
    })
    .map((el) => `${el.id} is cut off`);
  for (let i = 0; i < boxes.length; i++) {
    const [a, r] = boxes[i];
    if (r.left < 0 || r.right > window.innerWidth) { out.push(`${a} sticks out`); }
    for (const [b, q] of boxes.slice(i + 1)) {
      if (r.left < q.right && q.left < r.right && r.top < q.bottom && q.top < r.bottom) {
        out.push(`${a} overlaps ${b}`);
      }
    }
  }
  return {shown: boxes.map(([id]) => id), out};
}"""


# What this page has sent the recorder: video frames and keyframes (null: no link yet). The
# link may come up while consent is asked, before the recording starts: count from the start.
RECORDER_SENT_JS = """async () => {
  const r = window.samtale.recorder;
  if (!r || r.pc.connectionState !== "connected") { return null; }
  const sent = {frames: 0, keyframes: 0};
  (await r.pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      sent.frames += s.framesSent || 0;
      sent.keyframes += s.keyFramesEncoded || 0;
    }
  });
  return sent;
}"""


def sent_to_recorder(side: Side, timeout: float = 30.0) -> None:
    """Wait until a keyframe and a second of video went to the recorder since the recording
    started, so that it holds something to play. (Polled here: wait_for_function does not
    await a promise.)"""
    before, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = side.page.evaluate(RECORDER_SENT_JS)
        before = before or now
        if now and now["keyframes"] > before["keyframes"] \
                and now["frames"] >= before["frames"] + 30:
            return
        side.page.wait_for_timeout(100)
    raise AssertionError(f"{side.name}: the recorder got no keyframe and second of video since "
                         f"{before}\n{side.diagnose()}")


def lines_apart(side: Side, widths: tuple[int, ...] = (320, 360, 412, 430)) -> None:
    """On a phone, at each width, the quality line and the recording's lines do not overlap,
    and every control is on the screen."""
    size = side.page.viewport_size
    assert size is not None
    side.wait("() => !document.getElementById('quality').hidden")
    try:
        for width in widths:
            side.page.set_viewport_size({"width": width, "height": size["height"]})
            seen = side.page.evaluate(OVERLAP_JS)
            assert "rec-status" in seen["shown"] and "quality" in seen["shown"], (width, seen)
            assert seen["out"] == [], (width, seen)
    finally:
        side.page.set_viewport_size(size)


@pytest.mark.parametrize(("lang", "host_on", "guest_on"), [
    ("en", "desktop", "phone"), ("nb", "phone", "desktop")])
def test_a_whole_consult_with_the_keyboard_alone(host_account: Host, chromium: Browser,
                                                 playwright_instance: Playwright,
                                                 live_portal_module: LivePortal, lang: str,
                                                 host_on: str, guest_on: str) -> None:
    """Host and guest press only Tab, Enter and Space (and type a chat message). In English
    the guest agrees to be recorded and the host stops it and ends the call; in Norwegian the
    guest says no, leaves, and the host ends. axe checks each stage on both sides."""
    live, found = live_portal_module, []
    consult = live.book_consult(host_account, ["Pat Keys"], title=f"Keyboard {lang}")
    sides = Sides(chromium, playwright_instance, live)
    try:
        host_context = chromium.new_context(**context_options(playwright_instance, lang, host_on))
        host_context.add_init_script(path=AXE)
        host_context.add_cookies(live.playwright_cookies(host_account))  # type: ignore[arg-type]
        host = sides.open(host_context, "host")
        guest_context = chromium.new_context(**context_options(playwright_instance, lang,
                                                               guest_on))
        guest_context.add_init_script(path=AXE)
        guest = sides.open(guest_context, "guest")
        phone = guest if guest_on == "phone" else host

        def check(side: Side, label: str) -> None:
            found.extend(violations(side.page, f"{lang} {side.name} ({label})"))

        host.page.goto(consult.call_url)
        host.wait("() => !document.getElementById('join').disabled && document.getElementById("
                  "'check-ice').dataset.state !== 'pending'")
        check(host, "device check")
        if host_on == "desktop":  # 1280×800: Start call and the waiting room without scrolling
            assert below_the_fold(host.page, "#join", "#lobby-panel h2") == []
        tab_to(host, "#join")
        host.page.keyboard.press("Enter")
        host.stage("call")

        guest.page.goto(consult.guest.url)
        guest.wait("() => !document.getElementById('join').disabled")
        tab_to(guest, "#speaker-test")
        guest.page.keyboard.press("Enter")
        guest.wait("() => document.getElementById('check-speaker').dataset.state === 'ok'")
        check(guest, "landing and device check")
        # What to expect, and what recording means, come before Join (and above it).
        assert guest.page.evaluate("""() => {
          const about = document.getElementById("what-to-expect").getBoundingClientRect();
          return about.bottom <= document.getElementById("join").getBoundingClientRect().top;
        }""")
        tab_to(guest, "#join")
        guest.page.keyboard.press("Enter")
        guest.stage("lobby")
        check(guest, "waiting room")

        # The knock is announced and focus waits on Admit: Enter lets the guest in.
        said(host, "call-live", "knock")
        assert "Pat Keys" in host.page.text_content("#call-live")
        host.wait("() => document.activeElement && document.activeElement.dataset.action"
                  " === 'admit'")
        check(host, "someone knocks")
        host.page.keyboard.press("Enter")
        guest.stage("call")
        said(guest, "call-live", "live_in_call")
        check(guest, "in the call")
        check(host, "in the call")

        # Chat, and the microphone's state said aloud.
        if guest.page.evaluate("() => document.getElementById('room').dataset.chat") != "open":
            tab_to(guest, "#chat-toggle")
            guest.page.keyboard.press("Enter")
        tab_to(guest, "#chat-input")
        guest.page.keyboard.type("Hello by keyboard")
        guest.page.keyboard.press("Enter")
        host.wait("() => [...document.querySelectorAll('#chat-log .text')]"
                  ".some((p) => p.textContent === 'Hello by keyboard')")
        tab_to(guest, "#mute")
        guest.page.keyboard.press("Space")
        guest.wait("() => document.getElementById('mute').dataset.on === 'false'")
        said(guest, "call-live", "live_mic_off")
        guest.page.keyboard.press("Space")
        guest.wait("() => document.getElementById('mute').dataset.on === 'true'")

        # The host asks to record: confirmed in a dialog; the guest's focus goes to the prompt.
        tab_to(host, "#record")
        host.page.keyboard.press("Enter")
        assert focused(host.page, "#record-confirm-no")
        tab_to(host, "#record-confirm-yes")
        host.page.keyboard.press("Enter")
        guest.wait("() => document.getElementById('consent-dialog').open && "
                   "document.getElementById('consent-dialog').contains(document.activeElement)")
        check(guest, "consent prompt")
        lines_apart(phone)
        check(host, "asking for consent")
        if lang == "en":
            tab_to(guest, "#consent-yes")
            guest.page.keyboard.press("Enter")
            for side in (host, guest):
                said(side, "rec-live", "rec_started")
            for side in (host, guest):
                sent_to_recorder(side)
            check(guest, "recorded")
            tab_to(host, "#record")  # now Stop recording
            host.page.keyboard.press("Enter")
            for side in (host, guest):
                said(side, "rec-live", "rec_stopped")
            lines_apart(phone)
        else:
            assert focused(guest.page, "#consent-no")  # no answer is preselected but "no"
            guest.page.keyboard.press("Enter")
            for side in (host, guest):
                said(side, "rec-live", "rec_not_recorded")
            # The guest leaves: asked first, with focus on staying.
            tab_to(guest, "#leave")
            guest.page.keyboard.press("Enter")
            assert focused(guest.page, "#leave-confirm-no")
            tab_to(guest, "#leave-confirm-yes")
            guest.page.keyboard.press("Enter")
            guest.stage("left")
            check(guest, "left")

        # The host ends it for everyone: asked first, focus on Cancel.
        tab_to(host, "#end-call")
        host.page.keyboard.press("Enter")
        assert focused(host.page, "#end-confirm-no")
        check(host, "ending")
        tab_to(host, "#end-confirm-yes")
        host.page.keyboard.press("Enter")
        host.stage("ended")
        check(host, "ended")
        if lang == "en":
            guest.stage("ended")
            check(guest, "ended")
            # The recording: its tracks side by side, by name, played together from the keyboard.
            recordings = f"{live.base_url}/appointments/{consult.appointment_id}/recordings"
            for _ in range(60):  # the recorder seals the files after the call ends
                host.page.goto(recordings)
                if host.page.locator("li.recording[data-status=complete]").count():
                    break
                host.page.wait_for_timeout(500)
            names = host.page.eval_on_selector_all(
                "li.recording .track figcaption", "els => els.map((e) => e.textContent.trim())")
            assert [n.split(" · ")[0] for n in names] == ["Dr. Ada Host", "Pat Keys"], names
            check(host, "a recording")
            assert host.page.is_visible("button[data-play-together]"), \
                host.page.inner_text("li.recording")
            tab_to(host, "button[data-play-together]")
            host.page.keyboard.press("Enter")
            # Each video has played (a few seconds long, one may already have ended).
            host.wait("() => [...document.querySelectorAll('li.recording video')]"
                      ".every((v) => v.played.length > 0 && v.played.end(0) > 0)")
            # The button says whether they play: pressed while any does, not after they end.
            host.wait("""() => {
              const playing = [...document.querySelectorAll("li.recording video")]
                .some((v) => !v.paused);
              return document.querySelector("button[data-play-together]")
                .getAttribute("aria-pressed") === String(playing);
            }""")
            assert "<script" not in host.page.title()
        assert live.get_appointment(consult.appointment_id).status.value == "ended"
        assert not [e for side in sides.sides for e in side.errors], \
            [e for side in sides.sides for e in side.errors]
    finally:
        sides.close()
    assert not found, "\n".join(found)
