"""End to end: a host on a desktop and a guest on an emulated phone (Playwright's "Pixel 7") in
real headless Chromium with fake camera and microphone, against a real portal (tests/live.py).

They go through the device check, the waiting room and admission into the call, and media must
flow both ways: the remote <video> has a picture whose time advances, and getStats shows video
frames decoded and audio packets received growing on both sides. Chromium must be at
/usr/bin/chromium (or $SAMTALE_CHROMIUM); if it cannot start, these tests fail, never skip.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_call import (
    Call,
    Sides,
    admit_from_call_page,
    device_check_passes,
    enter_call,
    lobby_rows,
    media_flows_both_ways,
    open_consult,
    remote_video_plays,
)

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc]


def assert_socket_names_call(side: Any, appointment_id: int) -> None:
    """Every socket request names the call: a proxy routes a call's sockets to one worker."""
    urls = side.page.evaluate("() => performance.getEntriesByType('resource')"
                              ".map(e => e.name).filter(n => n.includes('/socket.io/'))")
    assert urls and all(f"call={appointment_id}&" in url for url in urls), urls


# --- the tests --------------------------------------------------------------------------------

def test_admitted_guest_and_host_see_and_hear_each_other(sides: Sides) -> None:
    call = enter_call(sides)
    media_flows_both_ways(call)
    for side in (call.host, call.guest):
        assert_socket_names_call(side, call.consult.appointment_id)
    # Who is who: the tiles carry the other side's participant id.
    host_id, guest_id = call.host.self_id(), call.guest.self_id()
    assert guest_id == call.consult.guest.participant_id
    assert call.host.page.get_attribute("video.remote", "data-peer") == str(guest_id)
    assert call.guest.page.get_attribute("video.remote", "data-peer") == str(host_id)
    # No offer collision: the polite side (lower id) answered the other's offer, never offered.
    polite = call.host if host_id < guest_id else call.guest
    assert polite.page.evaluate(OWN_OFFERS_JS) == 0, polite.diagnose()
    # The quality indicator fills in from getStats every 2 s.
    for side in (call.host, call.guest):
        side.wait("() => ['good', 'fair', 'poor'].includes("
                  "document.getElementById('quality').dataset.level)", timeout=6000)
        assert "ms" in (side.page.text_content("#quality") or "")
    # Nobody waits any more once admitted.
    assert lobby_rows(call.host) == 0


def test_denied_guest_is_told_so(sides: Sides) -> None:
    live = sides.live
    consult = live.book_consult(live.create_host(), ["Dee Nied"])
    # The host decides from the appointment page's live waiting room (waiting-room.js).
    host = sides.host(consult)
    host.page.goto(f"{live.base_url}/appointments/{consult.appointment_id}")
    host.wait("() => document.getElementById('waiting-room').dataset.live === 'true'")
    assert_socket_names_call(host, consult.appointment_id)  # waiting-room.js's socket
    guest = sides.guest()
    guest.page.goto(consult.guest.url)
    device_check_passes(guest)
    guest.page.click("#join")
    guest.stage("lobby")
    assert "has been told you are here" in (guest.page.text_content("#lobby-text") or "")
    deny = f'[data-action=deny][data-participant="{consult.guest.participant_id}"]'
    host.page.click(deny)
    guest.stage("denied")
    assert guest.page.is_visible("text=You were not let in")
    host.wait("() => document.querySelectorAll('#lobby-list li').length === 0")
    # The camera is let go.
    assert guest.page.evaluate("() => window.samtale.media.stream.getTracks().length") == 0


def test_chat_both_ways(sides: Sides) -> None:
    call = enter_call(sides)
    host_id, guest_id = call.host.self_id(), call.guest.self_id()
    # On the phone the chat is a drawer behind a button.
    call.guest.page.click("#chat-toggle")
    call.guest.page.fill("#chat-input", "Hello from the phone <b>not bold</b>")
    call.guest.page.press("#chat-input", "Enter")
    call.host.page.wait_for_selector(f'#chat-log li[data-from="{guest_id}"]')
    text = call.host.page.text_content(f'#chat-log li[data-from="{guest_id}"] .text')
    assert text == "Hello from the phone <b>not bold</b>"
    assert call.host.page.query_selector("#chat-log b") is None  # text, never HTML
    # On the desktop the chat is open beside the video.
    call.host.page.fill("#chat-input", "Hello from the desk")
    call.host.page.click("#chat-form button[type=submit]")
    call.guest.page.wait_for_selector(f'#chat-log li[data-from="{host_id}"]')
    assert call.guest.page.text_content(
        f'#chat-log li[data-from="{host_id}"] .text') == "Hello from the desk"
    # Each side sees both messages, once, in order.
    for side in (call.host, call.guest):
        side.wait("() => document.querySelectorAll('#chat-log li').length === 2")
        order = side.page.eval_on_selector_all("#chat-log li",
                                               "els => els.map(e => e.dataset.from)")
        assert order == [str(guest_id), str(host_id)]


def test_host_ends_the_call_for_everyone(sides: Sides) -> None:
    call = enter_call(sides)
    remote_video_plays(call.guest)
    # The host is asked first, in the page's dialog; saying no changes nothing.
    call.host.page.click("#end-call")
    call.host.page.click("#end-confirm-no")
    call.host.page.wait_for_timeout(300)
    assert call.guest.page.evaluate("() => window.samtale.stage") == "call"
    assert call.host.page.evaluate("() => document.activeElement.id") == "end-call"
    call.host.page.click("#end-call")
    assert "everyone" in call.host.page.inner_text("#end-confirm")
    call.host.page.click("#end-confirm-yes")
    call.guest.stage("ended")
    call.host.stage("ended")
    assert call.guest.page.is_visible("text=The call has ended")
    for side in (call.host, call.guest):
        assert side.page.evaluate("() => window.samtale.peers.size") == 0
    assert call.live.get_appointment(call.consult.appointment_id).status.value == "ended"


def test_reloaded_guest_is_back_in_the_call_without_admission(sides: Sides) -> None:
    call = enter_call(sides)
    media_flows_both_ways(call)
    old_pc_marker = "() => { const pc = [...window.samtale.peers.values()][0];" \
                    " pc.__marked = true; return true; }"
    call.host.page.evaluate(old_pc_marker)

    call.guest.page.reload()
    # Straight back into the call: no device check to pass, no waiting room, no admit click.
    call.guest.stage("call")
    assert lobby_rows(call.host) == 0
    # The host dropped the old peer connection and negotiated a new one.
    call.host.wait("() => { const pcs = [...window.samtale.peers.values()];"
                   " return pcs.length === 1 && !pcs[0].__marked; }")
    media_flows_both_ways(call)
    assert lobby_rows(call.host) == 0
    assert call.guest.page.evaluate("() => window.samtale.stage") == "call"


def test_dropped_connection_resumes_and_restarts_ice(sides: Sides) -> None:
    """A network blip (not a reload): the socket reconnects, the browser keeps its peer
    connection, sends call:join {resume: true} and restarts ICE; nobody admits anyone."""
    call = enter_call(sides)
    media_flows_both_ways(call)
    ufrag_js = "() => { const pc = [...window.samtale.peers.values()][0];" \
               " return (/a=ice-ufrag:(\\S+)/.exec(pc.localDescription.sdp) || [])[1]; }"
    call.guest.page.evaluate("() => { [...window.samtale.peers.values()][0].__kept = true; }")
    before = call.guest.page.evaluate(ufrag_js)
    assert before

    call.guest.page.evaluate("() => window.samtale.socket.io.engine.close()")
    call.guest.wait("() => window.samtale.socket.connected && window.samtale.state.inCall")
    # The same peer connection, with fresh ICE credentials after the restart.
    call.guest.wait("(old) => { const pc = [...window.samtale.peers.values()][0];"
                    " const m = /a=ice-ufrag:(\\S+)/.exec(pc.localDescription.sdp);"
                    " return pc.__kept === true && !!m && m[1] !== old; }", arg=before)
    call.host.wait("() => document.querySelector('[data-peer-tile]').dataset.reconnecting"
                   " === 'false'")
    assert call.guest.page.evaluate("() => window.samtale.stage") == "call"
    assert lobby_rows(call.host) == 0
    media_flows_both_ways(call)


# How often this tab's call connection made an offer of its own (from PC_TIMELINE_JS).
OWN_OFFERS_JS = """() => {
  const n = [...window.samtale.peers.values()][0].__n;
  const offered = ` pc${n} signalingstatechange have-local-offer`;
  return window.__pcLog.filter((line) => line.includes(offered)).length;
}"""

# Every relayed ICE candidate is dropped until this page restarts ICE (then they go through).
LOSE_CANDIDATES_JS = """() => {
  const link = window.samtale.PeerLink.prototype;
  const handle = link.handle, restartIce = link.restartIce;
  window.__iceRestarts = 0;
  link.handle = function (message) {
    if (message.candidate !== undefined && window.__iceRestarts === 0) {
      return Promise.resolve();
    }
    return handle.call(this, message);
  };
  link.restartIce = function (...args) {
    window.__iceRestarts += 1;
    return restartIce.apply(this, args);
  };
}"""


def test_lost_candidates_do_not_leave_the_call_silent(sides: Sides) -> None:
    """Both browsers negotiate but every candidate is lost: neither side's ICE ever starts.
    The stall watchdog restarts ICE with fresh candidates and the call comes up."""
    consult, host, guest = open_consult(sides)
    for side in (host, guest):
        side.page.evaluate(LOSE_CANDIDATES_JS)
    call = Call(sides.live, consult, host, guest)
    admit_from_call_page(call)
    connected = "() => [...window.samtale.peers.values()].some((pc) =>" \
                " pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed')"
    for side in (host, guest):
        side.wait(connected, timeout=30_000)
    # One restart is enough: the other side learns the restarted side's address from its checks.
    assert sum(side.page.evaluate("() => window.__iceRestarts") for side in (host, guest)) >= 1
    media_flows_both_ways(call)


def test_guest_switches_language_without_losing_the_page(sides: Sides) -> None:
    """The guest page's address is a secret that no ?next= link may carry: the switch sets the
    language in the background and loads the same page again, in Norwegian."""
    live = sides.live
    consult = live.book_consult(live.create_host(), ["Kari Telefon"])
    guest = sides.guest()
    guest.page.goto(consult.guest.url)
    guest.stage("check")
    assert consult.guest.token not in guest.page.inner_html("header")
    guest.page.click("header a[lang=nb]")
    guest.page.wait_for_function("() => document.documentElement.lang === 'nb'")
    assert guest.page.url == consult.guest.url
    guest.stage("check")
    assert "Bli med" in guest.page.inner_text("#join")
