"""Signaling under load: N sockets in N/2 admitted calls relaying `signal` messages through
the real server, against a bare Flask-SocketIO relay measured in the same run.

The portal runs as it ships (`python app.py`: gunicorn with portal.serve.Worker) on a scratch
database; with --workers 2, two such servers share a scratch PostgreSQL database and a Redis
message queue (a fresh channel), and each call's sockets go to the worker its appointment id
hashes to, as the proxy of docs/operations.md routes them (--placement split: host and guest on
different workers, every message through Redis, the worst case); --scale runs one worker and
then two in the same run and prints the ratio. Calls are booked through the app's services;
the host signs in, the guest waits in the lobby, is admitted, and both join, as browsers do.
Each call gets an address of its own (X-Forwarded-For, PORTAL_PROXIES=1), as real clients
have.

Two phases, with lean asyncio Socket.IO clients (bench/sioclient.py: a third of the CPU per
message python-socketio's threaded client took, CPU the servers now get) in --procs client
processes; each side's CPU per message is printed, the generator's too:
- paced: each side of each call sends one ICE candidate a second to the other (2 msg/s per
  call) for --seconds; latency is one-way, stamped and read on one clock (CLOCK_MONOTONIC is
  system-wide); lost = sent and never received; dropped = sockets the server closed;
- unpaced: each call bounces two messages between its sides as fast as they come back, for
  --unpaced-seconds (each side at most 30 a second, under the portal's 40 per participant:
  with 300 sockets or more the server is the limit): the most the server relays.
Then the same two phases against a bare relay: Flask-SocketIO in threading mode with
simple-websocket under gunicorn's gthread worker, which only looks up the target and emits.

Everything listens on 127.0.0.1 and every phase is bounded in time. The machine this runs on
may have 2 cores shared with the load generator and other work: absolute numbers move between
runs; the ratio against the bare relay, measured in the same run, moves less.

Run: .venv/bin/python bench/signaling.py [--sockets 300] [--workers 1|2] [--seconds 20]
     .venv/bin/python bench/signaling.py --scale --sockets 500 --no-bare
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import sioclient  # noqa: E402 - after the path is set
from bench.server import launch, stop  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"  # noqa: S105
PASSWORD = "a long enough bench passphrase"  # noqa: S105
PG_ADMIN = os.environ.get("PORTAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = "redis://127.0.0.1:6379/0"
WAIT = 20.0  # for any one expected event during setup
#: Unpaced, a side still sends at most this many a second: the portal refuses more than 40
#: per participant (EVENT_RATE). Use enough sockets that the server, not this, is the limit.
UNPACED_CAP = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the database and the servers ------------------------------------------------------------

def prepare(database_url: str, files: Path, calls: int) -> list[tuple[int, str]]:
    """Migrate, add a host and book `calls` consults starting now, one guest each; returns
    (appointment id, guest's invite token) per call. In a child process: no app stays here."""
    code = f"""
import json
from datetime import UTC, datetime
from flask_migrate import upgrade
from portal import create_app
from portal.accounts import services as accounts
from portal.appointments import services as appointments
from portal.extensions import db
from portal.models import Kind, ParticipantRole, RecordingPolicy, Role
app = create_app({{"SQLALCHEMY_DATABASE_URI": {database_url!r}, "SECRET_KEY": {SECRET!r},
                  "MFA_KEY": {SECRET!r}, "RECORDINGS_DIR": {str(files / "recordings")!r},
                  "RECORDING_KEYS_DIR": {str(files)!r}, "ARGON2_TIME_COST": 1,
                  "ARGON2_MEMORY_COST": 8, "ARGON2_PARALLELISM": 1}})
with app.app_context():
    upgrade()
    user, _ = accounts.create_user("host@bench.test", "Bench Host", Role.HOST, {PASSWORD!r})
    user.must_change_password = False
    starts = datetime.now(UTC).replace(second=0, microsecond=0)
    made = []
    for n in range({calls}):
        a = appointments.book(user, kind=Kind.CONSULT, title=f"Bench {{n}}", starts_at=starts,
                              duration_minutes=120, recording_policy=RecordingPolicy.OFF)
        guest, token = appointments.add_guest(a, display_name=f"Guest {{n}}",
                                              role=ParticipantRole.PATIENT)
        made.append((a, token))
    db.session.commit()
    print(json.dumps([[a.id, token] for a, token in made]))
"""
    import json

    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False,  # noqa: S603
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"preparing the database failed:\n{done.stderr[-3000:]}")
    return [(int(a), str(t)) for a, t in json.loads(done.stdout.strip().splitlines()[-1])]


def portal_env(database_url: str, port: int, files: Path, sockets: int,
               queue: str | None, channel: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": database_url, "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_MFA_KEY": SECRET, "PORTAL_COOKIE_SECURE": "false",
        "PORTAL_HOST": "127.0.0.1", "PORTAL_PORT": str(port),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        # Each call claims an address of its own, as real clients have.
        "PORTAL_PROXIES": "1",
        "PORTAL_RATELIMIT_STORAGE_URI": "memory://",
        "PORTAL_LOGIN_RATE_LIMIT": "100000 per minute",
        "PORTAL_INVITE_RATE_LIMIT": "100000 per minute",
        "PORTAL_SOCKET_CONNECT_RATE_LIMIT": "100000 per minute",
        "PORTAL_SOCKETS_PER_PARTICIPANT": "4",
        # Every open socket holds a server thread; some more for HTTP.
        "PORTAL_THREADS": str(sockets + 100),
        "PORTAL_RECORDER_ALLOW_ADDRESSES": "127.0.0.0/8,::1",
        "PORTAL_RECORDINGS_DIR": str(files / f"recordings-{port}"),
        "PORTAL_RECORDING_KEYS_DIR": str(files),
        "PORTAL_DEFAULT_TIMEZONE": "UTC",
        "PORTAL_ARGON2_TIME_COST": "1", "PORTAL_ARGON2_MEMORY_COST": "8",
        "PORTAL_ARGON2_PARALLELISM": "1",
        "PORTAL_SOCKETIO_CHANNEL": channel,
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
    })
    if queue:
        env["PORTAL_SOCKETIO_MESSAGE_QUEUE"] = queue
    return env


def serve_bare(port: int, threads: int) -> None:
    """The bare relay: Flask-SocketIO, threading mode, gunicorn gthread, one worker."""
    from flask import Flask, request
    from flask_socketio import SocketIO
    from gunicorn.app.base import BaseApplication

    app = Flask("bare")
    sio = SocketIO(app, async_mode="threading")
    sids: dict[int, str] = {}
    ids: dict[str, int] = {}

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @sio.on("connect")
    def connect(auth: Any = None) -> None:
        me = int(auth["me"])
        sids[me] = request.sid  # type: ignore[attr-defined]
        ids[request.sid] = me  # type: ignore[attr-defined]

    @sio.on("signal")
    def relay(data: dict[str, Any]) -> None:
        me = ids[request.sid]  # type: ignore[attr-defined]
        message = {"from": me, "candidate": data["candidate"]}
        sio.emit("signal", message, to=sids[data["to"]])

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {"bind": f"127.0.0.1:{port}", "workers": 1,
                               "worker_class": "gthread", "threads": threads,
                               "accesslog": None}.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    Server().run()


# --- the clients (in child processes) --------------------------------------------------------

@dataclass
class Side:
    url: str
    auth: dict[str, Any]
    headers: dict[str, str]
    me: int = 0
    peer: int = 0
    next_send: float = 0.0
    sio: Any = None
    inbox: list[tuple[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, event: str, test: Any = None) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            for i, (name, payload) in enumerate(self.inbox):
                if name == event and (test is None or test(payload)):
                    del self.inbox[i]
                    return payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {event} in {WAIT} s; got {self.inbox[-5:]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)


class Stats:
    def __init__(self) -> None:
        self.mode = "idle"  # idle, paced, unpaced, done
        self.latencies: list[float] = []
        self.sent = 0
        self.received = 0
        self.bounced = 0
        self.errors: Counter[str] = Counter()
        self.dropped = 0


def _candidate(seq: int, tag: str) -> dict[str, Any]:
    return {"candidate": f"candidate:{seq} 1 udp 1 127.0.0.1 9 typ host {time.monotonic()!r}",
            "sdpMid": tag, "sdpMLineIndex": 0, "usernameFragment": "bench"}


async def _client(side: Side, stats: Stats) -> None:
    """Connect one side: `signal` is answered here (timed, or bounced back within the
    portal's rate limit); every other event is queued for wait_for."""
    loop = asyncio.get_running_loop()

    def bounce(to: int) -> None:
        if side.sio.connected:
            side.sio.emit("signal", {"to": to, "candidate": _candidate(0, "unpaced")})

    def on_event(event: str, payload: Any) -> None:
        if event == "signal":
            now = time.monotonic()
            candidate = payload["candidate"]
            if candidate["sdpMid"] == "paced":
                stats.received += 1
                stamp = float(candidate["candidate"].rsplit(" ", 1)[1])
                stats.latencies.append((now - stamp) * 1000)
            elif stats.mode == "unpaced":
                stats.bounced += 1
                # ...but within the portal's limit per participant (portal/call/identity.py).
                wait = side.next_send - now
                side.next_send = max(now, side.next_send) + 1 / UNPACED_CAP
                if wait > 0:
                    loop.call_later(wait, bounce, payload["from"])
                else:
                    bounce(payload["from"])
            return
        if event == "error":
            code = payload.get("code") if isinstance(payload, dict) else payload
            stats.errors[str(code)] += 1
        side.inbox.append((event, payload))
        side.arrived.set()

    def on_close() -> None:
        if stats.mode != "done":
            stats.dropped += 1

    side.sio = sioclient.Client(on_event, on_close)
    await side.sio.connect(side.url, side.headers, side.auth, WAIT)


async def _setup_portal_call(host: Side, guest: Side, stats: Stats) -> None:
    await _client(host, stats)
    host.me = (await host.wait_for("welcome"))["self"]["id"]
    host.sio.emit("call:join", {"resume": False})
    await host.wait_for("call:joined")
    await _client(guest, stats)
    guest.me = (await guest.wait_for("welcome"))["self"]["id"]
    guest.sio.emit("lobby:join", {})
    await guest.wait_for("lobby:state")
    await host.wait_for("lobby:list", lambda p: guest.me in [w["id"] for w in p["waiting"]])
    host.sio.emit("lobby:admit", {"participant_id": guest.me})
    await guest.wait_for("lobby:state", lambda p: p["state"] == "admitted")
    guest.sio.emit("call:join", {"resume": False})
    await guest.wait_for("call:joined")
    host.peer, guest.peer = guest.me, host.me


async def _setup_bare_call(host: Side, guest: Side, stats: Stats) -> None:
    host.me, guest.me = host.auth["me"], guest.auth["me"]
    host.peer, guest.peer = guest.me, host.me
    await _client(host, stats)
    await _client(guest, stats)


def client_process(calls: list[dict[str, Any]], bare: bool, commands: Any, results: Any) -> None:
    asyncio.run(_client_process(calls, bare, commands, results))


async def _client_process(calls: list[dict[str, Any]], bare: bool, commands: Any,
                          results: Any) -> None:
    stats = Stats()
    pairs = [(Side(call["host_url"], call["host_auth"], call["host_headers"]),
              Side(call["guest_url"], call["guest_auth"], call["guest_headers"]))
             for call in calls]
    setup = _setup_bare_call if bare else _setup_portal_call
    gate = asyncio.Semaphore(8)  # calls set up at once, as a clinic's morning would

    async def set_up(host: Side, guest: Side) -> None:
        async with gate:
            await setup(host, guest, stats)

    try:
        await asyncio.gather(*(set_up(host, guest) for host, guest in pairs))
    except Exception as exc:
        results.put({"error": f"setup failed: {exc!r}"})
        return
    results.put({"ready": len(pairs)})
    sides = [side for pair in pairs for side in pair]
    while True:
        command, seconds = await asyncio.to_thread(commands.get)
        if command == "paced":
            stats.mode = "paced"
            await _paced(sides, stats, seconds)
            await asyncio.sleep(3)  # let the last ones arrive
            results.put({"sent": stats.sent, "received": stats.received,
                         "latencies": stats.latencies, "errors": dict(stats.errors),
                         "dropped": stats.dropped})
        elif command == "unpaced":
            stats.bounced = 0
            stats.mode = "unpaced"
            for host, _guest in pairs:
                for _ in range(2):
                    host.sio.emit("signal", {"to": host.peer,
                                             "candidate": _candidate(0, "unpaced")})
            await asyncio.sleep(1)  # warm up
            start = stats.bounced
            await asyncio.sleep(seconds)
            count = stats.bounced - start
            stats.mode = "idle"
            await asyncio.sleep(1)
            results.put({"relayed": count, "errors": dict(stats.errors),
                         "dropped": stats.dropped})
        else:
            stats.mode = "done"
            for side in sides:
                side.sio.close()
            await asyncio.sleep(0.5)
            results.put({"stopped": True})
            return


async def _paced(sides: list[Side], stats: Stats, seconds: float) -> None:
    """One message a second from every side, spread evenly over the second."""
    began = time.monotonic()
    schedule = sorted((began + random.random(), n) for n in range(len(sides)))  # noqa: S311
    seq = 0
    end = began + seconds
    while True:
        due, n = schedule[0]
        if due >= end:
            return
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        side = sides[n]
        seq += 1
        if side.sio.connected:
            side.sio.emit("signal", {"to": side.peer, "candidate": _candidate(seq, "paced")})
            stats.sent += 1
        else:
            stats.errors["emit failed"] += 1
        schedule[0] = (due + 1.0, n)
        schedule.sort()


# --- running one setup -----------------------------------------------------------------------

def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def cpu_seconds(sessions: list[int], clients: list[int]) -> tuple[float, float, float]:
    """CPU time (user + system) of every process in these sessions (a server started with
    start_new_session: gunicorn's master and worker), of the Redis server, and of the load
    generator's client processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = redis = generator = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        used = int(fields[11]) + int(fields[12])
        if int(fields[3]) in sessions:
            total += used
        elif name == "redis-server":
            redis += used
        elif int(stat.parent.name) in clients:
            generator += used
    return total / tick, redis / tick, generator / tick


def run_load(calls: list[dict[str, Any]], bare: bool, procs: int, seconds: float,
             unpaced_seconds: float, servers: list[int] | None = None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    workers = []
    for k in range(procs):
        commands = ctx.Queue()
        share = calls[k::procs]
        process = ctx.Process(target=client_process, args=(share, bare, commands, results),
                              daemon=True)
        process.start()
        workers.append((process, commands))
    try:
        def gather(timeout: float) -> list[dict[str, Any]]:
            found = [results.get(timeout=timeout) for _ in workers]
            failed = [f["error"] for f in found if "error" in f]
            if failed:
                raise SystemExit(failed[0])
            return found

        began = time.monotonic()
        gather(60 + 0.5 * len(calls))
        setup = time.monotonic() - began
        for _, commands in workers:
            commands.put(("paced", seconds))
        paced = gather(seconds + 60)
        clients = [process.pid for process, _ in workers if process.pid]
        cpu_before = cpu_seconds(servers or [], clients)
        for _, commands in workers:
            commands.put(("unpaced", unpaced_seconds))
        unpaced = gather(unpaced_seconds + 60)
        cpu_after = cpu_seconds(servers or [], clients)
        for _, commands in workers:
            commands.put(("stop", 0))
        gather(60)
    finally:
        for process, _ in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
    latencies = [v for f in paced for v in f["latencies"]]
    sent = sum(f["sent"] for f in paced)
    received = sum(f["received"] for f in paced)
    relayed = sum(f["relayed"] for f in unpaced)
    errors: Counter[str] = Counter()
    for f in unpaced:
        errors.update(f["errors"])
    return {"setup_s": setup, "sent": sent, "received": received,
            "offered": sent / seconds, "delivered": received / seconds,
            "lost": sent - received, "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "max": max(latencies, default=float("nan")),
            "dropped": max(f["dropped"] for f in unpaced) if unpaced else 0,
            "dropped_paced": sum(f["dropped"] for f in paced),
            "errors": dict(errors),
            "unpaced": sum(f["relayed"] for f in unpaced) / unpaced_seconds,
            # The servers', Redis's and the clients' CPU per relayed message (unpaced phase).
            **{f"{who}_ms_per_msg": 1000 * (cpu_after[k] - cpu_before[k]) / max(1, relayed)
               for k, who in enumerate(("server", "redis", "generator"))}}


def show(label: str, found: dict[str, Any], sockets: int) -> None:
    errors = f"  errors {found['errors']}" if found["errors"] else ""
    print(f"{label:28} {sockets:4} sockets  p50 {found['p50']:7.1f} ms  p99 {found['p99']:8.1f} ms"
          f"  max {found['max']:8.1f} ms  delivered/offered {found['delivered']:6.1f}/"
          f"{found['offered']:6.1f} msg/s  lost {found['lost']}  dropped "
          f"{found['dropped_paced']}  unpaced {found['unpaced']:7.0f} msg/s"
          f"  CPU per msg: servers {found['server_ms_per_msg']:.2f} ms, Redis "
          f"{found['redis_ms_per_msg']:.2f} ms, load generator "
          f"{found['generator_ms_per_msg']:.2f} ms"
          f"  (setup {found['setup_s']:.0f} s){errors}", flush=True)


def address(n: int) -> str:
    return f"127.{10 + n // 65536 % 200}.{n // 256 % 256}.{n % 256 or 1}"


def portal_calls(booked: list[tuple[int, str]], urls: list[str], cookie: str,
                 split: bool) -> list[dict[str, Any]]:
    """Each call's two sides: on the worker its appointment hashes to, as the proxy of
    docs/operations.md routes `?call=<id>`; with split, host and guest on different workers."""
    calls = []
    for n, (appointment_id, token) in enumerate(booked):
        host_url = urls[appointment_id % len(urls)]
        guest_url = urls[(appointment_id + split) % len(urls)]
        xff = {"X-Forwarded-For": address(n)}
        calls.append({"host_url": host_url, "host_auth": {"appointment": appointment_id},
                      "host_headers": {**xff, "Cookie": cookie},
                      "guest_url": guest_url, "guest_auth": {"invite": token},
                      "guest_headers": xff})
    return calls


def sign_in(base: str) -> str:
    import re

    import requests

    http = requests.Session()
    page = http.get(f"{base}/login", timeout=30)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token, page.status_code
    answer = http.post(f"{base}/login", allow_redirects=False, timeout=30, data={
        "csrf_token": token.group(1), "email": "host@bench.test", "password": PASSWORD})
    assert answer.status_code == 302, answer.status_code
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


def run_portal(args: argparse.Namespace, files: Path, workers: int) -> dict[str, Any]:
    calls = args.sockets // 2
    postgres = workers > 1 or args.database == "postgresql"
    dbname = f"samtale_bench_{uuid.uuid4().hex[:8]}"
    if postgres:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        database_url = PG_ADMIN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://") + f"/{dbname}"
    else:
        database_url = f"sqlite:///{files / 'portal.sqlite3'}"
    servers: list[subprocess.Popen[bytes]] = []
    try:
        booked = prepare(database_url, files, calls)
        channel = f"samtale-bench-{uuid.uuid4().hex[:8]}"
        urls = []
        for _ in range(workers):
            port = free_port()
            env = portal_env(database_url, port, files, args.sockets, REDIS_URL
                             if workers > 1 else None, channel)
            servers.append(launch([sys.executable, str(ROOT / "app.py")], env, port=port,
                                  log=files / f"portal-{port}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        if args.pause_for_profiler:
            print("server pids:", [s.pid for s in servers], flush=True)
        cookie = sign_in(urls[0])
        load = portal_calls(booked, urls, cookie, args.placement == "split")
        return run_load(load, False, args.procs, args.seconds, args.unpaced_seconds,
                        [s.pid for s in servers])
    except BaseException:
        for log in sorted(files.glob("portal-*.log")):  # the scratch folder goes with the run
            print(f"--- end of {log.name}:\n" + log.read_text(errors="replace")[-4000:])
        raise
    finally:
        for server in servers:
            stop(server)
        if postgres:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def run_bare(args: argparse.Namespace, files: Path) -> dict[str, Any]:
    port = free_port()
    server = launch([sys.executable, __file__, "--serve-bare", str(port),
                     "--sockets", str(args.sockets)], dict(os.environ),
                    port=port, log=files / "bare.log")
    url = f"http://127.0.0.1:{port}"
    try:
        calls = [{"host_url": url, "host_auth": {"me": 2 * n + 1}, "host_headers": {},
                  "guest_url": url, "guest_auth": {"me": 2 * n + 2}, "guest_headers": {}}
                 for n in range(args.sockets // 2)]
        return run_load(calls, True, args.procs, args.seconds, args.unpaced_seconds,
                        [server.pid])
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="with one worker (two always use PostgreSQL)")
    parser.add_argument("--placement", choices=("by-call", "split"), default="by-call",
                        help="two workers: a call's sockets on one worker, as the proxy of "
                             "docs/operations.md routes them, or host and guest apart")
    parser.add_argument("--scale", action="store_true",
                        help="one worker, then two, on PostgreSQL (+ Redis), and their ratio")
    parser.add_argument("--seconds", type=float, default=20, help="paced phase")
    parser.add_argument("--unpaced-seconds", type=float, default=10)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare relay")
    parser.add_argument("--pause-for-profiler", action="store_true",
                        help="print the server pids (attach py-spy)")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.sockets + 100)
        return
    hard_stop = threading.Timer(900, lambda: os.kill(os.getpid(), signal.SIGINT))
    hard_stop.daemon = True
    hard_stop.start()
    if args.scale:
        args.database, args.workers = "postgresql", 2
    print(f"signaling bench: {args.sockets} sockets in {args.sockets // 2} calls, "
          f"{'1 and 2' if args.scale else args.workers} worker(s), "
          f"{'PostgreSQL + Redis' if args.workers > 1 else args.database}"
          f"{', ' + args.placement if args.workers > 1 else ''}, {os.cpu_count()} cores shared "
          f"with the load generator and whatever else runs: absolute numbers move between runs.",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="signaling-bench-") as tmp:
        files = Path(tmp)
        if args.scale:
            scale(args, files)
            return
        portal = run_portal(args, files, args.workers)
        label = f"portal, {args.workers} worker(s)"
        show(label, portal, args.sockets)
        if args.no_bare:
            return
        bare = run_bare(args, files)
        show("bare Flask-SocketIO relay", bare, args.sockets)
        ratio = portal["unpaced"] / bare["unpaced"] if bare["unpaced"] else float("nan")
        print(f"unpaced: portal / bare relay = {ratio:.2f}")
        met = (portal["p99"] < 50 and portal["lost"] == 0 and portal["dropped_paced"] == 0)
        print(f"paced goal (p99 < 50 ms, 0 lost, 0 dropped): {'met' if met else 'NOT met'}; "
              f"unpaced goal (>= 70 % of bare): {'met' if ratio >= 0.7 else 'NOT met'}")


def scale(args: argparse.Namespace, files: Path) -> None:
    """One worker, then two, in the same run: measured throughput, and the capacity each
    would have on cores of its own (cores / servers' CPU per message): on a machine whose
    cores the load generator shares, only the second can show what a second worker adds."""
    found = {}
    for workers in (1, 2):
        (files / str(workers)).mkdir()
        found[workers] = run_portal(args, files / str(workers), workers)
        show(f"portal, {workers} worker(s)", found[workers], args.sockets)
    one, two = found[1], found[2]
    measured = two["unpaced"] / one["unpaced"] if one["unpaced"] else float("nan")
    capacity = (2 / two["server_ms_per_msg"]) / (1 / one["server_ms_per_msg"])
    print(f"two workers / one, unpaced msg/s measured: {measured:.2f}x "
          f"(load generator on the same {os.cpu_count()} cores)")
    print(f"two workers / one, capacity on a core each (CPU per message "
          f"{one['server_ms_per_msg']:.2f} -> {two['server_ms_per_msg']:.2f} ms): {capacity:.2f}x; "
          f"goal >= 1.6x: {'met' if capacity >= 1.6 else 'NOT met'}")

if __name__ == "__main__":
    main()
