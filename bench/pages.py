"""Pages under load: the host's appointment list and the guest's link page, 20 clients at once.

The portal runs as it ships (`python app.py`: gunicorn with portal.serve.Worker) on a fresh
database with one host who has 50 appointments (two guests each); one of them is open now and
its guest's link (/j/<token>) is the guest page. Each of `--clients` clients is a browser of its
own (the host's pages: a signed-in session each) sending one request after another for
`--seconds`; we count requests per second, p50/p99 latency and 5xx answers. A bare Flask page
served by the same gunicorn worker class, measured in the same run, gives the ceiling of this
machine and client: the ratio says how much of it the portal's work takes.

SQLite (a fresh file) and PostgreSQL (a scratch database on 127.0.0.1:5432, user postgres,
dropped afterwards). Everything goes to 127.0.0.1 and stops by itself. Sign-ins use cheap
argon2 parameters (only the setup signs in; no measured page hashes anything). The clients run
on the same machine as the server: on 2 shared cores the numbers move from run to run.

Run: .venv/bin/python bench/pages.py [--db sqlite|postgres|both] [--clients 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.server import launch, stop  # noqa: E402 - after the path is set

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PASSWORD = "a long enough bench passphrase"  # noqa: S105
SECRET = "bench-secret-key-0123456789abcdef"  # noqa: S105
CHEAP_ARGON2 = {"ARGON2_TIME_COST": "1", "ARGON2_MEMORY_COST": "8", "ARGON2_PARALLELISM": "1"}
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/"
APPOINTMENTS = 50
#: Goals of issue 16, per page: requests/s at least, p99 below (ms), no 5xx.
GOAL_RPS, GOAL_P99 = 200, 200


class _NoRecorder:
    """portal.serve.Worker starts and stops the recorder of any Flask app it serves."""

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass


def serve_bare(port: int) -> None:
    """The baseline: a Flask page that renders a small template and touches no database,
    served by portal.serve with the portal's own gunicorn options (same worker, threads)."""
    from flask import Flask, render_template_string

    from portal.serve import serve

    app = Flask("bare")
    app.config.update(HOST="127.0.0.1", PORT=port, SERVER_THREADS=500)
    app.extensions["recording"] = _NoRecorder()

    @app.get("/")
    def page() -> str:
        return render_template_string(
            "<!doctype html><title>{{ t }}</title><ul>{% for i in items %}<li>{{ i }}</li>"
            "{% endfor %}</ul>", t="bare", items=range(50))

    serve(app)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_env(url: str, files: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": url, "PORTAL_SECRET_KEY": SECRET, "PORTAL_MFA_KEY": SECRET,
        "PORTAL_COOKIE_SECURE": "false", "PORTAL_HOST": "127.0.0.1", "PORTAL_PORT": str(port),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PORTAL_RATELIMIT_STORAGE_URI": "memory://",
        # Every client is 127.0.0.1: the per-address limits would measure the limiter.
        "PORTAL_LOGIN_RATE_LIMIT": "100000 per minute",
        "PORTAL_INVITE_RATE_LIMIT": "100000 per minute",
        "PORTAL_RECORDINGS_DIR": str(files / "recordings"),
        "PORTAL_RECORDING_KEYS_DIR": str(files), "PORTAL_DEFAULT_TIMEZONE": "UTC",
        "PYTHONUNBUFFERED": "1",
        **{f"PORTAL_{k}": v for k, v in CHEAP_ARGON2.items()},
    })
    return env


PREPARE = """
import json, sys
from datetime import timedelta
from flask_migrate import upgrade
from portal import create_app
from portal.accounts import services as accounts
from portal.appointments import services
from portal.extensions import db
from portal.models import Kind, ParticipantRole, RecordingPolicy, Role, utcnow
app = create_app()
with app.app_context(), app.test_request_context():
    upgrade()
    host, _ = accounts.create_user("host@bench.test", "Bench Host", Role.HOST, {password!r})
    host.must_change_password = False
    db.session.flush()
    now = utcnow()
    token = None
    for i in range({n}):
        a = services.book(host, kind=Kind.CONSULT, title=f"Consult {{i}}",
                          starts_at=now + timedelta(minutes=-5 + 90 * i), duration_minutes=60,
                          recording_policy=RecordingPolicy.OFF)
        for g in range(2):
            _, t = services.add_guest(a, display_name=f"Guest {{i}}.{{g}}",
                                      role=ParticipantRole.PATIENT)
            token = token or t
    db.session.commit()
    print(json.dumps({{"token": token}}))
"""


def prepare(env: dict[str, str]) -> str:
    """Migrate, add the host and the appointments; the guest token of the one open now."""
    done = subprocess.run([sys.executable, "-c", PREPARE.format(  # noqa: S603
        password=PASSWORD, n=APPOINTMENTS)], cwd=ROOT, env=env, check=False,
        capture_output=True, timeout=300, text=True)
    if done.returncode:
        raise SystemExit("preparing the database failed:\n" + done.stderr[-3000:])
    token: str = json.loads(done.stdout.strip().splitlines()[-1])["token"]
    return token


def signed_in(base: str) -> requests.Session:
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=30)
    match = CSRF_RE.search(page.text)
    assert match, f"no sign-in form: {page.status_code}"
    response = http.post(f"{base}/login", timeout=30, allow_redirects=False, data={
        "csrf_token": match.group(1), "email": "host@bench.test", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return http


@dataclass
class Result:
    label: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def p(self, q: int) -> float:
        values = self.latencies
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    @property
    def errors_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def line(self) -> str:
        other = {s: n for s, n in self.statuses.items() if s != 200}
        return (f"{self.label:26} {self.rps:7.1f} req/s  p50 {self.p(50):7.1f} ms  "
                f"p99 {self.p(99):7.1f} ms  5xx {self.errors_5xx}"
                + (f"  other {other}" if other else ""))

    def meets_goal(self) -> bool:
        return self.rps >= GOAL_RPS and self.p(99) < GOAL_P99 and self.errors_5xx == 0


def load(label: str, url: str, sessions: list[requests.Session], seconds: float) -> Result:
    """Each session (its cookies) sends one request after another for `seconds`, on a
    keep-alive connection of its own (asyncio: the client's CPU is CPU the server does not get
    on 2 shared cores; requests in threads took about as much as the bare page)."""
    return asyncio.run(_load(label, url, sessions, seconds))


async def _load(label: str, url: str, sessions: list[requests.Session],
                seconds: float) -> Result:
    result = Result(label, seconds)
    where = urlsplit(url)
    deadline = time.monotonic() + seconds

    async def client(http: requests.Session) -> None:
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        head = (f"GET {where.path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
                + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n").encode()
        connection = None
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                if connection is None:
                    connection = await asyncio.open_connection(where.hostname, where.port)
                reader, writer = connection
                writer.write(head)
                status, keep = await asyncio.wait_for(_response(reader), 60)
                if not keep:
                    writer.close()
                    connection = None
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
                status, connection = 599, None  # no answer at all: counted with the 5xx
            result.latencies.append((time.perf_counter() - began) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        if connection is not None:
            connection[1].close()

    began = time.monotonic()
    await asyncio.gather(*(client(http) for http in sessions))
    result.seconds = time.monotonic() - began
    return result


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response: its status, and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in head[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


def warm(url: str, http: requests.Session) -> None:
    for _ in range(20):
        http.get(url, timeout=60, allow_redirects=False)


def bench_portal(db: str, url: str, args: argparse.Namespace, files: Path) -> list[Result]:
    port = free_port()
    env = config_env(url, files, port)
    token = prepare(env)
    server = launch([sys.executable, str(ROOT / "app.py")], env, port=port,
                    log=files / f"{db}.log")
    base = f"http://127.0.0.1:{port}"
    try:
        hosts = [signed_in(base) for _ in range(args.clients)]
        guests = [requests.Session() for _ in range(args.clients)]
        list_url, guest_url = f"{base}/appointments/", f"{base}/j/{token}"
        assert hosts[0].get(list_url, timeout=30).text.count('class="status-') == APPOINTMENTS
        assert guests[0].get(guest_url, timeout=30).status_code == 200
        warm(list_url, hosts[0])
        warm(guest_url, guests[0])
        return [load(f"{db}: appointment list", list_url, hosts, args.seconds),
                load(f"{db}: guest link page", guest_url, guests, args.seconds)]
    finally:
        stop(server)


def bench_bare(args: argparse.Namespace, files: Path) -> Result:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = launch([sys.executable, "-c", f"from bench.pages import serve_bare; "
                     f"serve_bare({port})"], env, port=port, log=files / "bare.log", health="/")
    try:
        sessions = [requests.Session() for _ in range(args.clients)]
        warm(f"http://127.0.0.1:{port}/", sessions[0])
        return load("bare Flask page", f"http://127.0.0.1:{port}/", sessions, args.seconds)
    finally:
        stop(server)


def scratch_postgres() -> tuple[str, str]:
    import psycopg

    name = f"bench_pages_{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG + name


def drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                         autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        files = Path(tmp)
        bare = bench_bare(args, files)
        print(bare.line(), flush=True)
        if args.db in ("sqlite", "both"):
            results += bench_portal("sqlite", f"sqlite:///{files / 'portal.sqlite3'}", args,
                                    files)
        if args.db in ("postgres", "both"):
            name, url = scratch_postgres()
            try:
                results += bench_portal("postgres", url, args, files)
            finally:
                drop_postgres(name)
    print(f"\n{args.clients} clients, {args.seconds:g} s each, {APPOINTMENTS} appointments; "
          f"goal: >= {GOAL_RPS} req/s, p99 < {GOAL_P99} ms, no 5xx")
    print(bare.line())
    for result in results:
        print(f"{result.line()}  {result.rps / bare.rps:5.0%} of bare  "
              f"{'goal met' if result.meets_goal() else 'goal NOT met'}")


if __name__ == "__main__":
    main()
