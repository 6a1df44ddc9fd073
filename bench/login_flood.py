"""A login flood against the default install (SQLite, production argon2 parameters): how long
do other people's requests take while it runs?

The portal runs as it ships (`python app.py`: gunicorn's threaded worker) on a fresh SQLite
database, behind a pretend proxy (PORTAL_PROXIES=1), so that each flooding client can claim an
address of its own with X-Forwarded-For and stay under the per-address limit, as a botnet
would. The flood signs in to unknown accounts with wrong passwords (each costs a full argon2
hash; an account's own throttle would cut the hashing for a known one short). Meanwhile a
signed-in host reads their appointment list (a page that reads the database) and a load
balancer polls /healthz, one request after another; their latency is measured first with no
flood (the baseline, in the same run) and then during the flood.

Everything goes to 127.0.0.1; the flood is bounded in count and time and stops by itself.

Run: .venv/bin/python bench/login_flood.py [--clients 24] [--attempts 3] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.server import launch, stop  # noqa: E402 - after the path is set

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
PASSWORD = "a long enough bench passphrase"  # noqa: S105
SECRET = "bench-secret-key-0123456789abcdef"  # noqa: S105


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(db_path: Path, files: Path) -> None:
    """Migrate a fresh database and add one host (in a child process: no app left here)."""
    code = f"""
from flask_migrate import upgrade
from portal import create_app
from portal.accounts import services
from portal.extensions import db
from portal.models import Role
app = create_app({{"SQLALCHEMY_DATABASE_URI": "sqlite:///{db_path}", "SECRET_KEY": "{SECRET}",
                  "RECORDINGS_DIR": "{files}/recordings", "RECORDING_KEYS_DIR": "{files}"}})
with app.app_context():
    upgrade()
    user, _ = services.create_user("host@bench.test", "Bench Host", Role.HOST, "{PASSWORD}")
    user.must_change_password = False
    db.session.commit()
"""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,  # noqa: S603
                   capture_output=True, timeout=120)


def start(db_path: Path, files: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": f"sqlite:///{db_path}", "PORTAL_SECRET_KEY": SECRET,
        "PORTAL_MFA_KEY": SECRET, "PORTAL_COOKIE_SECURE": "false", "PORTAL_HOST": "127.0.0.1",
        "PORTAL_PORT": str(port), "PORTAL_PROXIES": "1",
        # Behind a proxy the portal needs its public address (invite links are built from it).
        "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "PORTAL_RECORDINGS_DIR": str(files / "recordings"),
        "PORTAL_RECORDING_KEYS_DIR": str(files), "PYTHONUNBUFFERED": "1",
    })
    return launch([sys.executable, str(ROOT / "app.py")], env, port=port,
                  log=files / "server.log", timeout=30)


def form(http: requests.Session, url: str) -> str:
    page = http.get(url, timeout=30)
    match = CSRF_RE.search(page.text)
    assert match, f"no form at {url}: {page.status_code}"
    return match.group(1)


def signed_in_host(base: str) -> requests.Session:
    http = requests.Session()
    token = form(http, f"{base}/login")
    response = http.post(f"{base}/login", data={"csrf_token": token, "email": "host@bench.test",
                                                 "password": PASSWORD},
                         allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.status_code
    return http


def measure(base: str, host: requests.Session, seconds: float,
            stop: threading.Event | None = None) -> dict[str, list[float]]:
    """Latency (ms) of the host's page and of /healthz, one request after another."""
    found: dict[str, list[float]] = {"page": [], "healthz": [], "errors": []}
    plain = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        for name, http, path in (("page", host, "/appointments/"),
                                 ("healthz", plain, "/healthz")):
            began = time.perf_counter()
            status = http.get(f"{base}{path}", timeout=60, allow_redirects=False).status_code
            found[name].append((time.perf_counter() - began) * 1000)
            if status != 200:
                found["errors"].append(status)
        time.sleep(0.02)
    return found


def flood(base: str, clients: int, attempts: int, workers: int) -> dict[int, int]:
    """`clients` addresses, each `attempts` wrong sign-ins to unknown accounts."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def one_client(n: int) -> None:
        address = f"127.{n // 65536 % 256}.{n // 256 % 256}.{n % 256 or 1}"
        http = requests.Session()
        http.headers["X-Forwarded-For"] = address
        token = form(http, f"{base}/login")
        for i in range(attempts):
            status = http.post(f"{base}/login", timeout=120, allow_redirects=False, data={
                "csrf_token": token, "email": f"nobody{n}-{i}@bench.test",
                "password": f"wrong password {i}"}).status_code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one_client, range(clients)))
    return statuses


def p(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(label: str, found: dict[str, list[float]]) -> None:
    for name in ("page", "healthz"):
        values = found[name]
        print(f"{label:9} {name:8} n={len(values):4}  p50 {p(values, 50):8.1f} ms  "
              f"p99 {p(values, 99):8.1f} ms  max {max(values):8.1f} ms")
    if found["errors"]:
        print(f"{label:9} errors: {found['errors']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=24, help="flooding addresses")
    parser.add_argument("--attempts", type=int, default=3, help="sign-ins per address")
    parser.add_argument("--workers", type=int, default=8, help="flooding threads at once")
    parser.add_argument("--baseline-seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        files = Path(tmp)
        db_path = files / "portal.sqlite3"
        prepare(db_path, files)
        port = free_port()
        server = start(db_path, files, port)
        base = f"http://127.0.0.1:{port}"
        try:
            host = signed_in_host(base)
            measure(base, host, 1)  # warm up
            baseline = measure(base, host, args.baseline_seconds)
            done = threading.Event()
            during: dict[str, list[float]] = {}
            reader = threading.Thread(target=lambda: during.update(
                measure(base, host, 300, stop=done)))
            began = time.monotonic()
            reader.start()
            statuses = flood(base, args.clients, args.attempts, args.workers)
            took = time.monotonic() - began
            done.set()
            reader.join()
        finally:
            stop(server)
        print(f"flood: {args.clients} addresses x {args.attempts} wrong sign-ins, "
              f"{args.workers} at once: {took:.1f} s, answers {statuses}")
        report("baseline", baseline)
        report("flood", during)
        for name in ("page", "healthz"):
            ratio = p(during[name], 99) / p(baseline[name], 99)
            print(f"p99 ratio flood/baseline, {name}: {ratio:.1f}x")
        worst = max(p(during["page"], 99), p(during["healthz"], 99))
        print(f"target: other requests' p99 under 200 ms during the flood: "
              f"{'met' if worst < 200 else 'NOT met'} ({worst:.0f} ms)")


if __name__ == "__main__":
    main()
