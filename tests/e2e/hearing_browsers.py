"""Chromium in a hearing through Janus (tests/e2e/test_hearing_e2e.py): one browser, a context
per participant (desktops, and phones as Playwright's "Pixel 7"), each with a fake camera of a
chosen size, joined into one call; and what the pages say about what they receive
(window.samtale.hearing, portal/static/js/hearing*.js)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from browser_call import PHONE, Side, Sides, device_check_passes, wait_until
from live import Consult, GuestInvite, LivePortal
from playwright.sync_api import Browser, BrowserContext, Playwright

#: The fake camera's size for most participants: 2 shared cores decode 30 streams of it.
SMALL = (320, 240, 15)
#: A camera large enough for all three simulcast layers (Chromium sends one below 480x270).
LARGE = (1280, 720, 15)
#: Chat closed (under 900 px): the large tile is ~850 px wide, so it asks for the top layer.
DESKTOP = {"viewport": {"width": 860, "height": 640}}

# Before the page's scripts: getUserMedia gets exactly this camera size and rate from Chromium's
# fake device, whatever the page asks for (LocalMedia asks for up to 1280x720 at 30).
CAMERA_JS = """(([width, height, rate]) => {
  const media = navigator.mediaDevices;
  const original = media.getUserMedia.bind(media);
  media.getUserMedia = (constraints = {}) => {
    if (constraints.video) {
      const asked = typeof constraints.video === "object" ? constraints.video : {};
      constraints = {...constraints, video: {...asked, width: {exact: width},
        height: {exact: height}, frameRate: {exact: rate}}};
    }
    return original(constraints);
  };
})(__SIZE__);"""

# True once every participant in `ids` has decoded more video frames (and received more audio
# packets) than at the first call with this `key`: polled by wait_for_function.
DECODING_JS = """async ({ids, key, frames, audio}) => {
  const h = window.samtale && window.samtale.hearing;
  if (!h || !h.subscribePc) { return false; }
  const s = await h.stats();
  const marks = (window.__decoding ||= {});
  const base = (marks[key] ||= {});
  let all = true;
  for (const id of ids) {
    const p = s.participants[id] || {};
    const now = {frames: (p.video || {}).framesDecoded || 0,
                 audio: (p.audio || {}).packetsReceived || 0};
    if (!base[id]) { base[id] = now; all = false; continue; }
    if (now.frames < base[id].frames + frames || (audio && now.audio <= base[id].audio)) {
      all = false;
    }
  }
  return all;
}"""

# The large tile: whose, its painted size, and the layer asked for.
LARGE_TILE_JS = """() => {
  const h = window.samtale.hearing;
  const tile = document.querySelector(".hearing-large [data-peer-tile]");
  if (!tile) { return null; }
  const v = tile.querySelector("video");
  const id = Number(tile.dataset.peerTile);
  return {id, width: v.videoWidth, height: v.videoHeight,
          cssWidth: Math.round(tile.getBoundingClientRect().width),
          layer: h.layers.get(id) ?? null, large: h.large};
}"""

# A failed wait's report of the hearing's side of a tab.
DIAGNOSE_JS = """async () => {
  const h = (window.samtale || {}).hearing;
  if (!h) { return "no hearing hooks"; }
  const pc = (c) => c && {signaling: c.signalingState, ice: c.iceConnectionState,
                          connection: c.connectionState};
  let stats = null;
  try { stats = await h.stats(); } catch (e) { stats = String(e); }
  return {active: h.active, status: h.status, publish: pc(h.publishPc),
          subscribe: pc(h.subscribePc), streams: [...h.streams], layers: [...h.layers],
          large: h.large, stats,
          netStatus: (document.getElementById("net-status") || {}).textContent};
}"""


def declare(side: Side) -> None:
    """A hearing's declaration on the device check ("I will not record or photograph this
    hearing"): Join waits for its tick."""
    side.stage("check")
    side.page.wait_for_selector("#declaration-ack")
    side.page.check("#declaration-ack")


def open_court_panel(page: Any) -> bool:
    """The court panel (a host's board, counsel's private room): opened by its control when a
    narrow window keeps it closed. Returns whether it had to be opened."""
    closed = page.is_hidden("#court-panel")
    if closed:
        page.click("#court-toggle")
    page.wait_for_selector("#court-panel", state="visible")
    return closed


def start_hearing(page: Any) -> None:
    """A host starts the hearing: the button, then the confirmation (the panel is left as it
    was)."""
    opened = open_court_panel(page)
    page.click("[data-court-action=start]")
    page.wait_for_selector("#court-confirm[open]")
    page.click("#court-confirm-yes")
    page.wait_for_function("() => document.body.dataset.courtStage === 'in_session'")
    if opened:
        page.click("#court-close")


@dataclass
class Party:
    """One participant's tab in the hearing."""

    side: Side
    context: BrowserContext
    url: str
    participant_id: int = 0
    phone: bool = False

    @property
    def name(self) -> str:
        return self.side.name

    def report(self) -> str:
        try:
            hearing = self.side.page.evaluate(DIAGNOSE_JS)
        except Exception as exc:  # noqa: BLE001 - a report, best effort
            hearing = f"(page not readable: {exc})"
        return f"{self.side.diagnose()}\n{self.name} hearing: {hearing}"

    def wait(self, js: str, arg: Any = None, timeout: float = 20_000) -> Any:
        try:
            return wait_until(self.side.page, js, arg=arg, timeout=timeout, polling=250)
        except Exception as exc:  # noqa: BLE001 - say what the page looked like
            raise AssertionError(f"{self.name}: still not true after {timeout / 1000} s: {js}\n"
                                 f"{exc}\n{self.report()}") from None

    def decodes(self, ids: list[int], timeout: float = 20_000, frames: int = 5,
                audio: bool = True) -> None:
        """Every participant in `ids` reaches this tab: video frames decoded (and audio)."""
        key = f"{time.monotonic()}"
        self.wait(DECODING_JS, arg={"ids": ids, "key": key, "frames": frames, "audio": audio},
                  timeout=timeout)

    def downlink(self, ms: int = 4000) -> float:
        """The receive-only connection's whole downlink over `ms`, in bit/s."""
        return float(self.side.page.evaluate("(ms) => window.samtale.hearing.downlink(ms)", ms))

    def large_tile(self) -> dict[str, Any] | None:
        return self.side.page.evaluate(LARGE_TILE_JS)  # type: ignore[no-any-return]


@dataclass
class HearingRoom:
    """The tabs of one hearing, in one browser; `close()` closes them all."""

    browser: Browser
    playwright: Playwright
    live: LivePortal
    consult: Consult
    parties: list[Party] = field(default_factory=list)
    _sides: Sides | None = None

    def __post_init__(self) -> None:
        # Sides gives each tab the ICE and console bookkeeping of the consult tests.
        self._sides = Sides(self.browser, self.playwright, self.live)

    @property
    def host(self) -> Party:
        return self.parties[0]

    @property
    def sides(self) -> list[Side]:
        assert self._sides is not None
        return self._sides.sides

    def _context(self, *, phone: bool, camera: tuple[int, int, int], host: bool) -> BrowserContext:
        options = dict(self.playwright.devices[PHONE]) if phone else dict(DESKTOP)
        context = self.browser.new_context(**options, permissions=["camera", "microphone"])
        context.add_init_script(CAMERA_JS.replace("__SIZE__", repr(list(camera))))
        if host:
            context.add_cookies(self.live.playwright_cookies(self.consult.host))  # type: ignore[arg-type]
        return context

    def _open(self, name: str, url: str, *, phone: bool, camera: tuple[int, int, int],
              host: bool = False) -> Party:
        assert self._sides is not None
        context = self._context(phone=phone, camera=camera, host=host)
        side = self._sides.open(context, name)
        party = Party(side, context, url, phone=phone)
        self.parties.append(party)
        return party

    def open_host(self, camera: tuple[int, int, int] = SMALL) -> Party:
        """The host, on the call page, in the call."""
        party = self._open("host", self.consult.call_url, phone=False, camera=camera, host=True)
        party.side.page.goto(party.url)
        declare(party.side)
        device_check_passes(party.side)
        party.side.page.click("#join")
        party.side.stage("call")
        party.participant_id = party.side.self_id()
        return party

    def admit(self, invite: GuestInvite, name: str, *, phone: bool = False,
              camera: tuple[int, int, int] = SMALL) -> Party:
        """A guest through the device check and the waiting room, admitted by the host."""
        party = self._open(name, invite.url, phone=phone, camera=camera)
        party.participant_id = invite.participant_id
        self.enter(party)
        return party

    def enter(self, party: Party) -> None:
        page = party.side.page
        page.goto(party.url)
        declare(party.side)
        device_check_passes(party.side)
        page.click("#join")
        party.side.stage("lobby")
        admit = f'[data-action=admit][data-participant="{party.participant_id}"]'
        self.host.side.page.click(admit)
        party.side.stage("call")

    def reopen(self, party: Party) -> Party:
        """The tab closed and the link opened again in a new one (same context)."""
        party.side.page.close()
        assert self._sides is not None
        side = self._sides.tab(party.context, party.name)
        party.side = side
        side.page.goto(party.url)
        return party

    def others(self, party: Party) -> list[int]:
        return [p.participant_id for p in self.parties if p is not party]

    def everyone_decodes_everyone(self, timeout: float = 30_000, audio: bool = True) -> None:
        for party in self.parties:
            party.decodes(self.others(party), timeout=timeout, audio=audio)

    def errors(self) -> list[str]:
        return [e for side in self.sides for e in side.errors]

    def close(self) -> None:
        if self._sides is not None:
            self._sides.close()
