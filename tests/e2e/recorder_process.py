"""The hearings' recorder as its own process for live tests: `flask --app app recorder run`
against a live portal's database, keys and files (tests/live.py), in the run's network
namespace when started from a test inside it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

from live import LivePortal

from portal import PROJECT_ROOT


class RecorderProcess:
    """`flask --app app recorder run` against the live portal's database and files."""

    def __init__(self, live: LivePortal, log: Path) -> None:
        self.live = live
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "flask", "--app", "app", "recorder", "run"],
                cwd=PROJECT_ROOT, env={**live.env, "PORTAL_RECORDER_POLL_MS": "200"},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def ready(self, timeout: float = 60) -> RecorderProcess:
        """Wait until it says it records (its start imports the app and aiortc: seconds on a
        busy machine)."""
        deadline = time.monotonic() + timeout
        while "recorder: recording hearings on" not in self.output():
            assert self.process.poll() is None, f"the recorder exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"the recorder did not start:\n{self.output()}"
            time.sleep(0.1)
        return self

    def stop(self) -> int:
        """SIGTERM, as an operator's clean stop: it seals what it records."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
