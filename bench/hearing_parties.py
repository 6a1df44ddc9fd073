"""Chromium participants of one hearing for bench/hearing.py: one headless Chromium, a context
per participant (a fake camera of a chosen size, desktops or a "Pixel 7"), joined as people do
(the court's notice, the device check, the waiting room, the host's Admit), but several at once:
the pages are opened and pass their device checks in parallel.

Each page gets a small timeline before its scripts run (TIMING_JS): when it first made its
send-only offer (the `hearing:publish`), and when its receive-only connection first decoded a
remote video frame. The rest is read through the page's own hooks (window.samtale.hearing,
portal/static/js/hearing-stats.js)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from browser_call import PHONE, Side, Sides, device_check_passes
from hearing_browsers import CAMERA_JS, DECODING_JS
from live import Consult, GuestInvite, LivePortal
from playwright.sync_api import Browser, BrowserContext, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

# A joiner's timeline, in the page's own clock: publish = the first local offer of a connection
# that sends (the device check's test connection sends nothing); answer = Janus's answer to it
# set; offer = the first subscription offer set; frame = the first getStats with framesDecoded
# > 0 on that receiving connection (polled every 20 ms from the offer until then).
TIMING_JS = """(() => {
  const Native = window.RTCPeerConnection;
  const bench = window.__bench = {publish: null, answer: null, offer: null, frame: null};
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    const sends = () => pc.getTransceivers().some((t) => t.direction === "sendonly");
    const local = pc.setLocalDescription.bind(pc);
    pc.setLocalDescription = (d, ...rest) => {
      if (bench.publish === null && sends() && (!d || d.type === "offer")) {
        bench.publish = performance.now();
      }
      return local(d, ...rest);
    };
    const remote = pc.setRemoteDescription.bind(pc);
    pc.setRemoteDescription = (d, ...rest) => {
      if (d && d.type === "answer" && bench.answer === null && sends()) {
        bench.answer = performance.now();
      }
      if (d && d.type === "offer" && !pc.__polled) {
        pc.__polled = true;
        if (bench.offer === null) { bench.offer = performance.now(); }
        const poll = async () => {
          if (bench.frame !== null || pc.connectionState === "closed") { return; }
          let decoded = 0;
          (await pc.getStats()).forEach((r) => {
            if (r.type === "inbound-rtp" && r.kind === "video") { decoded += r.framesDecoded || 0; }
          });
          if (decoded > 0) { bench.frame = performance.now(); return; }
          setTimeout(poll, 20);
        };
        setTimeout(poll, 0);
      }
      return remote(d, ...rest);
    };
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""

# What the page receives (hearing-stats.js); the frames its camera's best layer has sent, and
# the RTP packets it has sent (all layers, audio too).
STATS_JS = """async () => {
  const h = window.samtale && window.samtale.hearing;
  if (!h || !h.subscribePc) { return null; }
  const out = await h.stats();
  out.sent = 0;
  out.packets = 0;
  if (h.publishPc) {
    (await h.publishPc.getStats()).forEach((r) => {
      if (r.type !== "outbound-rtp") { return; }
      out.packets += r.packetsSent || 0;
      if (r.kind === "video") { out.sent = Math.max(out.sent, r.framesSent || 0); }
    });
  }
  return out;
}"""

#: Desktops' window: the speaker's tile stays under 640 CSS px, so it asks for the middle layer
#: (640x360 of a 720p camera) rather than the full one, which 14 pages could not decode on two
#: cores alongside everything else.
DESKTOP = {"viewport": {"width": 640, "height": 480}}
#: A page's step (a click, a stage) may wait this long: 15 pages fill both cores.
STEP_MS = 90_000


@dataclass
class Person:
    name: str
    url: str
    context: BrowserContext
    side: Side
    participant_id: int
    phone: bool = False
    host: bool = False

    @property
    def page(self) -> Any:
        return self.side.page

    def evaluate(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def stats(self) -> dict[str, Any] | None:
        return self.evaluate(STATS_JS)

    def timeline(self) -> dict[str, float] | None:
        """Seconds from this page's publish to Janus's answer, to the subscription offer and
        to the first decoded remote video frame; None until that frame."""
        t = self.evaluate("() => window.__bench")
        if not t or None in (t["publish"], t["frame"]):
            return None
        return {k: (t[k] - t["publish"]) / 1000 if t[k] is not None else float("nan")
                for k in ("answer", "offer", "frame")}


@dataclass
class Hearing:
    """The tabs of one hearing; `close()` closes them all."""

    browser: Browser
    playwright: Playwright
    live: LivePortal
    consult: Consult
    people: list[Person] = field(default_factory=list)
    sides: Sides | None = None

    def __post_init__(self) -> None:
        # Sides: each tab's ICE addresses (checked for loopback at the end) and its errors.
        self.sides = Sides(self.browser, self.playwright, self.live)

    @property
    def host(self) -> Person:
        return self.people[0]

    def _open(self, name: str, url: str, participant_id: int, *, camera: tuple[int, int, int],
              phone: bool = False, host: bool = False) -> Person:
        assert self.sides is not None
        options = dict(self.playwright.devices[PHONE]) if phone else dict(DESKTOP)
        context = self.browser.new_context(**options, permissions=["camera", "microphone"])
        context.add_init_script(CAMERA_JS.replace("__SIZE__", repr(list(camera))))
        context.add_init_script(TIMING_JS)
        if host:
            context.add_cookies(self.live.playwright_cookies(self.consult.host))  # type: ignore[arg-type]
        side = self.sides.open(context, name)
        side.page.set_default_timeout(STEP_MS)
        person = Person(name, url, context, side, participant_id, phone=phone, host=host)
        self.people.append(person)
        return person

    def start(self, camera: tuple[int, int, int]) -> Person:
        """The host, in the call."""
        person = self._open("host", self.consult.call_url, 0, camera=camera, host=True)
        self._check(person)
        person.page.click("#join")
        person.side.stage("call", STEP_MS)
        person.participant_id = person.side.self_id()
        return person

    def _check(self, person: Person, *, navigate: bool = True) -> None:
        page = person.page
        if navigate:
            page.goto(person.url)
        person.side.stage("check", STEP_MS)
        page.wait_for_function("() => window.samtale.state.welcome !== null")
        if page.is_visible("#notice"):  # a recorded hearing: the court's notice first
            page.check("#notice-ack")
        # The camera's preview can lag the checks on busy cores: wait for it, then check.
        person.side.wait("() => document.getElementById('preview').videoWidth > 0", timeout=STEP_MS)
        device_check_passes(person.side)

    def admit(self, invites: list[tuple[GuestInvite, bool, tuple[int, int, int]]]) -> list[Person]:
        """Guests (invite, phone?, camera) through the device check and the waiting room at
        once; the host admits them in order."""
        made = [self._open(i.name, i.url, i.participant_id, camera=camera, phone=phone)
                for i, phone, camera in invites]
        for person in made:
            person.page.goto(person.url, wait_until="commit")
        for person in made:
            self._check(person, navigate=False)
            person.page.click("#join")
        for person in made:
            person.side.stage("lobby", STEP_MS)
            self.host.page.click(
                f'[data-action=admit][data-participant="{person.participant_id}"]')
        for person in made:
            person.side.stage("call", STEP_MS)
        return made

    def others(self, person: Person) -> list[int]:
        return [p.participant_id for p in self.people if p is not person]

    def decoding(self, people: list[Person] | None = None, timeout: float = 60.0) -> list[str]:
        """Until each page decodes video from each other participant (5 frames more than at
        the first look) and receives their audio; the names of the pages that did not within
        the timeout (a busy machine's result, measured on rather than given up)."""
        key = f"{time.monotonic()}"
        deadline = time.monotonic() + timeout
        late = []
        for person in people or self.people:
            try:
                person.page.wait_for_function(
                    DECODING_JS, arg={"ids": self.others(person), "key": key, "frames": 5,
                                      "audio": True},
                    timeout=max(1000, (deadline - time.monotonic()) * 1000), polling=500)
            except PlaywrightTimeout:
                late.append(person.name)
        return late

    def reload(self, person: Person) -> None:
        """The tab reloaded: back in the call within the grace period, no waiting room."""
        person.page.reload()
        person.side.stage("call", STEP_MS)

    def errors(self) -> list[str]:
        assert self.sides is not None
        return [e for side in self.sides.sides for e in side.errors]

    def close(self) -> None:
        if self.sides is not None:
            self.sides.close()
