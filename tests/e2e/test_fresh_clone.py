"""A new user's first try: clone the repository into an empty folder (no .venv, no instance/),
run `scripts/start`, and sign in with the demo host's printed password. The install comes from
the committed lock (requirements/runtime.txt), so this checks what a clone of HEAD gets."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from live import CSRF_RE, free_port

pytestmark = [pytest.mark.slow]

#: A fresh install downloads every locked package (pip's cache helps on a second run).
INSTALL_TIMEOUT = 900.0
DEMO_HOST = re.compile(r"^demo host: (\S+@\S+)\s+password: (\S+)\s+\(shown once\)$", re.M)
RUNNING = re.compile(r"^Samtale is running at (http://\S+?)/?\s", re.M)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """A browser's cookie handling by hand: the session cookie is Secure, which browsers accept
    from http://127.0.0.1 (a secure context) but http.cookiejar would drop."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.opener = urllib.request.build_opener(NoRedirect)

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body)  # noqa: S310 (loopback)
        if self.cookies:
            req.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        try:
            with self.opener.open(req, timeout=30) as response:
                status, headers, text = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:  # 3xx and 4xx land here without redirects
            status, headers, text = error.code, error.headers, error.read()
        for cookie in headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        return status, headers.get("Location", ""), text.decode()


def new_user_env(port: int) -> dict[str, str]:
    """The caller's environment without this test run's settings: no PORTAL_* but the port,
    and no virtualenv, so scripts/start makes its own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PORTAL_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(Path(os.environ["VIRTUAL_ENV"]) / "bin") if "VIRTUAL_ENV" in os.environ else ""
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != venv_bin)
    env["PORTAL_PORT"] = str(port)
    return env


def wait_for(pattern: re.Pattern[str], log: Path, process: subprocess.Popen[bytes],
             timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = pattern.search(log.read_text(errors="replace"))
        if match:
            return match
        assert process.poll() is None, f"scripts/start exited {process.returncode}"
        time.sleep(0.5)
    raise AssertionError(f"no {pattern.pattern!r} within {timeout:.0f} s")


def start(clone: Path, port: int, run: int) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """scripts/start in the clone, as a new user types it; its stdout and stderr files."""
    out, err = clone / f"start-{run}.out", clone / f"start-{run}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([str(clone / "scripts" / "start")], cwd=clone,
                                   env=new_user_env(port), stdin=subprocess.DEVNULL,
                                   stdout=stdout, stderr=stderr, start_new_session=True)
    return process, out, err


def sign_in(url: str, email: str, password: str) -> None:
    """The sign-in page is served, and the e-mail and password reach a signed-in page."""
    client = Client(url)
    status, _, page = client.request("/login")
    assert status == 200, page
    assert "<form method=\"post\"" in page and 'name="password"' in page
    token = CSRF_RE.search(page)
    assert token, page
    status, location, page = client.request(
        "/login", {"csrf_token": token.group(1), "email": email, "password": password})
    assert status == 302, page
    assert location and "/login" not in location, location
    for _hop in range(3):  # the signed-in start page may pass on to the host's own page
        status, location, page = client.request(urllib.parse.urlsplit(location).path)
        if status != 302:
            break
        assert "/login" not in location and "/password" not in location, location
    assert status == 200, page
    assert "Sign out" in page  # signed in, and not sent to change the printed password


def test_scripts_start_serves_a_fresh_clone_and_the_demo_host_signs_in(
        fresh_clone: Path) -> None:
    # Before anything else ran in it (the wheel test reuses what this makes).
    assert not (fresh_clone / ".venv").exists() and not (fresh_clone / "instance").exists()
    port = free_port()
    running: list[subprocess.Popen[bytes]] = []
    try:
        for run in (1, 2):  # the first try on an empty clone, then again as the README says
            process, out, err = start(fresh_clone, port, run)
            running.append(process)

            def logs(out: Path = out, err: Path = err) -> str:
                return (f"--- stdout\n{out.read_text(errors='replace')[-3000:]}\n"
                        f"--- stderr\n{err.read_text(errors='replace')[-5000:]}")

            try:
                url = wait_for(RUNNING, out, process, INSTALL_TIMEOUT).group(1)
            except AssertionError as error:
                raise AssertionError(f"{error}\n{logs()}") from None
            assert url == f"http://127.0.0.1:{port}", logs()
            printed = out.read_text()
            if run == 1:
                demo = DEMO_HOST.search(printed)
                assert demo, logs()
                email, password = demo.groups()
                assert email == "host@samtale.test"
            else:  # the password is kept, not printed again; the hint is a command that runs
                assert "password:" not in printed, logs()
                assert (f"forgot the password? .venv/bin/flask --app app users reset-password "
                        f"{email})") in printed, logs()
            sign_in(url, email, password)
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0, logs()
    finally:
        for process in running:
            if process.poll() is None:  # a failed test: stop what it started, and all of it
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
