"""End to end: a hearing's court procedure (issue 12) in real headless Chromium through a real
Janus, against a live portal: a judge and a clerk signed in, counsel, a party on a "Pixel 7",
a witness with an interpreter, and an observer by the observer link. The court office books the
hearing through `/api/v1` with these roles (counsel represents the party; the witness is
screened from the party) and the tests share it, in order: nobody receives anybody before the
start and the observer never touches a camera; counsel takes the party aside and nobody else
receives them; the judge's start (confirmed) brings them back and takes in everyone but the
witness, the interpreter and the observer, who now receives the hearing; the witness is called
with the interpreter, and the party's getStats has the witness's audio but no video; a locked
mute and the bench's messages; a break, a private room and the bench room; the witness is
dismissed. Every page must report no errors; ICE stays on loopback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from browser_call import PHONE, Sides, device_check_passes
from hearing_browsers import (
    CAMERA_JS,
    SMALL,
    Party,
    declare,
    open_court_panel,
    start_hearing,
)
from janus import JanusProcess
from live import Host, LivePortal, running
from netns import outside_loopback
from playwright.sync_api import Browser, Playwright

from portal.accounts import services as accounts
from portal.extensions import db
from portal.models import Participant, ParticipantRole, User

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc]

R = ParticipantRole
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
#: The witness on the narrowest phone width we hold to, in English (the party's Pixel 7,
#: 412 px, is in Norwegian).
NARROW = {"viewport": {"width": 360, "height": 740}, "has_touch": True}

# Before the page's scripts: every getUserMedia call is counted (an observer's page must make
# none), and kept across reloads of the tab.
COUNT_GUM_JS = """(() => {
  const media = navigator.mediaDevices;
  const original = media.getUserMedia.bind(media);
  window.__gum = Number(sessionStorage.getItem("gum") || 0);
  media.getUserMedia = (constraints) => {
    window.__gum += 1;
    sessionStorage.setItem("gum", String(window.__gum));
    return original(constraints);
  };
})();"""

# What this tab's receive-only connection carries: participant id -> kinds (sorted).
STREAMS_JS = """() => {
  const out = {};
  for (const s of window.samtale.hearing.streams.values()) {
    (out[s.participantId] ||= []).push(s.kind);
  }
  for (const k of Object.keys(out)) { out[k].sort(); }
  return out;
}"""

# Exactly these participants (and each with both kinds unless listed in audioOnly).
RECEIVES_JS = """({ids, audioOnly}) => {
  const got = {};
  for (const s of window.samtale.hearing.streams.values()) {
    (got[s.participantId] ||= []).push(s.kind);
  }
  const want = {};
  for (const id of ids) { want[id] = audioOnly.includes(id) ? ["audio"] : ["audio", "video"]; }
  const norm = (o) => JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k].sort()]));
  return norm(got) === norm(want);
}"""

# The party's receive statistics of one participant: audio packets, video (null: no inbound
# video stream at all).
INBOUND_OF_JS = """async (id) => {
  const s = await window.samtale.hearing.stats();
  const p = s.participants[id] || {};
  return {audio: (p.audio || {}).packetsReceived || 0, video: p.video || null};
}"""

TILES_JS = "() => [...document.querySelectorAll('[data-peer-tile]')].map((e) =>" \
    " Number(e.dataset.peerTile)).sort((a, b) => a - b)"


@dataclass
class Court:
    """The hearing's tabs by name, their participant ids, and the booking."""

    live: LivePortal
    sides: Sides
    appointment_id: int
    people: dict[str, Party] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Party:
        return self.people[name]

    def place(self, name: str) -> str:
        return str(self[name].side.page.evaluate("() => document.body.dataset.place || ''"))

    def wait_place(self, name: str, place: str) -> None:
        self[name].wait("(p) => document.body.dataset.place === p", arg=place)

    def receives(self, name: str, who: list[str], audio_only: tuple[str, ...] = ()) -> None:
        """Exactly these participants' streams in that tab's subscription."""
        self[name].wait(RECEIVES_JS, arg={"ids": [self.ids[w] for w in who],
                                          "audioOnly": [self.ids[w] for w in audio_only]})

    def decodes(self, name: str, who: list[str]) -> None:
        self[name].decodes([self.ids[w] for w in who], timeout=30_000)


def _staff(live: LivePortal, name: str) -> Host:
    return live.create_host(name=name)


def _book(live: LivePortal, judge: Host, clerk: Host) -> tuple[int, dict[str, int],
                                                                dict[str, str], str]:
    """The court office books the hearing through the API, as a case system would; returns
    its id, participant ids and invite tokens by name, and the observer link's token."""
    office = live.create_host(name="Court Office")
    with live.app.app_context():
        user = db.session.get(User, office.id)
        assert user is not None
        _row, token = accounts.issue_api_token(user, "Case system")
        db.session.commit()
    body = {
        "kind": "hearing", "title": "R v Court", "duration_minutes": 60,
        "starts_at": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
        "recording_policy": "off", "observer_link": True, "participants": [
            {"ref": "judge", "role": "judge", "staff_email": judge.email},
            {"ref": "clerk", "role": "clerk", "staff_email": clerk.email},
            {"ref": "party", "role": "party", "display_name": "Pia Party"},
            {"ref": "counsel", "role": "counsel", "display_name": "Cole Counsel",
             "represents": ["party"]},
            {"ref": "witness", "role": "witness", "display_name": "Wanda Witness",
             "screened_from": ["party"]},
            {"ref": "interpreter", "role": "interpreter", "display_name": "Ivo Interpreter",
             "interprets_for": "witness", "language": "pl"}]}
    answer = requests.post(f"{live.base_url}/api/v1/appointments", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201, answer.text
    booked = answer.json()
    people = [p for p in booked["participants"] if p["ref"]]
    ids = {p["ref"]: p["id"] for p in people}
    tokens = {p["ref"]: p["invite_url"].rsplit("/", 1)[1] for p in people if p["invite_url"]}
    return booked["id"], ids, tokens, booked["observer_url"].rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def janus_portal(request: pytest.FixtureRequest, sqlite_template: Path, janus: JanusProcess,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    with running(request, sqlite_template, tmp_path_factory.mktemp("live-court"),
                 env=janus.portal_env()) as live:
        yield live
        live.close_clients()


@pytest.fixture(scope="module")
def court(request: pytest.FixtureRequest, chromium: Browser, playwright_instance: Playwright,
          janus_portal: LivePortal) -> Iterator[Court]:
    """Everyone through the device check (with the declaration) into the hearing's call, in
    its waiting room: nobody started it yet."""
    live = janus_portal
    judge, clerk = _staff(live, "Judge Jura"), _staff(live, "Clerk Clara")
    appointment_id, ids, tokens, observer_token = _book(live, judge, clerk)
    sides = Sides(chromium, playwright_instance, live)
    found = Court(live, sides, appointment_id, ids=dict(ids))
    failed_before = request.session.testsfailed

    def context(*, phone: bool = False, narrow: bool = False, staff: Host | None = None,
                observer: bool = False) -> Any:
        options = (dict(playwright_instance.devices[PHONE], locale="nb-NO") if phone
                   else dict(NARROW) if narrow else dict(DESKTOP))
        made = chromium.new_context(**options, permissions=[] if observer
                                    else ["camera", "microphone"])
        made.add_init_script(COUNT_GUM_JS)
        made.add_init_script(CAMERA_JS.replace("__SIZE__", repr(list(SMALL))))
        if staff is not None:
            made.add_cookies(live.playwright_cookies(staff))  # type: ignore[arg-type]
        return made

    def open_tab(name: str, url: str, made: Any) -> Party:
        side = sides.open(made, name)
        party = Party(side, made, url, participant_id=ids.get(name, 0))
        found.people[name] = party
        side.page.goto(url)
        return party

    try:
        call_url = f"{live.base_url}/appointments/{appointment_id}/call"
        for name, staff in (("judge", judge), ("clerk", clerk)):
            party = open_tab(name, call_url, context(staff=staff))
            declare(party.side)
            device_check_passes(party.side)
            party.side.page.click("#join")
            party.side.stage("call")
        clerk_page = found["clerk"].side.page
        for name in ("counsel", "party", "witness", "interpreter"):
            party = open_tab(name, f"{live.base_url}/j/{tokens[name]}",
                             context(phone=name == "party", narrow=name == "witness"))
            declare(party.side)
            device_check_passes(party.side)
            party.side.page.click("#join")
            party.side.stage("lobby")
            clerk_page.click(f'[data-action=admit][data-participant="{ids[name]}"]')
            party.side.stage("call")
        # The observer: a name on the observer link, then their own link; no camera, no mic.
        side = sides.open(context(observer=True), "observer")
        side.page.goto(f"{live.base_url}/o/{observer_token}")
        side.page.fill("#display_name", "Olga Observer")
        side.page.click("form[action*='/o/'] button[type=submit]")
        side.stage("check")
        observer = Party(side, side.page.context, side.page.url)
        found.people["observer"] = observer
        declare(side)
        side.wait("() => !document.getElementById('join').disabled")
        assert side.page.get_attribute("#check-media", "data-state") == "ok"
        side.page.click("#speaker-test")
        side.page.click("#join")
        side.stage("lobby")
        observer.participant_id = found.ids["observer"] = side.self_id()
        clerk_page.click(f'[data-action=admit][data-participant="{observer.participant_id}"]')
        side.stage("call")
        yield found
    finally:
        if request.session.testsfailed > failed_before:
            for party in found.people.values():
                sys.stderr.write(f"\n----- {party.name} -----\n{party.report()}\n")
        try:
            errors = [e for s in sides.sides for e in s.errors]
            assert not errors, f"the pages reported errors: {errors}"
            for s in sides.sides:
                outside = outside_loopback(s.gathered + s.used + s.remote)
                assert not outside, f"{s.name}: ICE outside loopback: {outside}"
        finally:
            sides.close()


EVERYONE = ("judge", "clerk", "counsel", "party", "witness", "interpreter", "observer")
IN_HEARING = ["judge", "clerk", "counsel", "party"]


def _participants(court: Court) -> list[Participant]:
    return court.live.participants(court.appointment_id)


# --- the tests --------------------------------------------------------------------------------

def test_before_the_start_nobody_receives_and_the_observer_sends_nothing(court: Court) -> None:
    # Everyone confirmed the declaration before joining: the server kept each one's time.
    declared = {p.id: p.declared_at for p in _participants(court)}
    assert all(declared[court.ids[name]] is not None for name in EVERYONE), declared
    for name in EVERYONE:
        court.receives(name, [])
    assert court.place("witness") == "waiting" and court.place("observer") == "observer"
    assert "court will call you" in court["witness"].side.page.inner_text("#court-place")
    # The interpreter waits with the witness they interpret for.
    said = court["interpreter"].side.page.inner_text("#court-place")
    assert "Wanda Witness" in said and "call you both" in said, said
    # The observer: never asked for a camera or a microphone, sends nothing, writes nothing.
    page = court["observer"].side.page
    assert page.evaluate("() => window.__gum") == 0
    assert page.evaluate("() => window.samtale.hearing.publishPc") is None
    assert page.is_hidden("#mute") and page.is_hidden("#camera") and page.is_hidden("#chat-form")
    # The hosts see who is where; the observer only as a count.
    board = court["clerk"].side.page
    court["clerk"].wait("() => document.getElementById('court-observers').textContent"
                        ".includes('1')")
    rows = board.eval_on_selector_all("[data-court-row]", "els => els.map((e) =>"
                                      " [Number(e.dataset.courtRow), e.dataset.state])")
    assert court.ids["observer"] not in [r[0] for r in rows]
    assert all(state == "in_call" for rid, state in rows if rid in court.ids.values()), rows
    # Only the hosts have the board, only counsel the private room.
    for name in EVERYONE:
        shown = court[name].side.page.is_visible("#court-toggle")
        assert shown == (name in ("judge", "clerk", "counsel")), name


def test_counsel_takes_the_party_aside_and_nobody_else_receives_them(court: Court) -> None:
    page = court["counsel"].side.page
    open_court_panel(page)
    page.click("#counsel-open")
    for name in ("counsel", "party"):
        court.wait_place(name, "consultation")
    phone = court["party"].side.page  # in Norwegian
    assert phone.is_visible("#court-private")
    assert "tas ikke opp" in phone.inner_text("#court-private").lower()
    assert "Cole Counsel" in phone.inner_text("#court-opened")
    court.receives("counsel", ["party"])
    court.receives("party", ["counsel"])
    court.decodes("party", ["counsel"])
    court.decodes("counsel", ["party"])
    for name in ("judge", "clerk", "witness", "interpreter", "observer"):
        court.receives(name, [])
    # The hosts see that a room is in use, not what is said in it.
    court["judge"].wait("() => !document.getElementById('court-rooms').hidden")
    assert court["judge"].side.page.is_visible("[data-court-action=recall]")


def test_the_start_takes_in_the_right_people_and_the_observer_receives(court: Court) -> None:
    start_hearing(court["judge"].side.page)
    for name in IN_HEARING:
        court.wait_place(name, "hearing")  # counsel and the party first back from their room
    for name in ("witness", "interpreter"):
        court.wait_place(name, "waiting")
    for name in IN_HEARING:
        court.receives(name, [n for n in IN_HEARING if n != name])
    court.receives("observer", IN_HEARING)
    for name in ("witness", "interpreter"):
        court.receives(name, [])
    for name in [*IN_HEARING, "observer"]:
        court.decodes(name, [n for n in IN_HEARING if n != name])
    assert court["party"].side.page.is_hidden("#court-private")


def test_the_witness_is_called_with_the_interpreter_and_screened_from_the_party(
        court: Court) -> None:
    page = court["clerk"].side.page
    open_court_panel(page)
    page.click(f'[data-court-action=call][data-participant="{court.ids["witness"]}"]')
    for name in ("witness", "interpreter"):
        court.wait_place(name, "hearing")
    present = [*IN_HEARING, "witness", "interpreter"]
    court.receives("party", [n for n in present if n != "party"], audio_only=("witness",))
    court.receives("judge", [n for n in present if n != "judge"])
    court.decodes("judge", ["witness", "interpreter"])
    court.decodes("witness", ["judge", "party"])
    # The party's browser: the witness's sound arrives, their picture never does; a neutral
    # tile with the name stands for them.
    party = court["party"]
    party.wait(f"async () => ({INBOUND_OF_JS})({court.ids['witness']})"
               ".then((s) => s.audio > 20)")
    seen = party.side.page.evaluate(INBOUND_OF_JS, court.ids["witness"])
    assert seen["video"] is None, f"the party received the witness's video: {seen}"
    tile = f'[data-peer-tile="{court.ids["witness"]}"]'
    assert party.side.page.get_attribute(tile, "data-feed") == "audio"
    assert "Wanda Witness" in party.side.page.inner_text(tile)
    assert party.side.page.evaluate(f"() => getComputedStyle(document.querySelector("
                                    f"'{tile} .initials')).display") == "flex"


# Nothing of the call page sticks out sideways: the page, the controls, the place banner.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  if (document.documentElement.scrollWidth > width) { out.push("page"); }
  for (const el of document.querySelectorAll(".controls, .ctl, #court-place, #court-place *")) {
    if (el.offsetParent === null) { continue; }
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.right > width + 1) { out.push(el.id || el.className); }
  }
  const bar = document.querySelector(".controls");
  if (bar.scrollWidth > bar.clientWidth + 1) { out.push("controls scroll"); }
  return out;
}"""


def test_the_phones_hold_their_layout_in_both_languages(court: Court) -> None:
    """The party's Pixel 7 in Norwegian (412 px), the witness at 360 px in English."""
    for name, lang in (("party", "nb"), ("witness", "en")):
        page = court[name].side.page
        assert page.evaluate("() => document.documentElement.lang").startswith(lang), name
        assert page.evaluate(OVERFLOW_JS) == [], name
        assert page.is_visible("#court-place"), name


def test_a_locked_mute_says_why_and_bench_messages_stay_with_the_hosts(court: Court) -> None:
    clerk, party = court["clerk"].side.page, court["party"].side.page
    clerk.click(f'[data-court-action=mute_lock][data-participant="{court.ids["party"]}"]')
    court["party"].wait("() => document.getElementById('mute').disabled")
    assert party.is_visible("#mute-locked")
    assert party.get_attribute("#mute", "data-on") == "false"
    clerk.click(f'[data-court-action=unlock][data-participant="{court.ids["party"]}"]')
    court["party"].wait("() => !document.getElementById('mute').disabled")
    assert party.is_hidden("#mute-locked")
    judge = court["judge"].side.page
    open_court_panel(judge)
    judge.fill("#bench-input", "Five minutes, then the witness.")
    judge.press("#bench-input", "Enter")
    court["clerk"].wait("() => document.getElementById('bench-log').textContent"
                        ".includes('Five minutes')")
    for name in ("counsel", "party", "witness", "observer"):
        assert "Five minutes" not in court[name].side.page.content(), name


def test_a_break_with_a_private_room_ends_with_the_recall(court: Court) -> None:
    judge = court["judge"].side.page
    judge.click("[data-court-action=pause]")
    court["party"].wait("() => document.body.dataset.courtStage === 'paused'")
    counsel = court["counsel"].side.page
    open_court_panel(counsel)
    counsel.click("#counsel-open")
    for name in ("counsel", "party"):
        court.wait_place(name, "consultation")
    judge.click("[data-court-action=recall]")
    for name in ("counsel", "party"):
        court.wait_place(name, "hearing")
    # The clerk opens the bench room for the judge (the panel would go too): the judge's page
    # says it is private and not recorded; the break goes on, nobody receives anybody.
    clerk = court["clerk"].side.page
    open_court_panel(clerk)
    clerk.click("[data-court-action=bench]")
    court.wait_place("judge", "consultation")
    court["judge"].wait("() => !document.getElementById('court-private').hidden")
    assert "Bench room" in judge.inner_text("#court-place")
    for name in EVERYONE:
        court.receives(name, [])
    court["judge"].wait("() => !!document.querySelector('[data-court-action=recall]')")
    judge.click("[data-court-action=recall]")
    court.wait_place("judge", "hearing")
    judge.click("[data-court-action=resume]")
    court["party"].wait("() => document.body.dataset.courtStage === 'in_session'")
    court.receives("party", [n for n in [*IN_HEARING, "witness", "interpreter"]
                             if n != "party"], audio_only=("witness",))


def test_the_witness_is_dismissed_with_the_interpreter(court: Court) -> None:
    page = court["judge"].side.page
    page.click(f'[data-court-action=dismiss][data-participant="{court.ids["witness"]}"]')
    for name in ("witness", "interpreter"):
        court.wait_place(name, "waiting")
        court.receives(name, [])
    for name in IN_HEARING:
        court.receives(name, [n for n in IN_HEARING if n != name])
    # The observer was in nobody's tiles at any point, and never asked for a device.
    for name in EVERYONE:
        tiles = court[name].side.page.evaluate(TILES_JS)
        assert court.ids["observer"] not in tiles, (name, tiles)
    assert court["observer"].side.page.evaluate("() => window.__gum") == 0


def test_a_removal_is_confirmed_and_ends_the_call_for_them(court: Court) -> None:
    page = court["clerk"].side.page
    interpreter = court.ids["interpreter"]
    page.click(f'[data-court-action=remove][data-participant="{interpreter}"]')
    page.wait_for_selector("#court-confirm[open]")
    assert page.get_attribute("#court-confirm-yes", "class") == "danger"
    assert "Ivo Interpreter" in page.inner_text("#court-confirm-text")
    page.click("#court-confirm-no")  # thought better of it: nothing happens
    assert court.place("interpreter") == "waiting"
    page.click(f'[data-court-action=remove][data-participant="{interpreter}"]')
    page.click("#court-confirm-yes")
    court["interpreter"].side.stage("ended")
    assert "removed" in court["interpreter"].side.page.inner_text("#ended-reason")
    court["clerk"].wait(f"() => document.querySelector('[data-court-row=\"{interpreter}\"]')"
                        ".dataset.state === 'removed'")
