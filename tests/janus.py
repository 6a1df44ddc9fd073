"""A real Janus for tests: `running_janus(folder, namespace)` writes the portal's locked-down
configuration (portal/hearing/config.py) with fresh secrets and runs `janus -F DIR -L LOG`
inside the run's network namespace, Janus's media on the veth end 127.0.0.2 (tests/netns.py).

`JanusProcess` offers `url`, `api_secret`, `admin_key`, `settings`, `log`, `pid`, `stop()`,
`kill()` (SIGKILL), `pause()`/`resume()` (SIGSTOP/SIGCONT: a Janus that does not answer),
`restart()` (on the same port), `client(...)` (a connected JanusClient, made inside the
namespace), `portal_env()`/`portal_config()` (a live or test portal's settings for it) and
`diagnose()` (the log's tail, for a failure message). The `janus` fixture is in
conftest.py. A missing /usr/bin/janus fails the test with how to install it, never skips.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from netns import JANUS_ADDRESS, Namespace

from portal.hearing.config import JanusSettings, write_config
from portal.hearing.janus import JanusClient

JANUS = shutil.which("janus") or "/usr/bin/janus"
WHY_JANUS = (f"Janus (the hearings' media server) is not installed at {JANUS}: "
             "`apt-get install janus` (Debian, 1.1.x); .ci/run installs it.")
STARTUP_TIMEOUT = 10.0


def missing_janus() -> str | None:
    """None when Janus can run here, else the message to fail with."""
    return None if os.access(JANUS, os.X_OK) else WHY_JANUS


def free_port(namespace: Namespace) -> int:
    with namespace.entered(), socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_settings(port: int, **changes: Any) -> JanusSettings:
    """Fresh secrets, the API on 127.0.0.1:port, media pinned to the veth end."""
    settings = JanusSettings(api_secret=secrets.token_hex(16), admin_key=secrets.token_hex(16),
                             url=f"ws://127.0.0.1:{port}", interface=JANUS_ADDRESS,
                             ice_enforce_list=JANUS_ADDRESS, rtp_range=(40000, 40999))
    return replace(settings, **changes)


@dataclass
class JanusProcess:
    settings: JanusSettings
    folder: Path
    namespace: Namespace
    process: subprocess.Popen[bytes] | None = None
    clients: list[JanusClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def api_secret(self) -> str:
        return self.settings.api_secret

    @property
    def admin_key(self) -> str:
        return self.settings.admin_key

    @property
    def log(self) -> Path:
        return self.folder / "janus.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> JanusProcess:
        """Start Janus (again, on the same port and configuration) and wait until it listens."""
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.namespace.entered():
            self.process = subprocess.Popen(
                [JANUS, "-F", str(self.folder / "config"), "-L", str(self.log), "-N", "-D"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with self.namespace.entered():
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"Janus exited with {self.process.returncode}:\n"
                                       f"{self.diagnose()}")
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", self.settings.port)) == 0:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Janus did not listen within {STARTUP_TIMEOUT} s:\n"
                                       f"{self.diagnose()}")
                time.sleep(0.02)

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM (SIGKILL if Janus takes more than 5 s), waited for."""
        if self.process is None:
            return
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL, waited for: its WebSockets close without a word."""
        if self.process is not None:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self) -> None:
        """Killed (if it runs) and started again on the same port, with the same secrets."""
        self.kill()
        self.start()

    def portal_env(self) -> dict[str, str]:
        """The environment that points a live portal (tests/live.py `env=`) at this Janus."""
        return {"PORTAL_JANUS_URLS": self.url, "PORTAL_JANUS_API_SECRET": self.api_secret,
                "PORTAL_JANUS_ADMIN_KEY": self.admin_key}

    def portal_config(self) -> dict[str, Any]:
        """The same as settings of a test app (apps.make_app(..., **config))."""
        return {"JANUS_URLS": [self.url], "JANUS_API_SECRET": self.api_secret,
                "JANUS_ADMIN_KEY": self.admin_key}

    def client(self, **options: Any) -> JanusClient:
        """A JanusClient connected from inside the namespace, closed at the end."""
        made = JanusClient(self.url, self.api_secret, **options)
        with self.namespace.entered():
            made.connect()
        self.clients.append(made)
        return made

    def diagnose(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no log at {self.log})"
        return f"--- {self.log} (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:])


@contextlib.contextmanager
def running_janus(folder: Path, namespace: Namespace, **changes: Any) -> Iterator[JanusProcess]:
    """A Janus in `namespace` for the block, its configuration and log in `folder`; `changes`
    replace fields of the test settings (e.g. session_timeout=3)."""
    why = missing_janus()
    if why:
        raise RuntimeError(why)
    settings = fresh_settings(free_port(namespace), **changes)
    folder.mkdir(parents=True, exist_ok=True)
    write_config(folder / "config", settings)
    janus = JanusProcess(settings, folder, namespace)
    try:
        yield janus.start()
    finally:
        for made in janus.clients:
            made.close()
        janus.stop()
