"""Start a server for a benchmark (the portal or a bare baseline) and stop it, by its process
group: gunicorn's master and worker go together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def launch(argv: list[str], env: dict[str, str], *, port: int, log: Path,
           health: str = "/healthz", timeout: float = 60) -> subprocess.Popen[bytes]:
    """Start argv and wait until http://127.0.0.1:port{health} answers; its output goes to
    log. Exits with the log's end if the server dies or does not answer in time."""
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,  # noqa: S603
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {log}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=1):  # noqa: S310
                return process
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise SystemExit(f"the server did not start; see {log}:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group (a clean stop), SIGKILL if it has not stopped in 20 s."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
