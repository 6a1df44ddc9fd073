"""End to end: a hearing through a real Janus (tests/janus.py) with six participants in real
headless Chromium (one browser, a context each; the host's fake camera 1280x720, the others'
320x240, all at 15 fps; one guest a "Pixel 7"), against a live portal configured with that Janus.

The tests share one call and run in order: everyone decodes everyone; the phone sees the speaker
large at 640x360 or more on a downlink under 1.5 Mbit/s; a guest whose tab closes is back within
the grace period without the waiting room; Janus is killed and started again and the call comes
back by itself. Every page must report no errors, and ICE must stay on loopback, inside the run's
network namespace. Chromium or Janus missing: the tests fail, never skip.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_call import Sides, lobby_rows
from hearing_browsers import LARGE, SMALL, HearingRoom, Party, start_hearing
from janus import JanusProcess
from live import LivePortal, running
from netns import outside_loopback
from playwright.sync_api import Browser, Playwright

from portal.models import Kind, RecordingPolicy

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc]

#: The issue's goal for a phone in a hearing.
PHONE_DOWNLINK_BPS = 1_500_000
# The width of each simulcast layer this page sends now (rid: h, m, l).
LAYER_WIDTHS_JS = """async () => {
  const widths = {};
  (await window.samtale.hearing.publishPc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.rid) {
      widths[s.rid] = s.frameWidth || 0;
    }
  });
  return widths;
}"""
#: A closed tab's participant may come back this long: a reopened page first starts its camera
#: and microphone, which takes seconds on two busy cores.
GRACE_SECONDS = 15


@pytest.fixture(scope="module")
def janus_portal(request: pytest.FixtureRequest, sqlite_template: Path, janus: JanusProcess,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    """A live portal whose hearings go through the module's Janus."""
    env = {**janus.portal_env(), "PORTAL_JANUS_RETRY_SECONDS": "1"}
    with running(request, sqlite_template, tmp_path_factory.mktemp("live-hearing"),
                 grace_seconds=GRACE_SECONDS, env=env) as live:
        yield live
        live.close_clients()


@pytest.fixture(scope="module")
def hearing(request: pytest.FixtureRequest, chromium: Browser, playwright_instance: Playwright,
            janus_portal: LivePortal) -> Iterator[HearingRoom]:
    """Six people in one hearing: the host (large camera), three desktop guests and a phone."""
    live = janus_portal
    guests = ["Dana Desk", "Eli Desk", "Fay Desk", "Gus Desk", "Pia Phone"]
    consult = live.book_consult(live.create_host(), guests, title="Live hearing",
                                kind=Kind.HEARING, policy=RecordingPolicy.OFF)
    room = HearingRoom(chromium, playwright_instance, live, consult)
    failed_before = request.session.testsfailed
    try:
        room.open_host(camera=LARGE)
        for invite in consult.guests:
            room.admit(invite, invite.name, phone=invite.name == "Pia Phone", camera=SMALL)
        start_hearing(room.host.side.page)  # until then, nobody receives anybody
        yield room
    finally:
        if request.session.testsfailed > failed_before:
            for party in room.parties:
                sys.stderr.write(f"\n----- {party.name} -----\n{party.report()}\n")
        try:
            assert not room.errors(), f"the pages reported errors: {room.errors()}"
            for side in room.sides:
                outside = outside_loopback(side.gathered + side.used + side.remote)
                assert not outside, f"{side.name}: ICE outside loopback: {outside}"
        finally:
            room.close()


# Exactly the audio and the video of each of `ids` in the receive-only connection.
RECEIVES_JS = """(ids) => {
  const streams = [...window.samtale.hearing.streams.values()]
    .map((s) => `${s.participantId}:${s.kind}`).sort();
  const wanted = ids.flatMap((id) => [`${id}:audio`, `${id}:video`]).sort();
  return JSON.stringify(streams) === JSON.stringify(wanted);
}"""


def phone(room: HearingRoom) -> Party:
    return next(p for p in room.parties if p.phone)


# --- the tests --------------------------------------------------------------------------------

def test_six_participants_each_decode_the_five_others(hearing: HearingRoom) -> None:
    assert len(hearing.parties) == 6
    for party in hearing.parties:
        # The media server's call: no PeerLinks, one connection each way, carrying the audio
        # and video of each of the five others (the last joiner's come with a re-offer).
        assert party.side.page.evaluate("() => window.samtale.hearing.active")
        assert party.side.page.evaluate("() => window.samtale.peers.size") == 0
        party.wait(RECEIVES_JS, arg=hearing.others(party))
    hearing.everyone_decodes_everyone()
    # Who is who: every tile carries a participant of the call; one is large, the rest in the strip.
    for party in hearing.parties:
        tiles = party.side.page.eval_on_selector_all(
            "[data-peer-tile]", "els => els.map((e) => Number(e.dataset.peerTile))")
        assert sorted(tiles) == sorted(hearing.others(party))
        assert party.side.page.locator(".hearing-large [data-peer-tile]").count() == 1
        assert party.side.page.locator(".hearing-strip [data-peer-tile]").count() == 4
        # Everyone is heard, large or small: every tile's element plays, with its sound on.
        playing = party.side.page.eval_on_selector_all(
            "video.remote", "els => els.map((v) => !v.paused && !v.muted &&"
            " v.srcObject.getAudioTracks().length === 1)")
        assert playing == [True] * 5, (party.name, playing)
        # The quality line samples the receive-only connection (every 2 s).
        party.wait("() => ['good', 'fair', 'poor'].includes("
                   "document.getElementById('quality').dataset.level)", timeout=8000)


def test_the_phone_sees_the_speaker_large_on_a_small_downlink(hearing: HearingRoom) -> None:
    """Only the host speaks (the others mute): the phone shows the host large, from the middle
    layer of a 720p camera, and its whole downlink stays under 1.5 Mbit/s."""
    host, mobile = hearing.host, phone(hearing)
    muted = [p for p in hearing.parties if p is not host]
    for party in muted:
        party.side.page.click("#mute")
    try:
        mobile.wait("(id) => window.samtale.hearing.large === id", arg=host.participant_id)
        # The middle layer's size: 640x360 from a 720p camera, less when the sender's CPU
        # scales its layers down (a slow machine): compared with what the host sends.
        deadline, seen = time.monotonic() + 30, None
        while True:
            sent = host.side.page.evaluate(LAYER_WIDTHS_JS)
            large = mobile.side.page.evaluate(
                "() => (document.querySelector('.hearing-large video') || {}).videoWidth || 0")
            seen = (sent, large)
            if sent.get("l") and large > sent["l"] and large in (sent.get("m"), 640):
                break
            assert time.monotonic() < deadline, f"the phone's large video: {seen}"
            time.sleep(0.25)
        tile = mobile.large_tile()
        assert tile is not None and tile["id"] == host.participant_id, tile
        assert tile["layer"] == 1, f"a phone's speaker tile asks for the middle layer: {tile}"
        small = mobile.side.page.evaluate(
            "() => [...window.samtale.hearing.layers].filter(([id]) =>"
            " id !== window.samtale.hearing.large).map(([, s]) => s)")
        assert small == [0, 0, 0, 0], f"the strip asks for the smallest layer: {small}"
        bps = mobile.downlink(5000)  # the hook: bytes of the whole connection over 5 s
        assert 0 < bps < PHONE_DOWNLINK_BPS, f"the phone's downlink: {bps / 1e6:.2f} Mbit/s"
        sys.stderr.write(f"\nphone downlink {bps / 1e6:.2f} Mbit/s, speaker {tile}\n")
        # The desktops see the host at full size (their large tile is wider than 640 px).
        desk = hearing.parties[1]
        desk.wait("(id) => window.samtale.hearing.large === id", arg=host.participant_id)
        assert desk.large_tile()["layer"] == 2  # type: ignore[index]
    finally:
        for party in muted:
            party.side.page.click("#mute")


def test_a_dropped_guest_is_back_without_the_waiting_room(hearing: HearingRoom) -> None:
    dropped = hearing.parties[2]
    hearing.reopen(dropped)
    # Straight back into the call: no device check to pass, no waiting room, no admit click.
    dropped.side.stage("call")
    assert lobby_rows(hearing.host.side) == 0
    hearing.everyone_decodes_everyone()
    assert dropped.side.page.evaluate("() => window.samtale.stage") == "call"


# From now on: each hearing:media state this tab gets, and each text its status line shows.
def test_a_lost_socket_comes_back_and_keeps_the_call(hearing: HearingRoom) -> None:
    """A network blip on a desktop guest's socket: it reconnects, joins again with resume and
    sends afresh; everyone decodes everyone, nobody waits in the lobby."""
    blip = hearing.parties[3]
    blip.side.page.evaluate("() => { window.samtale.hearing.publishPc.__old = true;"
                            " window.samtale.socket.io.engine.close(); }")
    # Back in the call, sending on a new connection (after the portal's `ready`).
    blip.wait("() => { const pc = window.samtale.hearing.publishPc;"
              " return window.samtale.socket.connected && !!pc && !pc.__old &&"
              " pc.connectionState === 'connected'; }")
    hearing.everyone_decodes_everyone()
    assert blip.side.page.evaluate("() => window.samtale.stage") == "call"
    assert lobby_rows(hearing.host.side) == 0


SEEN_MEDIA_JS = """() => {
  window.__media = [];
  window.__said = [];
  window.samtale.socket.on("hearing:media", (m) => window.__media.push(m.state));
  const line = document.getElementById("net-status");
  new MutationObserver(() => { if (!line.hidden) { window.__said.push(line.textContent); } })
    .observe(line, {attributes: true, childList: true, characterData: true, subtree: true});
}"""


def test_the_call_comes_back_after_janus_restarts(hearing: HearingRoom,
                                                  janus: JanusProcess) -> None:
    hearing.everyone_decodes_everyone()
    for party in hearing.parties:
        party.side.page.evaluate(SEEN_MEDIA_JS)
    janus.restart()  # SIGKILL, then the same port and secrets: every room and handle is gone
    for party in hearing.parties:
        party.wait("() => window.__media.includes('reconnecting')")
        said = party.side.page.evaluate("() => window.__said")
        assert any("Reconnecting…" in text for text in said), (party.name, said)
    # The portal recreates the room and everyone's place; the browsers publish again.
    for party in hearing.parties:
        party.wait("() => window.__media.includes('ready') &&"
                   " window.samtale.hearing.status === 'ok'", timeout=30_000)
    hearing.everyone_decodes_everyone(timeout=40_000)
    for party in hearing.parties:
        assert party.side.page.evaluate("() => window.samtale.stage") == "call"
        assert party.side.page.is_hidden("#net-status")


def test_a_hearing_without_a_media_server_says_how_to_install_it(sides: Sides) -> None:
    """The module's other portal has no Janus configured."""
    live = sides.live
    consult = live.book_consult(live.create_host(), ["Nora None"], title="No media server",
                                kind=Kind.HEARING, policy=RecordingPolicy.OFF)
    host = sides.host(consult)
    host.page.goto(consult.call_url)
    host.stage("check")
    host.wait("() => !document.getElementById('hearing-unavailable').hidden")
    text = host.page.inner_text("#hearing-unavailable")
    assert "media server is not running" in text and "apt-get install janus" in text, text
    assert host.page.is_disabled("#join")


def test_a_guest_leaves_and_the_host_ends_the_hearing(hearing: HearingRoom) -> None:
    """The consult's Leave and End for everyone, in a hearing: last, it ends the module's call."""
    leaver = hearing.parties[4]
    leaver.side.page.click("#leave")
    leaver.side.page.click("#leave-confirm-yes")
    leaver.side.stage("left")
    assert leaver.side.page.evaluate("() => window.samtale.hearing.publishPc") is None
    stayed = [p for p in hearing.parties if p is not leaver]
    for party in stayed:  # its tile goes, and its streams with the next offer
        others = [i for i in hearing.others(party) if i != leaver.participant_id]
        party.wait(RECEIVES_JS, arg=others)
        party.wait("(id) => !document.querySelector(`[data-peer-tile=\"${id}\"]`)",
                   arg=leaver.participant_id)
    hearing.host.side.page.click("#end-call")
    hearing.host.side.page.click("#end-confirm-yes")
    for party in stayed:
        party.side.stage("ended")
        assert party.side.page.evaluate(
            "() => [window.samtale.hearing.publishPc, window.samtale.hearing.subscribePc]"
        ) == [None, None]
