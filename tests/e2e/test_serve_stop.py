"""A stop is not held up by a connection that no longer answers (portal/serve.py, `_leave`).

A Socket.IO connection holds one of gunicorn's threads. When the worker closes it at a stop,
that thread waits for the other end's reply to the close; a phone that dropped off the network
never sends one. gunicorn's drain waited for such threads, so the worker stayed up until the
master killed it after its 30 s graceful timeout (and a service manager's stop waited that
long). The worker now gives the replies CLOSE_WAIT s and cuts the connections still open.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests
import websocket
from live import LivePortal

from portal import serve

pytestmark = pytest.mark.live


def test_connections_that_never_answer_do_not_hold_up_the_stop(
        live_portal: LivePortal) -> None:
    # A polling session with no request open: engine.io's own disconnect() waited for it to
    # take the close, without end.
    polling = requests.get(f"{live_portal.base_url}/socket.io/?EIO=4&transport=polling",
                           timeout=10)
    assert polling.status_code == 200 and polling.text.startswith("0"), polling.text
    url = live_portal.base_url.replace("http://", "ws://")
    silent = websocket.create_connection(f"{url}/socket.io/?EIO=4&transport=websocket",
                                         timeout=10)
    assert silent.recv().startswith("0")  # engine.io's open packet: the server holds it now
    # From here on it reads nothing and answers nothing, as a phone gone out of coverage.
    stopped_at = time.monotonic()
    live_portal.process.send_signal(signal.SIGTERM)
    assert live_portal.process.wait(20) == 0, live_portal.stderr()[-3000:]
    took = time.monotonic() - stopped_at
    # Before: the master's graceful timeout (30 s), then SIGKILL.
    assert took < serve.CLOSE_WAIT + 8, (took, live_portal.stderr()[-3000:])
    silent.close()
