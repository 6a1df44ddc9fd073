"""Hearings through Janus: what N = 2, 4, 8, 15 people in one hearing cost and how it feels,
against a baseline measured in the same run.

A real Janus (the portal's locked-down configuration, tests/janus.py), the portal as it ships
(`python app.py`, tests/live.py) driving it over the hearing:* Socket.IO protocol, the recorder
process (`flask --app app recorder run`) and one headless Chromium, all inside a network
namespace this run makes (tests/netns.py: only `lo`, plus the veth end 127.0.0.2 Janus needs),
so media stays on loopback; every page's ICE addresses are checked at the end.

The participants are Chromium contexts in one Chromium process (bench/hearing_parties.py),
joined as people join (the court's notice, the device check, the waiting room, Admit), each
with Chromium's fake camera at 320x240@15 (one simulcast layer) and its beeping microphone;
the host's camera is 1280x720@15 (three simulcast layers), as a judge's would be. Chromium and
not aiortc peers: the issue's questions (simulcast, layer choice, decoded frames, a phone's
getStats) are about browsers, and aiortc peers, decoding in Python, are slower still (eight in
one process decoded under a frame a second per feed). Even so, eight pages fill two cores and
fifteen cannot keep up there: see docs/performance.md, "Hearings (Janus)".

One hearing grows through the sizes. At each size N, once every page decodes every other
participant, for --seconds:
- Janus's CPU (user + system of all its threads, /proc/PID/stat) per forwarded stream,
  forwarded streams = N*(N-1)*2 (each of N-1 subscribers gets each publisher's audio and
  video), with the ratio of its CPU and of the streams to the smallest size's; and, since
  browsers on 2 shared cores send fewer frames as N grows, also per packet: Janus's forwarded
  packets are the namespace's UDP datagrams (/proc/thread-self/net/snmp) less the RTP packets
  the pages report sent, and "at full rate" = CPU a packet times the packets a stream carried at
  the smallest size, where every browser keeps up;
- each subscriber's decoded fps of each other participant's video (getStats framesDecoded),
  against the camera's 15 fps and against the smallest size;
- the last joiner's time from its publish (its send-only offer) to its first decoded remote
  video frame; at N = 8 also --repeats rejoins of that tab (reloaded: back in the call within
  the grace period, a fresh publication and subscription), p50 over all; with its parts: Janus's
  answer to the publish, and the subscription offer, both from the publish on.
At 10 participants (a window is measured there too) the tenth is a "Pixel 7": everyone but the
host mutes, the phone shows the host as the speaker (middle layer, 640x360) and the others in
its strip; its receive-only connection's downlink (getStats bytesReceived) over 5 s.
At N = 8 (--record-at) the host records (by order of the court): the recorder process's CPU
per recorded participant, against the same process idle before the hearing.
Baselines: Janus and the recorder idle (portal connected, no hearing), and the smallest size.
The machine has 2 cores shared with other work: the load average and how busy both cores were
are printed with each window.

Run (as root, for the namespace): .venv/bin/python bench/hearing.py [--sizes 2,4,8,15]
[--seconds 8] [--repeats 5] [--limit 900]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for helpers in ("tests", "tests/e2e"):  # the WebRTC tests' namespace, Janus, portal, browser
    sys.path.insert(0, str(ROOT / helpers))

import netns  # noqa: E402
from browser_call import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from hearing_browsers import LARGE, SMALL  # noqa: E402
from janus import missing_janus, running_janus  # noqa: E402
from live import CHEAP_ARGON2, LivePortal, start_live_portal  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.hearing_parties import Hearing, Person  # noqa: E402
from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Kind, Recording, RecordingPolicy, RecordingStatus, RecordingTrack  # noqa: E402

CAMERA_FPS = SMALL[2]
PHONE_AT = 10
PHONE_DOWNLINK_GOAL = 1_500_000
FIRST_FRAME_GOAL = 1.0
PER_STREAM_GOAL = 0.15
SETTLE = 2.0
GRACE_SECONDS = 30
#: The portal's default allows 12 guests an appointment (PORTAL_MAX_GUESTS): 15 people need 14.
MAX_GUESTS = "15"


# --- what the machine says ------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of pid, threads that ended included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def udp_out() -> int:
    """UDP datagrams sent in this thread's network namespace so far (this run's media)."""
    lines = [line.split() for line in Path("/proc/thread-self/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("OutDatagrams")])


def machine() -> tuple[int, int]:
    """(busy, total) jiffies of all cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def kind(pid: int, cmdline: list[str]) -> str:
    """What one of this run's processes is, for the CPU breakdown."""
    if len(cmdline) == 1:  # Chromium's children rewrite theirs into one string
        cmdline = cmdline[0].split(" ")
    program = Path(cmdline[0]).name if cmdline else "?"
    chromium = next((a[7:] for a in cmdline if a.startswith("--type=")), "browser")
    if "chrom" in program:
        return {"renderer": "pages", "gpu-process": "chromium gpu"}.get(
            chromium, f"chromium {chromium}")
    if pid == os.getpid():
        return "bench"
    if "app.py" in " ".join(cmdline):
        return "portal"
    return {"janus": "janus", "node": "playwright"}.get(
        program, "recorder" if "recorder" in cmdline else program)


def ours() -> dict[int, tuple[str, float]]:
    """(kind, CPU seconds) of every process in this thread's network namespace: this run's."""
    mine = os.readlink("/proc/thread-self/ns/net")
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/net") != mine:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            found[int(entry.name)] = (kind(int(entry.name), [a.decode() for a in argv if a]),
                                      cpu_s(int(entry.name)))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone meanwhile
    return found


class Window:
    """CPU of some processes (% of one core), of all of this run's processes by kind, and of
    the machine, over a stretch of time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def __enter__(self) -> Window:
        self.began = time.monotonic()
        self.cpu0 = {k: cpu_s(p) for k, p in self.pids.items()}
        self.ours0 = ours()
        self.machine0 = machine()
        self.udp0 = udp_out()
        return self

    def __exit__(self, *_: Any) -> None:
        wall = time.monotonic() - self.began
        self.udp_pps = (udp_out() - self.udp0) / wall
        self.percent = {k: 100 * (cpu_s(p) - self.cpu0[k]) / wall
                        for k, p in self.pids.items()}
        busy, total = machine()
        self.busy = 100 * (busy - self.machine0[0]) / max(1, total - self.machine0[1])
        self.load = os.getloadavg()[0]
        self.parts: dict[str, float] = {}
        for pid, (what, cpu) in ours().items():
            if pid in self.ours0:
                self.parts[what] = self.parts.get(what, 0.0) + \
                    100 * (cpu - self.ours0[pid][1]) / wall

    def breakdown(self) -> str:
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {v:.0f}" for k, v in parts if v >= 0.5)


# --- the set-up -------------------------------------------------------------------------------

def migrated(folder: Path) -> Path:
    path = folder / "template.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "SECRET_KEY": "bench",
                      "MFA_KEY": "bench", "RECORDINGS_DIR": str(folder / "recordings"),
                      "RECORDING_KEYS_DIR": str(folder), **CHEAP_ARGON2})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    app.extensions["recording"].shutdown()
    return path


def start_recorder(live: LivePortal, log: Path) -> subprocess.Popen[bytes]:
    """The recorder as operations.md runs it (its default poll interval), once it has started
    (its imports are no part of its idle cost)."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "flask", "--app", "app", "recorder", "run"], cwd=ROOT,
            env=live.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + 60
    while "recording hearings on" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the recorder did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


# --- measuring a size ---------------------------------------------------------------------------

def snapshot(people: list[Person]) -> dict[int, dict[str, Any]]:
    return {p.participant_id: p.stats() or {} for p in people}


def sent(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
         ) -> tuple[float, float]:
    """The publishers' mean camera frame rate actually sent (their best layer), and all their
    RTP packets a second; a page whose sending connection was renewed meanwhile counts none."""
    fps, pps = [], 0.0
    for k, a in before.items():
        b = after.get(k) or {}
        if not a or not b or b["at"] <= a["at"] or b["sent"] < a["sent"]:
            continue
        seconds = (b["at"] - a["at"]) / 1000
        fps.append((b["sent"] - a["sent"]) / seconds)
        pps += (b["packets"] - a["packets"]) / seconds
    return (statistics.fmean(fps) if fps else 0.0), pps


def decoded_fps(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
                ) -> dict[int, dict[int, float]]:
    """subscriber -> publisher -> decoded video fps, each page on its own clock."""
    out: dict[int, dict[int, float]] = {}
    for who, a in before.items():
        b = after.get(who) or {}
        seconds = (b.get("at", 0) - a.get("at", 0)) / 1000
        if seconds <= 0:
            out[who] = {}
            continue
        mine = {}
        for feed, now in (b.get("participants") or {}).items():
            was = (a.get("participants") or {}).get(feed, {})
            frames = (now.get("video") or {}).get("framesDecoded", 0) - \
                (was.get("video") or {}).get("framesDecoded", 0)
            # Fewer than before: the receiving connection was renewed meanwhile (-1: marked).
            mine[int(feed)] = frames / seconds if frames >= 0 else -1.0
        out[who] = mine
    return out


def measure(hearing: Hearing, janus_pid: int, seconds: float) -> dict[str, Any]:
    n = len(hearing.people)
    time.sleep(SETTLE)
    before = snapshot(hearing.people)
    with Window({"janus": janus_pid}) as window:
        time.sleep(seconds)
    after = snapshot(hearing.people)
    fps = decoded_fps(before, after)
    renewed = sum(1 for per in fps.values() for f in per.values() if f < 0)
    pairs = [max(f, 0.0) for per in fps.values() for f in per.values()]
    expected = n * (n - 1)
    sent_fps, published_pps = sent(before, after)
    # Janus sends what the browsers do not: the rest of the namespace's UDP datagrams.
    forwarded_pps = max(1.0, window.udp_pps - published_pps)
    return {"n": n, "streams": expected * 2, "janus": window.percent["janus"],
            "forwarded_pps": forwarded_pps, "renewed": renewed, "udp_pps": window.udp_pps,
            "us_per_packet": window.percent["janus"] / 100 * 1e6 / forwarded_pps,
            "parts": window.breakdown(), "sent_fps": sent_fps,
            "busy": window.busy, "load": window.load, "pairs": len(pairs),
            "expected_pairs": expected, "decoding": sum(1 for f in pairs if f >= 1.0),
            "fps_min": min(pairs, default=0.0), "fps_median": statistics.median(pairs or [0.0]),
            "fps_mean": statistics.fmean(pairs or [0.0]),
            "subscriber_min": min((statistics.fmean(max(f, 0.0) for f in per.values())
                                   if per else 0.0) for per in fps.values())}


def joined(person: Person, timeout: float = 30.0) -> dict[str, float]:
    """The joiner's publish to answer, to offer, to first remote frame (s); the frame is
    infinity when none came within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = person.timeline()
        if found is not None:
            return found
        time.sleep(0.05)
    return {"answer": float("nan"), "offer": float("nan"), "frame": float("inf")}


def median_of(joins: list[dict[str, float]], key: str) -> float:
    return statistics.median(j[key] for j in joins)


def show_joins(size: int, joins: list[dict[str, float]]) -> None:
    def each(key: str) -> str:
        return ", ".join(f"{j[key]:.2f}" for j in joins)

    print(f"  N={size}: last joiner, from its publish (s), over {len(joins)} join(s): answer "
          f"{each('answer')}; subscription offer {each('offer')}; first remote frame "
          f"{each('frame')}", flush=True)


def per_stream_nominal(found: dict[str, Any], base: dict[str, Any]) -> float:
    """Janus's % of a core per forwarded stream were every stream as full as at the smallest
    size (where the browsers keep up): its CPU a packet times the packets a stream had there."""
    return float(found["us_per_packet"] * base["forwarded_pps"] / base["streams"] / 1e4)


def show(found: dict[str, Any], base: dict[str, Any]) -> None:
    per_stream = found["janus"] / found["streams"]
    ratio = fps_ratio = ""
    if base is not found:
        ratio = (f" ({found['janus'] / base['janus']:.1f}x N={base['n']}'s CPU for "
                 f"{found['streams'] / base['streams']:.0f}x its streams)")
        fps_ratio = f" ({found['fps_mean'] / base['fps_mean']:.2f}x N={base['n']}'s)"
    print(f"N={found['n']:2d}: {found['streams']:3d} forwarded streams; Janus "
          f"{found['janus']:5.1f} % of a core = {per_stream:.3f} % per stream{ratio}; "
          f"last joiner's first remote frame (p50) {found['first_frame']:.2f} s", flush=True)
    print(f"      decoded fps (camera {CAMERA_FPS}, publishers sent {found['sent_fps']:.1f}): "
          f"mean {found['fps_mean']:.1f}{fps_ratio}, "
          f"median {found['fps_median']:.1f}, worst feed {found['fps_min']:.1f}, worst "
          f"subscriber's mean {found['subscriber_min']:.1f}; {found['decoding']}/"
          f"{found['expected_pairs']} subscriber-feed pairs decoding (>= 1 fps); both cores "
          f"{found['busy']:.0f} % busy, load {found['load']:.1f}", flush=True)
    nominal = base["forwarded_pps"] / base["streams"]
    renewed = f"; {found['renewed']} pairs' connections renewed" if found["renewed"] else ""
    print(f"      Janus forwarded {found['forwarded_pps']:.0f} packets/s "
          f"({found['forwarded_pps'] / found['streams']:.0f} a stream; {nominal:.0f} at "
          f"N={base['n']}, at full rate): {found['us_per_packet']:.1f} us of CPU a packet, so "
          f"{per_stream_nominal(found, base):.3f} % of a core per stream at full rate{renewed}",
          flush=True)
    print(f"      this run's CPU, % of a core: {found['parts']}", flush=True)


# --- the phone and the recorder -------------------------------------------------------------------

# The host's send-only connection: each simulcast layer's size (what Chromium sends depends on
# how busy the cores are: it scales down when encoding falls behind).
SENT_JS = """async () => {
  const out = {};
  const pc = window.samtale.hearing.publishPc;
  if (!pc) { return out; }
  (await pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out[s.rid || "-"] = `${s.frameWidth || 0}x${s.frameHeight || 0}`;
    }
  });
  return out;
}"""

LARGE_TILE_JS = """() => {
  const v = document.querySelector(".hearing-large video");
  const tile = document.querySelector(".hearing-large [data-peer-tile]");
  return tile && v ? {id: Number(tile.dataset.peerTile), width: v.videoWidth,
                      height: v.videoHeight} : null;
}"""


def phone_downlink(hearing: Hearing, phone: Person) -> dict[str, Any]:
    """Everyone but the host muted: the phone's speaker is the host (the middle layer of its
    720p camera); its whole downlink, and the speaker's and the strip's shares."""
    muted = [p for p in hearing.people if p is not hearing.host]
    for person in muted:
        person.page.click("#mute")
    try:
        phone.page.wait_for_function(
            "(id) => window.samtale.hearing.large === id", arg=hearing.host.participant_id,
            timeout=30_000)
        with contextlib.suppress(PlaywrightTimeout):  # what it shows is the result
            phone.page.wait_for_function(
                "() => { const v = document.querySelector('.hearing-large video');"
                " return !!v && v.videoWidth >= 640 && v.videoHeight >= 360; }",
                timeout=20_000)
        time.sleep(SETTLE)
        before = phone.stats() or {}
        bps = float(phone.evaluate("(ms) => window.samtale.hearing.downlink(ms)", 5000))
        after = phone.stats() or {}
        tile = phone.evaluate(LARGE_TILE_JS)
        layers = phone.evaluate("() => Object.fromEntries(window.samtale.hearing.layers)")
        sending = hearing.host.evaluate(SENT_JS)
    finally:
        for person in muted:
            person.page.click("#mute")
    seconds = (after["at"] - before["at"]) / 1000
    feeds = {}
    for feed, now in after["participants"].items():
        was = before["participants"].get(feed, {})
        feeds[int(feed)] = sum(8 * ((now.get(k) or {}).get("bytesReceived", 0)
                                    - (was.get(k) or {}).get("bytesReceived", 0))
                               for k in ("audio", "video")) / seconds
    host = hearing.host.participant_id
    strip = [v for k, v in feeds.items() if k != host]
    return {"bps": bps, "tile": tile, "layers": layers, "sending": sending,
            "speaker_bps": feeds.get(host, 0.0),
            "strip_bps_each": statistics.fmean(strip) if strip else 0.0, "strip": len(strip)}


def record(hearing: Hearing, live: LivePortal, recorder_pid: int, janus_pid: int,
           seconds: float) -> dict[str, Any]:
    """The host records the hearing; the recorder's CPU while it forwards everyone."""
    page = hearing.host.page
    page.click("#record")
    page.wait_for_selector("#record-confirm", state="visible")
    page.click("#record-confirm-yes")
    try:
        page.wait_for_function("() => document.body.dataset.recording === 'recording'",
                               timeout=60_000)
    except Exception as exc:
        state = page.evaluate("() => [document.body.dataset.recording, "
                              "(document.getElementById('call-alert') || {}).textContent]")
        raise RuntimeError(f"the recording did not start: {state}: {exc}") from None
    recording_id = str(page.evaluate("() => window.samtale.recording.id"))
    n = len(hearing.people)
    deadline = time.monotonic() + 60
    while tracks(live, recording_id) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {tracks(live, recording_id)} of {n} tracks recorded")
        time.sleep(0.2)
    time.sleep(SETTLE)
    with Window({"recorder": recorder_pid, "janus": janus_pid}) as window:
        time.sleep(seconds)
    page.click("#record")  # now "Stop recording"
    status = wait_recording(live, recording_id, {RecordingStatus.COMPLETE,
                                                 RecordingStatus.INCOMPLETE}, 60)
    return {"n": n, "recorder": window.percent["recorder"], "janus": window.percent["janus"],
            "busy": window.busy, "load": window.load, "status": status}


def tracks(live: LivePortal, recording_id: str) -> int:
    with live.app.app_context():
        count = db.session.scalar(select(func.count()).select_from(RecordingTrack).where(
            RecordingTrack.recording_id == recording_id))
        db.session.rollback()
        return int(count or 0)


def wait_recording(live: LivePortal, recording_id: str, wanted: set[RecordingStatus],
                   timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with live.app.app_context():
            row = db.session.get(Recording, recording_id)
            status = row.status if row else None
            db.session.rollback()
        if status in wanted or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.2)


# --- the run ---------------------------------------------------------------------------------

def grow(hearing: Hearing, guests: list[Any], size: int, batch: int
         ) -> tuple[Person, list[dict[str, float]]]:
    """The hearing grows to `size`: all but the last newcomer `batch` at a time, then the
    last one alone into a hearing where everyone decodes everyone: the last joiner."""
    began = time.monotonic()
    joining = guests[len(hearing.people) - 1:size - 1]
    specs = [(g, len(hearing.people) + i + 1 == PHONE_AT, SMALL) for i, g in enumerate(joining)]
    for start in range(0, len(specs) - 1, batch):
        hearing.admit(specs[start:min(start + batch, len(specs) - 1)])
    if len(specs) > 1:
        hearing.decoding()
    last = hearing.admit(specs[-1:])[0]
    joins = [joined(last)]
    late = hearing.decoding()
    print(f"  {size} in the call ({time.monotonic() - began:.0f} s to join and decode"
          f"{'; not decoding everyone within 60 s: ' + ', '.join(late) if late else ''})",
          flush=True)
    return last, joins


def show_phone(phone: dict[str, Any]) -> None:
    tile = phone["tile"] or {"width": 0, "height": 0}
    print(f"N={PHONE_AT}: the phone's downlink {phone['bps'] / 1e6:.2f} Mbit/s (speaker "
          f"{phone['speaker_bps'] / 1e3:.0f} kbit/s at {tile['width']}x{tile['height']}, each of "
          f"{phone['strip']} strip tiles {phone['strip_bps_each'] / 1e3:.0f} kbit/s; layers "
          f"asked {phone['layers']}; the host sends {phone['sending']})", flush=True)


def show_recorded(recorded: dict[str, Any], idle: float) -> None:
    n = recorded["n"]
    print(f"N={n:2d} recorded: recorder {recorded['recorder']:.1f} % of a core "
          f"({(recorded['recorder'] - idle) / n:.2f} % per recorded participant over its idle "
          f"{idle:.2f} %), Janus {recorded['janus']:.1f} % while forwarding to it; recording "
          f"{recorded['status']}; both cores {recorded['busy']:.0f} % busy, load "
          f"{recorded['load']:.1f}", flush=True)


def run(args: argparse.Namespace, browser: Any, playwright: Any, live: LivePortal,
        janus_pid: int, recorder_pid: int) -> None:
    sizes = sorted(set(args.sizes))
    largest = sizes[-1]
    record_at = args.record_at if args.record_at in sizes else largest
    with Window({"janus": janus_pid, "recorder": recorder_pid}) as idle:
        time.sleep(args.idle_seconds)
    print(f"baseline, no hearing: Janus {idle.percent['janus']:.2f} % of a core, recorder "
          f"{idle.percent['recorder']:.2f} %; both cores {idle.busy:.0f} % busy, load "
          f"{idle.load:.1f}", flush=True)
    consult = live.book_consult(live.create_host(),
                                [f"Party {i}" for i in range(1, max(largest, PHONE_AT))],
                                title="Bench hearing", kind=Kind.HEARING, minutes=60,
                                policy=RecordingPolicy.NOTICE)
    hearing = Hearing(browser, playwright, live, consult)
    guests = list(consult.guests)
    results: list[dict[str, Any]] = []
    phone: dict[str, Any] | None = None
    recorded: dict[str, Any] | None = None
    failed = ""
    try:
        began = time.monotonic()
        hearing.start(camera=LARGE)
        print(f"host in the call ({time.monotonic() - began:.0f} s)", flush=True)
        stops = sorted(set(sizes) | ({PHONE_AT} if largest >= PHONE_AT else set()))
        for size in stops:
            if time.monotonic() > args.deadline:
                failed = f"N={size}: not started, the run is past its {args.limit:.0f} s"
                print(failed, flush=True)
                break
            try:
                last, joins = grow(hearing, guests, size, args.batch)
            except Exception as exc:  # noqa: BLE001 - a busy machine's result: say so, sum up
                failed = f"N={size}: could not be set up on this machine: " \
                    f"{str(exc).splitlines()[0]}"
                print(failed, flush=True)
                break
            if size == PHONE_AT:
                phone = phone_downlink(hearing, last)
                show_phone(phone)
            if size == 8:
                for _ in range(args.repeats):
                    hearing.reload(last)
                    joins.append(joined(last))
                    hearing.decoding([last])
            show_joins(size, joins)
            found = {"joins": joins, "first_frame": median_of(joins, "frame"),
                     **measure(hearing, janus_pid, args.seconds)}
            results.append(found)
            show(found, results[0])
            if size == record_at and not args.no_record:
                recorded = record(hearing, live, recorder_pid, janus_pid, args.seconds)
                show_recorded(recorded, idle.percent["recorder"])
    finally:
        errors = hearing.errors()
        outside = [a for side in (hearing.sides.sides if hearing.sides else [])
                   for a in netns.outside_loopback(side.gathered + side.used + side.remote)]
        hearing.close()
    summary(results, phone, recorded, idle.percent["recorder"], failed)
    if errors:
        print(f"the pages reported errors: {errors[:5]}")
    if outside:
        raise SystemExit(f"ICE outside loopback: {outside}")


def summary(results: list[dict[str, Any]], phone: dict[str, Any] | None,
            recorded: dict[str, Any] | None, recorder_idle: float, failed: str) -> None:
    print("\ngoals:")
    if failed:
        print(f"- {failed}")
    if not results:
        return
    # At the largest size: with few streams, receiving the publishers (the host's three
    # simulcast layers above all) is most of Janus's work, spread over few forwarded streams.
    top = results[-1]
    per_stream = top["janus"] / top["streams"]
    full = per_stream_nominal(top, results[0])
    print(f"- Janus <= {PER_STREAM_GOAL} % of a core per forwarded stream at N={top['n']}: "
          f"{'met' if max(per_stream, full) <= PER_STREAM_GOAL else 'NOT met'} "
          f"({per_stream:.3f} % as measured, {full:.3f} % at full rate)")
    eight = next((r for r in results if r["n"] == 8), None)
    if eight:
        met = eight["first_frame"] <= FIRST_FRAME_GOAL
        print(f"- last joiner's first remote frame p50 <= {FIRST_FRAME_GOAL} s at N=8: "
              f"{'met' if met else 'NOT met'} ({eight['first_frame']:.2f} s over "
              f"{len(eight['joins'])} joins; Janus's answer p50 "
              f"{median_of(eight['joins'], 'answer'):.2f} s, the subscription offer "
              f"{median_of(eight['joins'], 'offer'):.2f} s)")
    fifteen = next((r for r in results if r["n"] == 15), None)
    if fifteen:
        met = fifteen["decoding"] == fifteen["expected_pairs"] and not fifteen["renewed"]
        print(f"- every subscriber decoding at N=15: {'met' if met else 'NOT met'} "
              f"({fifteen['decoding']}/{fifteen['expected_pairs']} pairs, mean "
              f"{fifteen['fps_mean']:.1f} fps)")
    if phone:
        tile = phone["tile"] or {"width": 0, "height": 0}
        met = phone["bps"] < PHONE_DOWNLINK_GOAL and tile["width"] >= 640
        print(f"- a phone's downlink < 1.5 Mbit/s at 10 with the speaker >= 640x360: "
              f"{'met' if met else 'NOT met'} ({phone['bps'] / 1e6:.2f} Mbit/s, "
              f"{tile['width']}x{tile['height']})")
    if recorded:
        print(f"- recorder: {(recorded['recorder'] - recorder_idle) / recorded['n']:.2f} % of a "
              f"core per recorded participant at N={recorded['n']} (no goal set)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[2, 4, 8, 15])
    parser.add_argument("--seconds", type=float, default=8, help="each measuring window")
    parser.add_argument("--repeats", type=int, default=5, help="rejoins of the last at N=8")
    parser.add_argument("--idle-seconds", type=float, default=4)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--record-at", type=int, default=8, help="the size recorded")
    parser.add_argument("--batch", type=int, default=3, help="pages joining at once")
    parser.add_argument("--limit", type=float, default=900,
                        help="seconds after which no further size is started")
    args = parser.parse_args()
    if min(args.sizes) < 2 or max(args.sizes) > 16:
        parser.error("sizes from 2 to 16 (the room holds 16 publishers)")
    for why in (netns.require_root(), missing_janus()):
        if why:
            raise SystemExit(why)
    # No size starts after --limit; one under way is given 5 minutes more, then stopped.
    args.deadline = time.monotonic() + args.limit
    hard_stop = threading.Timer(args.limit + 300, lambda: os.kill(os.getpid(), signal.SIGINT))
    hard_stop.daemon = True
    hard_stop.start()
    print(f"hearing bench: sizes {args.sizes}, {args.seconds:.0f} s windows, "
          f"{os.cpu_count()} cores shared with whatever else runs (load "
          f"{os.getloadavg()[0]:.1f}): absolute numbers move between runs.", flush=True)
    os.environ["PORTAL_MAX_GUESTS"] = MAX_GUESTS  # the bench's own app, booking the hearing
    with tempfile.TemporaryDirectory(prefix="hearing-bench-") as tmp, \
            netns.temporary("samtale-bench") as namespace:
        files = Path(tmp)
        template = migrated(files)
        with running_janus(files / "janus", namespace) as janus:
            live = start_live_portal(template, files / "live", grace_seconds=GRACE_SECONDS,
                                     env={**janus.portal_env(),
                                          "PORTAL_JANUS_RETRY_SECONDS": "1",
                                          "PORTAL_MAX_GUESTS": MAX_GUESTS})
            recorder = start_recorder(live, files / "recorder.log")
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                         args=CHROMIUM_ARGS)
                    try:
                        run(args, browser, playwright, live, janus.pid, recorder.pid)
                    finally:
                        browser.close()
            except BaseException:
                sys.stderr.write(f"--- portal log ---\n{live.stderr()[-4000:]}\n"
                                 f"--- recorder log ---\n"
                                 f"{(files / 'recorder.log').read_text()[-3000:]}\n"
                                 f"{janus.diagnose(30)}\n")
                raise
            finally:
                if recorder.poll() is None:
                    recorder.send_signal(signal.SIGTERM)
                    try:
                        recorder.wait(30)
                    except subprocess.TimeoutExpired:
                        recorder.kill()
                live.stop()


if __name__ == "__main__":
    main()
