"""Chromium for the end-to-end tests (Playwright): a desktop host and an emulated phone guest
with fake camera and microphone, each in a fresh context, and the steps into a call. The fixtures
`playwright_instance`, `chromium` (one per module) and `sides` (tabs closed, page errors
failed, per test) are in tests/e2e/conftest.py."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from live import Consult, LivePortal
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
)
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = os.environ.get("SAMTALE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",  # a test pattern and a beeping microphone
    "--use-fake-ui-for-media-stream",  # no permission prompt
    "--allow-loopback-in-peer-connection",  # ICE over 127.0.0.1 on a machine without a LAN
]
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = "Pixel 7"
#: Generous for 2 busy cores; the happy path takes a second or two.
STEP_MS = 30_000  # a step on a slow, loaded CI machine (passing steps take far less)

# Read on the page through window.samtale.peers (participant id -> RTCPeerConnection).
INBOUND_JS = """async () => {
  const out = {peers: 0, framesDecoded: 0, audioPackets: 0};
  for (const pc of window.samtale.peers.values()) {
    out.peers += 1;
    const report = await pc.getStats();
    report.forEach((r) => {
      if (r.type !== "inbound-rtp") { return; }
      if (r.kind === "video") { out.framesDecoded += r.framesDecoded || 0; }
      if (r.kind === "audio") { out.audioPackets += r.packetsReceived || 0; }
    });
  }
  return out;
}"""

# Three painted frames of the remote video (requestVideoFrameCallback), and its clock moving.
FRAMES_JS = """async () => {
  const v = document.querySelector("video.remote");
  if (!v || !v.videoWidth) { return null; }
  const t0 = v.currentTime;
  const frames = await new Promise((resolve) => {
    let n = 0;
    const timer = setTimeout(() => resolve(n), 3000);
    const step = () => {
      n += 1;
      if (n >= 3) { clearTimeout(timer); resolve(n); } else { v.requestVideoFrameCallback(step); }
    };
    v.requestVideoFrameCallback(step);
  });
  return {width: v.videoWidth, height: v.videoHeight, t0, t1: v.currentTime, frames,
          paused: v.paused};
}"""


# What a tab looks like when a wait fails: stage, peer connections, remote videos.
DIAGNOSE_JS = """async () => {
  const s = window.samtale || {};
  const peers = [];
  for (const [id, pc] of (s.peers || new Map())) {
    peers.push({id, signaling: pc.signalingState, ice: pc.iceConnectionState,
                connection: pc.connectionState, gathering: pc.iceGatheringState,
                receivers: pc.getReceivers().map((r) => r.track.kind + ":" + r.track.readyState)});
  }
  const videos = [...document.querySelectorAll("video.remote")].map((v) => ({
    peer: v.dataset.peer, paused: v.paused, readyState: v.readyState, width: v.videoWidth,
    time: v.currentTime, tracks: v.srcObject ? v.srcObject.getTracks().map((t) => t.kind) : null}));
  return {stage: document.body.dataset.stage, peers, videos,
          alert: (document.getElementById("call-alert") || {}).textContent,
          recording: (document.getElementById("rec-status") || {}).textContent,
          dialogs: [...document.querySelectorAll("dialog[open]")].map((d) => d.id),
          focus: document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : null,
          timeline: (window.__pcLog || []).slice(-60)};
}"""


# Installed in every tab before the page's scripts: a timeline of each peer connection
# (descriptions, states, candidates each way), read by DIAGNOSE_JS when a wait fails.
ICE_MARK = "samtale-ice "
PC_TIMELINE_JS = """(() => {
  const ICE_MARK = "__ICE_MARK__";
  const Native = window.RTCPeerConnection;
  const t0 = performance.now();
  let next = 0;
  window.__pcLog = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    const n = next++;
    pc.__n = n;
    const log = (what) => {
      window.__pcLog.push(`${Math.round(performance.now() - t0)} pc${n} ${what}`);
      if (window.__pcLog.length > 200) { window.__pcLog.shift(); }
    };
    for (const ev of ["signalingstatechange", "icegatheringstatechange",
                      "iceconnectionstatechange", "negotiationneeded"]) {
      pc.addEventListener(ev, () => log(`${ev} ${pc.signalingState}/` +
        `${pc.iceGatheringState}/${pc.iceConnectionState}`));
    }
    pc.addEventListener("icecandidate", ({candidate}) => {
      log(`local candidate ${candidate ? candidate.type + " " + candidate.address : "end"}`);
      if (candidate) {  // reported through the console: it outlives a reload or a closed tab
        console.debug(ICE_MARK + JSON.stringify({gathered: [candidate.address ||
                                                            candidate.candidate.split(" ")[4]]}));
      }
    });
    pc.addEventListener("connectionstatechange", async () => {
      if (pc.connectionState !== "connected") { return; }
      const report = await pc.getStats();
      const used = [];
      report.forEach((r) => {
        if (r.type !== "transport" || !r.selectedCandidatePairId) { return; }
        const pair = report.get(r.selectedCandidatePairId);
        for (const id of pair ? [pair.localCandidateId, pair.remoteCandidateId] : []) {
          const c = report.get(id);
          // Chromium hides a peer-reflexive remote's address; "remote" below covers it.
          if (c && (c.address || c.ip)) { used.push(c.address || c.ip); }
        }
      });
      console.debug(ICE_MARK + JSON.stringify({used}));
    });
    const wrap = (name, describe) => {
      const orig = pc[name].bind(pc);
      pc[name] = (...a) => {
        log(`${name} ${describe(a[0])}`);
        return orig(...a).catch((e) => { log(`${name} failed: ${e}`); throw e; });
      };
    };
    const remote = (addresses) => console.debug(ICE_MARK + JSON.stringify({remote: addresses}));
    pc.addEventListener("signalingstatechange", () => {
      const sdp = pc.remoteDescription ? pc.remoteDescription.sdp : "";
      remote(sdp.split(/\\r?\\n/).filter((l) => l.startsWith("a=candidate:"))
                 .map((l) => l.split(" ")[4]));
    });
    const addCandidate = pc.addIceCandidate.bind(pc);
    pc.addIceCandidate = (c, ...rest) => {
      if (c && c.candidate) { remote([c.candidate.split(" ")[4]]); }
      return addCandidate(c, ...rest);
    };
    wrap("setLocalDescription", (d) => (d ? d.type : "implicit"));
    wrap("setRemoteDescription", (d) => d && d.type);
    wrap("addIceCandidate", (c) => (c && c.candidate ? c.candidate.split(" ").slice(4, 8).join(" ")
                                                   : "end"));
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();""".replace("__ICE_MARK__", ICE_MARK)


@dataclass
class Side:
    """One participant's browser tab, with the JavaScript errors it reported."""

    page: Page
    name: str = "tab"
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    #: ICE addresses this tab's peer connections gathered, and those of the pairs they used.
    gathered: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)  # what the other side offered

    def stage(self, stage: str, timeout: float = STEP_MS) -> None:
        # document.body is null for a moment while a page (re)loads.
        self.wait("(s) => !!document.body && document.body.dataset.stage === s", arg=stage,
                  timeout=timeout)

    def wait(self, js: str, arg: Any = None, timeout: float = STEP_MS) -> Any:
        try:
            return wait_until(self.page, js, arg=arg, timeout=timeout)
        except PlaywrightTimeoutError:
            raise AssertionError(f"{self.name}: still not true after {timeout / 1000} s: {js}"
                                 f"\n{self.diagnose()}") from None

    def diagnose(self) -> str:
        try:
            state = self.page.evaluate(DIAGNOSE_JS)
        except Exception as exc:  # noqa: BLE001 - a report, best effort
            state = f"(page not readable: {exc})"
        return f"{self.name} state: {state}\n{self.name} console:\n  " + \
            "\n  ".join(self.console[-40:])

    def self_id(self) -> int:
        return int(self.page.evaluate("() => window.samtale.self.id"))


def wait_until(page: Page, js: str, arg: Any = None, timeout: float = STEP_MS,
               polling: float | str = "raf") -> Any:
    """page.wait_for_function, also for an async predicate: Playwright takes the promise an
    async function returns for a truthy answer and returns at once, so those are polled here
    with evaluate (which awaits). Raises PlaywrightTimeoutError as wait_for_function does."""
    if not js.lstrip().startswith("async"):
        return page.wait_for_function(js, arg=arg, timeout=timeout, polling=polling)
    interval = polling if isinstance(polling, int | float) else 100
    deadline = time.monotonic() + timeout / 1000
    while True:
        found = page.evaluate(js, arg)
        if found:
            return found
        if time.monotonic() >= deadline:
            raise PlaywrightTimeoutError(f"Timeout {timeout} ms exceeded.")
        page.wait_for_timeout(interval)


@dataclass
class Call:
    live: LivePortal
    consult: Consult
    host: Side
    guest: Side


class Sides:
    """Opens tabs in fresh browser contexts and closes them after the test."""

    def __init__(self, browser: Browser, playwright: Playwright, live: LivePortal) -> None:
        self.browser, self.playwright, self.live = browser, playwright, live
        self.contexts: list[BrowserContext] = []
        self.sides: list[Side] = []

    def open(self, context: BrowserContext, name: str) -> Side:
        """The first tab of a context made elsewhere (e.g. with its own camera), kept here."""
        return self._open(context, name)

    def _open(self, context: BrowserContext, name: str) -> Side:
        self.contexts.append(context)
        context.add_init_script(PC_TIMELINE_JS)
        return self.tab(context, name)

    def tab(self, context: BrowserContext, name: str) -> Side:
        """A new tab in a context already opened here (a participant opening the link again)."""
        page = context.new_page()
        page.set_default_timeout(STEP_MS)
        side = Side(page, name)

        def on_console(msg: Any) -> None:
            if msg.text.startswith(ICE_MARK):
                report = json.loads(msg.text[len(ICE_MARK):])
                side.gathered += report.get("gathered", [])
                side.used += report.get("used", [])
                side.remote += report.get("remote", [])
                return
            side.console.append(f"{time.strftime('%H:%M:%S')} {msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text:
                side.errors.append(f"console: {msg.text}")

        page.on("pageerror", lambda exc: side.errors.append(f"pageerror: {exc}"))
        page.on("console", on_console)
        self.sides.append(side)
        return side

    def host(self, consult: Consult) -> Side:
        context = self.browser.new_context(**DESKTOP, permissions=["camera", "microphone"])
        context.add_cookies(self.live.playwright_cookies(consult.host))  # type: ignore[arg-type]
        return self._open(context, "host")

    def guest(self) -> Side:
        context = self.browser.new_context(**self.playwright.devices[PHONE],
                                           permissions=["camera", "microphone"])
        return self._open(context, "guest")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


# --- steps ------------------------------------------------------------------------------------

def device_check_passes(side: Side) -> None:
    """Camera, microphone and portal all fine; the Join button is on."""
    side.stage("check")
    side.wait("() => !document.getElementById('join').disabled")
    side.wait("() => document.getElementById('check-media').dataset.state !== 'pending'")
    assert side.page.get_attribute("#check-media", "data-state") == "ok"
    assert side.page.get_attribute("#check-signal", "data-state") == "ok"
    side.wait("() => document.getElementById('check-ice').dataset.state !== 'pending'")
    # No STUN/TURN configured in the test portal: direct connections only, not an error.
    assert side.page.get_attribute("#check-ice", "data-state") == "ok"
    # The preview's first frame may come a moment after the checks are done.
    side.wait("() => document.getElementById('preview').videoWidth > 0")


def open_consult(sides: Sides) -> tuple[Consult, Side, Side]:
    """A consult with the host started on the call page and the guest in the waiting room."""
    live = sides.live
    consult = live.book_consult(live.create_host(), ["Pat Phone"])
    host = sides.host(consult)
    host.page.goto(consult.call_url)
    device_check_passes(host)
    host.page.click("#join")
    host.stage("call")

    guest = sides.guest()
    guest.page.goto(consult.guest.url)
    device_check_passes(guest)
    guest.page.click("#join")
    guest.stage("lobby")
    return consult, host, guest


def admit_from_call_page(call: Call) -> None:
    gid = call.consult.guest.participant_id
    admit = f'[data-action=admit][data-participant="{gid}"]'
    call.host.page.click(admit)
    call.guest.stage("call")


def enter_call(sides: Sides) -> Call:
    consult, host, guest = open_consult(sides)
    call = Call(sides.live, consult, host, guest)
    admit_from_call_page(call)
    return call


def remote_video_plays(side: Side) -> dict[str, Any]:
    side.wait("() => { const v = document.querySelector('video.remote');"
              " return !!v && v.videoWidth > 0 && v.currentTime > 0; }")
    seen = side.page.evaluate(FRAMES_JS)
    assert seen is not None, "no remote video"
    assert seen["width"] > 0 and seen["height"] > 0, seen
    assert seen["t1"] > seen["t0"], f"the remote video stands still: {seen}"
    assert seen["frames"] >= 3, f"the remote video painted too few frames: {seen}"
    return seen


def media_flows_both_ways(call: Call) -> None:
    """Pictures move on both screens and both receivers' counters grow."""
    for side in (call.host, call.guest):
        remote_video_plays(side)
    first = {name: s.page.evaluate(INBOUND_JS)
             for name, s in (("host", call.host), ("guest", call.guest))}
    time.sleep(1.5)
    second = {name: s.page.evaluate(INBOUND_JS)
              for name, s in (("host", call.host), ("guest", call.guest))}
    for name in ("host", "guest"):
        a, b = first[name], second[name]
        assert b["peers"] == 1, (name, b)
        assert b["framesDecoded"] > a["framesDecoded"], f"{name}: no video frames: {a} -> {b}"
        assert b["audioPackets"] > a["audioPackets"], f"{name}: no audio packets: {a} -> {b}"


def lobby_rows(side: Side) -> int:
    return int(side.page.evaluate("() => document.querySelectorAll('#lobby-list li').length"))
