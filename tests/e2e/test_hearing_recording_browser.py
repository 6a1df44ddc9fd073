"""Recording a hearing with real Chromium: a judge (a 1280x720 camera, so three simulcast
layers) and a party (320x240, one layer) join a hearing through Janus, each acknowledging the
court's notice on the device check; the judge records from the page; the recorder process
(`flask --app app recorder run`) has Janus forward each of them (the judge's best simulcast
layer) and seals the recording, which verifies; the export holds both participants' frames,
counted by ffprobe against what each browser reports sent (getStats). No browser opens a
connection to a recorder in a call through Janus."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_call import Side, device_check_passes
from hearing_browsers import LARGE, SMALL, HearingRoom, Party, open_court_panel, start_hearing
from janus import JanusProcess
from live import LivePortal, running
from recorder_process import RecorderProcess
from recording_peers import STORED_SHARE, export, wait_status
from sqlalchemy import select
from support import audit_events

from portal.extensions import db
from portal.models import (
    Kind,
    ParticipantRole,
    RecordingPolicy,
    RecordingStatus,
    RecordingTrack,
    Representation,
)
from portal.recording import archive
from portal.recording.forwarded import KEYFRAME_INTERVAL

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc, pytest.mark.slow]

RECORD_S = 5.0
CAMERA_FPS = SMALL[2]  # the fake cameras of hearing_browsers (LARGE too)

# What the page's send-only connection to Janus has sent: video frames per simulcast layer
# (rid), audio packets (one 20 ms Opus frame each).
SENT_JS = """async () => {
  const pc = window.samtale.hearing.publishPc;
  const out = {audio: 0, video: {}};
  if (!pc) { return out; }
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "outbound-rtp") { return; }
    if (s.kind === "audio") { out.audio += s.packetsSent || 0; }
    else { out.video[s.rid || "-"] = s.framesSent || 0; }
  });
  return out;
}"""


@pytest.fixture(scope="module")
def recorded_portal(request: pytest.FixtureRequest, sqlite_template: Path,
                    janus: JanusProcess,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    env = {**janus.portal_env(), "PORTAL_JANUS_RETRY_SECONDS": "1"}
    with running(request, sqlite_template, tmp_path_factory.mktemp("recorded-hearing"),
                 grace_seconds=15, env=env) as live:
        yield live
        live.close_clients()


def acknowledge_notice(side: Side) -> None:
    """The court's notice on the device check; Join waits for its tick."""
    side.stage("check")
    side.page.wait_for_selector("#notice", state="visible")
    assert "recorded by order of the court" in side.page.inner_text("#notice")
    side.page.wait_for_function("() => window.samtale.state.welcome !== null")
    assert side.page.is_disabled("#join"), "Join must wait for the notice to be acknowledged"
    side.page.check("#notice-ack")
    side.wait("() => !document.getElementById('join').disabled")


def enter(room: HearingRoom, party: Party, *, host: bool) -> None:
    page = party.side.page
    page.goto(party.url)
    party.side.stage("check")
    page.check("#declaration-ack")  # "I will not record or photograph this hearing"
    acknowledge_notice(party.side)
    device_check_passes(party.side)
    page.click("#join")
    if host:
        party.side.stage("call")
        party.participant_id = party.side.self_id()
        return
    party.side.stage("lobby")
    room.host.side.page.click(f'[data-action=admit][data-participant="{party.participant_id}"]')
    party.side.stage("call")


def sent(party: Party) -> dict[str, Any]:
    return dict(party.side.page.evaluate(SENT_JS))


def frames(found: dict[str, Any]) -> int:
    """Video frames of the best-sent layer: the one the recorder follows."""
    return max(found["video"].values(), default=0)


def least_layer(since: dict[str, Any], until: dict[str, Any]) -> int:
    """The video frames of the simulcast layer that sent least between two counts (of the
    layers sending at the second)."""
    sent_by = {rid: n - since["video"].get(rid, 0) for rid, n in until["video"].items() if n}
    return min(sent_by.values(), default=0)


def tracks(live: LivePortal, recording_id: str) -> list[int]:
    with live.app.app_context():
        found = [t.participant_id for t in db.session.scalars(select(RecordingTrack).where(
            RecordingTrack.recording_id == recording_id))]
        db.session.rollback()
        return found


def test_a_hearing_recorded_from_chromium_verifies_with_each_participants_frames(
        chromium: Any, playwright_instance: Any,
        recorded_portal: LivePortal, tmp_path: Path) -> None:
    live = recorded_portal
    recorder = RecorderProcess(live, tmp_path / "recorder.log").ready()
    consult = live.book_consult(live.create_host(), ["Gil Guest"], title="Recorded hearing",
                                kind=Kind.HEARING, policy=RecordingPolicy.NOTICE)
    room = HearingRoom(chromium, playwright_instance, live, consult)
    with _reported(room, recorder):
        judge = room._open("host", consult.call_url, phone=False, camera=LARGE, host=True)
        enter(room, judge, host=True)
        party = room._open("Gil Guest", consult.guest.url, phone=False, camera=SMALL)
        party.participant_id = consult.guest.participant_id
        enter(room, party, host=False)
        start_hearing(judge.side.page)  # in session: the hearing receives (and records) itself
        room.everyone_decodes_everyone()
        assert len(sent(judge)["video"]) == 3, f"the judge's camera is not simulcast: {sent(judge)}"

        before = {p.name: sent(p) for p in room.parties}
        page = judge.side.page
        page.click("#record")
        page.wait_for_selector("#record-confirm", state="visible")
        page.click("#record-confirm-yes")
        for p in room.parties:  # by order of the court: nobody is asked
            p.wait("() => document.body.dataset.recording === 'recording'")
            assert p.side.page.is_hidden("#consent-dialog")
        recording_id = str(page.evaluate("() => window.samtale.recording.id"))
        deadline = time.monotonic() + 60
        while len(tracks(live, recording_id)) < 2:
            assert time.monotonic() < deadline, recorder.output()
            time.sleep(0.1)
        forwarded = {p.name: sent(p) for p in room.parties}
        time.sleep(RECORD_S)
        for p in room.parties:  # no second connection, to any recorder, from a hearing's page
            assert p.side.page.evaluate("() => window.samtale.recorder") is None
        at_stop = {p.name: sent(p) for p in room.parties}
        page.click("#record")  # now "Stop recording"
        wait_status(live, recording_id, RecordingStatus.COMPLETE, timeout=60)
        for p in room.parties:
            p.wait("() => document.body.dataset.recording === 'complete'")
        after = {p.name: sent(p) for p in room.parties}

        _duration, streams = export(live, recording_id, tmp_path / "hearing.mkv")
        names = {"host": live.participants(consult.appointment_id)[0].display_name,
                 "Gil Guest": "Gil Guest"}
        for p in room.parties:
            mine = {s["codec_type"]: s for s in streams
                    if s.get("tags", {}).get("title", "").startswith(f"{names[p.name]} (")}
            assert {k: s["codec_name"] for k, s in mine.items()} == {"video": "vp8",
                                                                      "audio": "opus"}, streams
            video, audio = (int(mine[k]["nb_read_frames"]) for k in ("video", "audio"))
            # A forward stores nothing before its first keyframe, which its PLI asks for
            # (forwarded.KEYFRAME_INTERVAL): up to a second of the camera's frames. It follows
            # the best layer Janus has, and a browser short of CPU turns its top layer on late
            # (or off): the bound is what the layer that sent least sent meanwhile.
            least_v = STORED_SHARE * (least_layer(forwarded[p.name], at_stop[p.name])
                                      - CAMERA_FPS * KEYFRAME_INTERVAL)
            most_v = frames(after[p.name]) - frames(before[p.name])
            assert least_v <= video <= most_v, (p.name, video, forwarded, at_stop, after)
            least_a = STORED_SHARE * (at_stop[p.name]["audio"] - forwarded[p.name]["audio"])
            most_a = after[p.name]["audio"] - before[p.name]["audio"]
            assert least_a <= audio <= most_a, (p.name, audio, forwarded, at_stop, after)
            sys.stderr.write(f"\n{p.name}: {video} frames of video stored "
                             f"({mine['video'].get('width')}x{mine['video'].get('height')}), "
                             f"{audio} of audio\n")
        assert recorder.stop() == 0


def test_a_recorded_hearing_with_a_break_in_a_private_room_says_so_in_its_manifest(
        chromium: Any, playwright_instance: Any,
        recorded_portal: LivePortal, tmp_path: Path) -> None:
    """The court's course in real browsers with the record running: the judge starts the
    hearing and records it; at a break counsel takes the party aside; the judge recalls them
    and resumes. The record holds the hearing, not the break nor the private room: the signed
    manifest says when and why each was absent, it verifies, and each step is audited."""
    live = recorded_portal
    recorder = RecorderProcess(live, tmp_path / "recorder.log").ready()
    consult = live.book_consult(
        live.create_host(), [("Pia Party", ParticipantRole.PARTY),
                             ("Cole Counsel", ParticipantRole.COUNSEL)],
        title="R v Record", kind=Kind.HEARING, policy=RecordingPolicy.NOTICE)
    party_invite, counsel_invite = consult.guests
    with live.app.app_context():  # counsel represents the party
        db.session.add(Representation(counsel_id=counsel_invite.participant_id,
                                      party_id=party_invite.participant_id))
        db.session.commit()
    room = HearingRoom(chromium, playwright_instance, live, consult)
    with _reported(room, recorder):
        judge = room._open("host", consult.call_url, phone=False, camera=SMALL, host=True)
        enter(room, judge, host=True)
        people = {"judge": judge}
        for name, invite in (("party", party_invite), ("counsel", counsel_invite)):
            people[name] = room._open(invite.name, invite.url, phone=False, camera=SMALL)
            people[name].participant_id = invite.participant_id
            enter(room, people[name], host=False)
        page = judge.side.page
        start_hearing(page)
        room.everyone_decodes_everyone()
        page.click("#record")
        page.wait_for_selector("#record-confirm", state="visible")
        page.click("#record-confirm-yes")
        for p in room.parties:  # by order of the court: nobody is asked
            p.wait("() => document.body.dataset.recording === 'recording'")
        recording_id = str(page.evaluate("() => window.samtale.recording.id"))
        _wait_tracks(live, recording_id, 3, recorder)
        time.sleep(2)

        open_court_panel(page)
        page.click("[data-court-action=pause]")
        people["party"].wait("() => document.body.dataset.courtStage === 'paused'")
        counsel = people["counsel"].side.page
        open_court_panel(counsel)
        counsel.click("#counsel-open")
        for name in ("counsel", "party"):
            people[name].wait("() => document.body.dataset.place === 'consultation'")
        time.sleep(2)
        page.click("[data-court-action=recall]")
        for name in ("counsel", "party"):
            people[name].wait("() => document.body.dataset.place === 'hearing'")
        page.click("[data-court-action=resume]")
        people["party"].wait("() => document.body.dataset.courtStage === 'in_session'")
        _wait_tracks(live, recording_id, 6, recorder)  # each forwarded again after the break
        time.sleep(2)
        page.click("#record")  # now "Stop recording"
        wait_status(live, recording_id, RecordingStatus.COMPLETE, timeout=60)

        verified = live.flask("recordings", "verify", recording_id)
        assert verified.returncode == 0, f"{verified.stdout}\n{verified.stderr}"
        with live.app.app_context():
            signed = (archive.directory(recording_id) / "manifest.json").read_text()
        absences = json.loads(signed)["manifest"]["absences"]
        reasons = {name: {(a["media"], a["reason"]) for a in absences
                          if a["participant"] == p.participant_id}
                   for name, p in people.items()}
        for name in people:  # the break is not in the record, and the record says so
            assert {("audio", "not_in_session"), ("video", "not_in_session")} <= reasons[name]
        for name in ("counsel", "party"):  # nor is the private room
            assert {("audio", "consultation"), ("video", "consultation")} <= reasons[name]
        assert not any(r == "consultation" for _m, r in reasons["judge"])
        actions = [e.action for e in audit_events(live.app)]
        for step in ("hearing.started", "hearing.paused", "consultation.opened",
                     "consultation.recalled", "hearing.resumed"):
            assert step in actions, (step, actions)
        assert recorder.stop() == 0


@contextlib.contextmanager
def _reported(room: HearingRoom, recorder: RecorderProcess) -> Iterator[None]:
    """On a failure the recorder's log and each page's report; always no page errors."""
    try:
        yield
    except BaseException:
        sys.stderr.write(f"\n----- recorder -----\n{recorder.output()[-6000:]}\n")
        for p in room.parties:
            sys.stderr.write(f"\n----- {p.name} -----\n{p.report()}\n")
        raise
    finally:
        recorder.stop()
        try:
            assert not room.errors(), f"the pages reported errors: {room.errors()}"
        finally:
            room.close()


def _wait_tracks(live: LivePortal, recording_id: str, count: int,
                 recorder: RecorderProcess) -> None:
    deadline = time.monotonic() + 60
    while len(tracks(live, recording_id)) < count:
        assert time.monotonic() < deadline, (tracks(live, recording_id), recorder.output())
        time.sleep(0.1)
