"""End to end: consented recording in real headless Chromium (a desktop host, a "Pixel 7"
guest, fake camera and microphone) against a real portal whose recorder is the server's aiortc
endpoint, with its own recordings directory and keys.

The host asks, the guest answers in the consent prompt, both see the indicator, both browsers
publish to the recorder (getStats: packets sent), and the stored recording exports, through
`flask recordings export`, to a Matroska file with both participants' audio and video (ffprobe
counts the frames) that `flask recordings verify` accepts. Withdrawing stops it at once, a "no"
stores nothing, and a guest cannot fetch recordings. (A hearing's notice and recording go through
Janus: test_hearing_recording_browser.py.) Chromium, ffprobe or a working recorder missing:
these tests fail, never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_call import (
    Call,
    Sides,
    device_check_passes,
    remote_video_plays,
)
from live import Consult, LivePortal
from sqlalchemy import select

from portal.extensions import db
from portal.models import Recording, RecordingPolicy, RecordingTrack

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.webrtc]

FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"
#: Stopping seals every track and signs the manifest: allow for 2 busy cores.
SEAL_S = 30.0
#: How long the test records before stopping, in seconds.
RECORD_S = 5.0
#: Of the frames (video) and packets (audio: one 20 ms Opus frame each) a browser sent to the
#: recorder before Stop, at least this share must be in the file. It may lose: what was on
#: its way at Stop, the picture until the keyframe its PLI asks for after a lost packet on a
#: busy machine, and the moment the phone switches camera.
MIN_FRAME_SHARE = 0.8

# The recorder's peer connection on the page (record.js): state and packets sent per kind.
OUTBOUND_JS = """async () => {
  const r = window.samtale.recorder;
  if (!r) { return null; }
  const out = {id: r.id, state: r.pc.connectionState, audio: 0, video: 0, framesSent: 0};
  (await r.pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp") {
      out[s.kind] += s.packetsSent || 0;
      if (s.kind === "video") { out.framesSent += s.framesSent || 0; }
    }
  });
  return out;
}"""
# At one moment, the video this page sends to the call (its first peer) and to the recorder:
# size, target rate and frames sent so far.
SENT_TO_BOTH_JS = """async () => {
  const video = async (pc) => { let found = null; (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      found = {pixels: (s.frameWidth || 0) * (s.frameHeight || 0),
               size: `${s.frameWidth}x${s.frameHeight}`, target: s.targetBitrate || 0,
               frames: s.framesSent || 0};
    } }); return found; };
  const call = [...window.samtale.peers.values()][0];
  const r = window.samtale.recorder;
  return {at: performance.now() / 1000, call: await video(call), rec: r ? await video(r.pc) : null};
}"""
# The recorder's video sender carries the page's current, live camera track (not `old`).
SENDS_CURRENT_CAMERA = """(old) => {
  const track = window.samtale.media.videoTrack;
  const sender = window.samtale.recorder.pc.getSenders()
    .find((s) => s.track && s.track.kind === "video");
  return !!track && track.id !== old && !!sender && sender.track === track &&
    track.readyState === "live";
}"""
# Each recording player: wait for its metadata, seek to the middle, report where it landed.
PLAY_AND_SEEK = """async () => Promise.all([...document.querySelectorAll("figure.track video")]
  .map((video) => new Promise((resolve) => {
    const fail = setTimeout(() => resolve({duration: video.duration, seeked: false}), 20000);
    const seek = () => {
      video.addEventListener("seeked", () => {
        clearTimeout(fail);
        resolve({duration: video.duration, seeked: true, at: video.currentTime});
      }, {once: true});
      video.currentTime = video.duration / 2;
    };
    if (video.readyState >= 1) { seek(); } else {
      video.addEventListener("loadedmetadata", seek, {once: true});
    }
  })))"""
INDICATOR_SHOWN = "() => !document.getElementById('rec-indicator').hidden"
INDICATOR_HIDDEN = "() => document.getElementById('rec-indicator').hidden"


# --- the portal's recordings, as stored -----------------------------------------------------------

@dataclass
class RecordingPortal:
    """The module's live portal (its own recordings folder, keyring and signing key)."""

    live: LivePortal

    @property
    def recordings_dir(self) -> Path:
        return self.live.recordings_dir

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.live.flask(*args)

    def recording(self, recording_id: str) -> dict[str, Any]:
        """The recording's row and its tracks, as the server stored them."""
        with self.live.app.app_context():
            row = db.session.get(Recording, recording_id)
            assert row is not None, f"no recording {recording_id} in the database"
            tracks = db.session.scalars(select(RecordingTrack).where(
                RecordingTrack.recording_id == recording_id)).all()
            seen = {"status": row.status.value, "reason": row.stop_reason,
                    "tracks": [{"id": t.id, "participant": t.participant_id,
                                "video_frames": t.video_frames, "audio_frames": t.audio_frames}
                               for t in tracks]}
            db.session.rollback()
            return seen

    def wait_status(self, recording_id: str, status: str,
                    timeout: float = SEAL_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = self.recording(recording_id)
        while seen["status"] != status and time.monotonic() < deadline:
            time.sleep(0.25)
            seen = self.recording(recording_id)
        assert seen["status"] == status, (
            f"recording {recording_id} is {seen} after {timeout} s, not {status}")
        return seen


@pytest.fixture
def recording_portal(live_portal_module: LivePortal) -> RecordingPortal:
    return RecordingPortal(live_portal_module)


# --- steps ---------------------------------------------------------------------------------------

def into_call(sides: Sides, policy: RecordingPolicy = RecordingPolicy.CONSENT,
              guests: tuple[str, ...] = ("Pat Phone",)) -> Call:
    """Host on the call page, the first guest admitted; both see the other's picture. (A
    hearing, recorded by notice, goes through Janus: test_hearing_recording_browser.py.)"""
    live = sides.live
    consult: Consult = live.book_consult(live.create_host(), list(guests), policy=policy)
    host = sides.host(consult)
    host.page.goto(consult.call_url)
    guest = sides.guest()
    guest.page.goto(consult.guest.url)
    for side in (host, guest):
        device_check_passes(side)
        assert side.page.is_hidden("#notice")
    host.page.click("#join")
    host.stage("call")
    guest.page.click("#join")
    guest.stage("lobby")
    host.page.click(f'[data-action=admit][data-participant="{consult.guest.participant_id}"]')
    guest.stage("call")
    call = Call(live, consult, host, guest)
    for side in (host, guest):
        remote_video_plays(side)
        assert side.page.evaluate("() => document.body.dataset.recording") == "none"
        assert side.page.is_hidden("#rec-indicator")
    return call


def host_asks(call: Call) -> str:
    """The host presses Record, reads the wording and asks everyone; returns the recording id."""
    host = call.host
    host.page.wait_for_selector("#record", state="visible")
    host.page.click("#record")
    host.page.wait_for_selector("#record-confirm", state="visible")
    wording = host.page.inner_text("#record-confirm")
    assert "sound and picture of everyone" in wording, wording
    assert "kept for" in wording, wording
    host.page.click("#record-confirm-yes")
    host.wait("() => !!(window.samtale.recording && window.samtale.recording.id)")
    return str(host.page.evaluate("() => window.samtale.recording.id"))


def guest_is_asked(call: Call, recording_id: str) -> None:
    guest = call.guest
    guest.page.wait_for_selector("#consent-dialog", state="visible")
    assert guest.page.evaluate("() => window.samtale.recording.id") == recording_id
    text = guest.page.inner_text("#consent-dialog")
    assert "asks to record this call" in text and "withdraw" in text.lower(), text
    # Everyone sees who is still asked: the host's status line names the guest.
    for side in (call.host, guest):
        side.wait("() => document.body.dataset.recording === 'requested'")
    call.host.page.wait_for_selector("#rec-status", state="visible")
    assert "Pat Phone" in call.host.page.inner_text("#rec-status")
    assert call.host.page.is_hidden("#rec-indicator")


def both_recorded(call: Call) -> None:
    """The indicator on both screens, and both browsers' media flowing to the recorder."""
    for side in (call.host, call.guest):
        side.wait(INDICATOR_SHOWN)
        assert "Recording" in side.page.inner_text("#rec-indicator")
        assert side.page.evaluate("() => document.body.dataset.recording") == "recording"
        side.wait("() => !!window.samtale.recorder && "
                  "window.samtale.recorder.pc.connectionState === 'connected'")
    first = {s.name: s.page.evaluate(OUTBOUND_JS) for s in (call.host, call.guest)}
    time.sleep(1.5)
    second = {s.name: s.page.evaluate(OUTBOUND_JS) for s in (call.host, call.guest)}
    for name in ("host", "guest"):
        a, b = first[name], second[name]
        assert a and b, (name, a, b)
        assert b["audio"] > a["audio"], f"{name}: no audio sent to the recorder: {a} -> {b}"
        assert b["video"] > a["video"], f"{name}: no video sent to the recorder: {a} -> {b}"


def start_recording(call: Call) -> str:
    recording_id = host_asks(call)
    guest_is_asked(call, recording_id)
    call.guest.page.click("#consent-yes")
    both_recorded(call)
    return recording_id


def stop_recording(call: Call, portal: RecordingPortal, recording_id: str) -> dict[str, Any]:
    call.host.page.click("#record")  # now "Stop recording"
    for side in (call.host, call.guest):
        side.wait(INDICATOR_HIDDEN, timeout=5000)
    seen = portal.wait_status(recording_id, "complete")
    for side in (call.host, call.guest):
        side.wait("() => document.body.dataset.recording === 'complete'")
        assert side.page.evaluate("() => window.samtale.recorder") is None
    return seen


def as_sharp_as_the_call(name: str, began: dict[str, Any], ended: dict[str, Any]) -> float:
    """What one browser sent to the recorder is as good as what it sent to the call over the
    same seconds: frame rate and, at the last moment, picture size (one step of the encoder's
    ladder apart, as the two adapt at different moments) and target rate (at least half: the
    recorder's link follows the call's ramp a few seconds behind; its own estimate once held
    it to a tenth). Returns the call's frame rate."""
    seconds = ended["at"] - began["at"]
    fps = {link: (ended[link]["frames"] - began[link]["frames"]) / seconds
           for link in ("call", "rec")}
    last = f"{name} over {seconds:.1f} s: {fps}; at the end {ended}"
    assert fps["rec"] >= MIN_FRAME_SHARE * fps["call"], last
    assert ended["rec"]["target"] >= 0.5 * ended["call"]["target"], last
    assert ended["rec"]["pixels"] >= ended["call"]["pixels"] * (540 * 960) / (720 * 1280), last
    return fps["call"]


def probe(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(  # noqa: S603
        [FFPROBE, "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"ffprobe failed on {path}: {done.stderr}"
    streams: list[dict[str, Any]] = json.loads(done.stdout)["streams"]
    return streams


# --- the tests -----------------------------------------------------------------------------------

@pytest.mark.slow  # about 20 s: records 5 s, seals, exports, plays
def test_both_consent_and_the_recording_exports_with_both_participants(
        sides: Sides, recording_portal: RecordingPortal, tmp_path: Path) -> None:
    call = into_call(sides)
    fps = float(call.guest.page.evaluate(
        "() => window.samtale.media.videoTrack.getSettings().frameRate"))
    asked = time.monotonic()
    recording_id = start_recording(call)
    since = time.monotonic()
    began = {side.name: side.page.evaluate(SENT_TO_BOTH_JS) for side in (call.host, call.guest)}
    # The guest, recorded, may withdraw; the host stops instead.
    assert call.guest.page.is_visible("#consent-withdraw")
    assert call.host.page.inner_text("#record").strip() == "Stop recording"
    # The phone switches camera: the recorder gets the new camera's picture too.
    old_track = call.guest.page.evaluate("() => window.samtale.media.videoTrack.id")
    call.guest.page.click("#switch-camera")
    call.guest.wait(SENDS_CURRENT_CAMERA, arg=old_track)
    time.sleep(max(0.0, RECORD_S - (time.monotonic() - since)))
    recorded_s = time.monotonic() - since
    # The recorder may take media from the moment the guest agreed, before both indicators
    # and the first checks of what was sent (start_recording): the longest it can hold.
    longest_s = time.monotonic() - asked
    # What each browser had sent to the recorder just before Stop; after it, the recorder's
    # peer connection is gone, so the frames sent until the server stopped are bounded by
    # the time it took at the camera's rate (audio: 50 packets a second).
    sent = {side.name: side.page.evaluate(OUTBOUND_JS) for side in (call.host, call.guest)}
    ended = {side.name: side.page.evaluate(SENT_TO_BOTH_JS) for side in (call.host, call.guest)}
    call_fps = {name: as_sharp_as_the_call(name, began[name], ended[name]) for name in ended}
    stop_asked = time.monotonic()
    seen = stop_recording(call, recording_portal, recording_id)
    slack_s = time.monotonic() - stop_asked
    assert seen["reason"] == "stopped_by_host", seen
    people = {t["participant"] for t in seen["tracks"]}
    assert people == {call.host.self_id(), call.guest.self_id()}, seen

    out = tmp_path / "export.mkv"
    exported = recording_portal.flask("recordings", "export", recording_id, str(out))
    assert exported.returncode == 0, f"export failed:\n{exported.stdout}\n{exported.stderr}"
    streams = probe(out)
    kinds = sorted(s["codec_type"] for s in streams)
    assert kinds == ["audio", "audio", "video", "video"], streams
    # The export does not say whose stream is whose: the bounds hold for either browser.
    bounds = {"video": ("framesSent", fps), "audio": ("audio", 50.0)}
    for stream in streams:
        frames = int(stream.get("nb_read_frames", 0))
        kind = stream["codec_type"]
        key, rate = bounds[kind]
        least = MIN_FRAME_SHARE * min(out[key] for out in sent.values())
        most = max(out[key] for out in sent.values()) + rate * slack_s + 5
        label = f"{kind} {stream.get('tags', {})}: {frames} frames"
        assert frames > 0, label
        assert least <= frames <= most, f"{label}; expected {least:.0f}..{most:.0f} " \
                                        f"(sent before Stop: {sent}; stop took {slack_s:.1f} s)"
        if kind == "video":  # stored at the rate the call ran at
            stored_fps = frames / recorded_s
            assert stored_fps >= MIN_FRAME_SHARE * min(call_fps.values()), (
                f"{label}: {stored_fps:.1f} fps stored over {recorded_s:.1f} s, the call "
                f"ran at {call_fps}")

    verified = recording_portal.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, f"verify failed:\n{verified.stdout}\n{verified.stderr}"

    # The host plays it on the recordings page: it has a length, and the player can seek.
    page = call.host.page
    page.goto(f"{recording_portal.live.base_url}/appointments/{call.consult.appointment_id}"
              f"/recordings")
    played = page.evaluate(PLAY_AND_SEEK)
    assert len(played) == 2, played  # one player per participant
    for one in played:
        # A real length (not Infinity): at least what was recorded after the indicator came
        # on, at most the time since the host asked.
        assert 0.9 * recorded_s <= one["duration"] <= longest_s + 1, (one, recorded_s, longest_s)
        assert one["seeked"] and abs(one["at"] - one["duration"] / 2) < 1.0, one


def test_withdrawal_stops_the_recording_at_once(sides: Sides,
                                                recording_portal: RecordingPortal) -> None:
    call = into_call(sides)
    recording_id = start_recording(call)
    call.guest.page.evaluate("() => { window.recorderPc = window.samtale.recorder.pc; }")
    call.guest.page.click("#consent-withdraw")
    # No frame more from the guest: its senders to the recorder go silent there and then...
    call.guest.wait("() => window.recorderPc.signalingState === 'closed' || "
                    "window.recorderPc.getSenders().every((s) => s.track === null)", timeout=1000)
    for side in (call.host, call.guest):
        side.wait(INDICATOR_HIDDEN, timeout=5000)
    # ...and the connection closes once the portal has the withdrawal (closing first would
    # read as a lost connection).
    call.guest.wait("() => window.samtale.recorder === null", timeout=5000)
    call.host.wait("() => /withdrew/.test(document.getElementById('rec-live').textContent)")
    seen = recording_portal.wait_status(recording_id, "complete")
    assert seen["reason"] == "withdrawn", seen
    for side in (call.host, call.guest):
        side.wait("() => document.body.dataset.recording === 'complete'")
        assert side.page.is_hidden("#rec-indicator")
    assert call.guest.page.is_hidden("#consent-withdraw")
    # The call itself goes on.
    for side in (call.host, call.guest):
        assert side.page.evaluate("() => window.samtale.stage") == "call"


def test_a_no_records_nothing(sides: Sides, recording_portal: RecordingPortal) -> None:
    call = into_call(sides)
    recording_id = host_asks(call)
    guest_is_asked(call, recording_id)
    call.guest.page.click("#consent-no")
    for side in (call.host, call.guest):
        side.wait("() => document.body.dataset.recording === 'declined'")
        assert side.page.is_hidden("#rec-indicator")
        assert side.page.evaluate("() => window.samtale.recorder") is None
    call.guest.page.wait_for_selector("#consent-dialog", state="hidden")
    call.host.wait("() => /Nothing is recorded/.test("
                   "document.getElementById('rec-live').textContent)")
    seen = recording_portal.recording(recording_id)
    assert seen["status"] == "declined", seen
    assert seen["tracks"] == [], seen
    assert not (recording_portal.recordings_dir / recording_id).exists()
    # The host may ask again later.
    call.host.wait("() => !document.getElementById('record').disabled")
    assert call.host.page.inner_text("#record").strip() == "Record"


def test_a_guest_cannot_fetch_recordings(sides: Sides,
                                         recording_portal: RecordingPortal) -> None:
    call = into_call(sides)
    recording_id = start_recording(call)
    time.sleep(1.5)
    seen = stop_recording(call, recording_portal, recording_id)
    assert seen["tracks"], seen
    base = call.live.base_url
    urls = [f"{base}/recordings/{recording_id}/tracks/{t['id']}" for t in seen["tracks"]]
    urls.append(f"{base}/appointments/{call.consult.appointment_id}/recordings")
    # A redirect (to sign in) is not followed: its answer would be the sign-in page's 200.
    fetch = ("async (url) => { const r = await fetch(url, {credentials: 'include', "
             "redirect: 'manual'}); return r.type === 'opaqueredirect' ? 'login' : r.status; }")
    for url in urls:
        assert call.guest.page.evaluate(fetch, url) == "login", url
    # The same addresses work for the host: the guest's refusal is not a wrong address.
    for url in urls:
        assert call.host.page.evaluate(fetch, url) == 200, url


def test_someone_joining_pauses_the_recording_until_they_agree(
        sides: Sides, recording_portal: RecordingPortal) -> None:
    call = into_call(sides, guests=("Pat Phone", "Sam Second"))
    recording_id = start_recording(call)
    for side in (call.host, call.guest):
        side.page.evaluate("() => { window.samtale.recorder.pc.__kept = true; }")
    second = call.consult.guests[1]
    late = sides.guest()
    late.name = "late guest"
    late.page.goto(second.url)
    device_check_passes(late)
    late.page.click("#join")
    late.stage("lobby")
    call.host.page.click(f'[data-action=admit][data-participant="{second.participant_id}"]')
    late.stage("call")
    # Nobody is recorded while the newcomer has not answered, and everyone sees why.
    for side in (call.host, call.guest):
        side.wait("() => document.body.dataset.recording === 'paused'")
        side.wait(INDICATOR_SHOWN)
        assert "waiting for Sam Second" in side.page.inner_text("#rec-indicator")
    late.page.wait_for_selector("#consent-dialog", state="visible")
    assert late.page.evaluate("() => window.samtale.recorder") is None
    late.page.click("#consent-yes")
    for side in (call.host, call.guest, late):
        side.wait("() => document.body.dataset.recording === 'recording'")
        side.wait(INDICATOR_SHOWN)
    # The newcomer publishes now; the others kept their connections to the recorder.
    late.wait("() => !!window.samtale.recorder && "
              "window.samtale.recorder.pc.connectionState === 'connected'")
    first = late.page.evaluate(OUTBOUND_JS)
    time.sleep(1.5)
    after = late.page.evaluate(OUTBOUND_JS)
    assert after["video"] > first["video"] and after["audio"] > first["audio"], (first, after)
    for side in (call.host, call.guest):
        assert side.page.evaluate("() => window.samtale.recorder.pc.__kept") is True
    seen = stop_recording(call, recording_portal, recording_id)
    assert {t["participant"] for t in seen["tracks"]} == {
        call.host.self_id(), call.guest.self_id(), second.participant_id}, seen


def test_no_recording_when_the_policy_is_off(sides: Sides) -> None:
    live = sides.live
    consult = live.book_consult(live.create_host(), ["Olga Off"], policy=RecordingPolicy.OFF)
    host = sides.host(consult)
    host.page.goto(consult.call_url)
    device_check_passes(host)
    assert host.page.is_hidden("#notice")
    host.page.click("#join")
    host.stage("call")
    host.wait("() => window.samtale.state.inCall")
    assert host.page.is_hidden("#record")
    assert host.page.evaluate("() => window.samtale.recording.status") == "none"
    # Asking anyway (a forged event) is refused, and the page says so.
    host.page.evaluate("() => window.samtale.socket.emit('record:start', {version: 'x'})")
    host.page.wait_for_selector("#call-alert", state="visible")
    assert host.page.evaluate("() => document.body.dataset.recording") == "none"
