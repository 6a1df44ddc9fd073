"""The production server (gunicorn's threaded worker, portal/serve.py) behind `python app.py`
and `scripts/start`: a clean stop seals running recordings as complete, and closes the call's
connections, so that a restart finds nothing to recover."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from live import LivePortal
from recording_peers import export, frames, start_recording, wait_status

from portal.models import RecordingStatus

pytestmark = [pytest.mark.live, pytest.mark.webrtc]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_clean_stop_seals_the_recording_as_complete(
        live_portal_factory: Any, peers: Any, tmp_path: Path, stop_signal: int) -> None:
    live: LivePortal = live_portal_factory()
    recording_id, clients, _publishers = start_recording(live, peers)
    time.sleep(2)  # some media, so that each track has frames
    stopped_at = time.monotonic()
    if stop_signal == signal.SIGINT:  # Ctrl+C in a terminal reaches master and worker alike
        os.killpg(live.process.pid, signal.SIGINT)
    else:  # an operator's or a service manager's stop reaches the master
        live.process.send_signal(stop_signal)
    assert live.process.wait(20) == 0, live.stderr()[-3000:]
    # The connections were closed by the server, not left to time out (the ping timeout is
    # 20 s; sealing on a busy machine takes seconds).
    assert time.monotonic() - stopped_at < 15, live.stderr()[-3000:]
    for client in clients:
        assert client.disconnected.wait(5), f"{client.label} was not disconnected"
        client.close()

    # Sealed before the process ended, not by a recovery at the next start.
    row = wait_status(live, recording_id, RecordingStatus.COMPLETE, timeout=1)
    assert row.stop_reason == "recorder_stopped"
    live.restart()
    assert wait_status(live, recording_id, RecordingStatus.COMPLETE).manifest_digest
    verified = live.flask("recordings", "verify", recording_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "is intact" in verified.stdout and "incomplete" not in verified.stdout
    _duration, streams = export(live, recording_id, tmp_path / "stopped.mkv")
    assert len(frames(streams, "video")) == 2 and len(frames(streams, "audio")) == 2
    assert all(count > 0 for count in frames(streams, "video") + frames(streams, "audio"))


def test_the_server_is_gunicorn_without_development_warnings(live_portal: LivePortal) -> None:
    log = live_portal.stderr()
    assert "Using worker: portal.serve.Worker" in log, log
    assert "development server" not in log.lower(), log
    assert "WARNING" not in log, log


def test_no_header_names_the_server_software(live_portal: LivePortal) -> None:
    """gunicorn's `Server: gunicorn` tells a scanner what to try; the worker leaves it out."""
    for path in ("/login", "/static/css/portal.css", "/socket.io/?EIO=4&transport=polling"):
        response = requests.get(f"{live_portal.base_url}{path}", timeout=10)
        assert response.status_code == 200, path
        assert "Server" not in response.headers, (path, response.headers)
