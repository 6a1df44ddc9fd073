"""Scale-out: two web workers on one PostgreSQL database pass signaling through Redis.

The host talks to one worker and the guest to the other, as behind a load balancer; every
lobby update, admission, relayed offer and chat line must cross from one to the other.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apps import pg_admin, pg_url
from live import (
    CHEAP_ARGON2,
    CSRF_RE,
    LivePortal,
    _server_env,
    _wait_until_healthy,
    free_port,
)

from portal import PROJECT_ROOT, create_app

pytestmark = [pytest.mark.live]

REDIS_URL = "redis://127.0.0.1:6379/0"


def _start_worker(database_url: str, channel: str, workdir: Path) -> LivePortal:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    files = workdir / f"files-{port}"  # shared storage is not under test: a folder each
    setup_app = create_app({"TESTING": True, "SECRET_KEY": "live-test-secret-key-0123456789abcdef",
                            "SQLALCHEMY_DATABASE_URI": database_url, "BASE_URL": base_url,
                            "RATELIMIT_STORAGE_URI": "memory://",
                            "RECORDINGS_DIR": str(files / "recordings"),
                            "RECORDING_KEYS_DIR": str(files), **CHEAP_ARGON2})
    stderr_path = workdir / f"worker-{port}.stderr"
    env = _server_env(database_url, port, 5, {"PORTAL_SOCKETIO_MESSAGE_QUEUE": REDIS_URL,
                                              "PORTAL_SOCKETIO_CHANNEL": channel,
                                              "PORTAL_RECORDINGS_DIR": str(files / "recordings"),
                                              "PORTAL_RECORDING_KEYS_DIR": str(files)})
    with stderr_path.open("wb") as err:
        process = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "app.py")],
                                   cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=err, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # master and worker stop together
    worker = LivePortal(base_url, database_url, 5, process, stderr_path, setup_app, env)
    _wait_until_healthy(worker)
    return worker


@pytest.fixture
def two_workers(pg_template: str, tmp_path: Path) -> Iterator[tuple[LivePortal, LivePortal]]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:  # fail loudly: never skip the scale-out test
        pytest.fail(f"Redis is required for this test ({REDIS_URL}): {exc}", pytrace=False)
    dbname = f"samtale_scale_{uuid.uuid4().hex[:8]}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{pg_template}"')
    database_url = pg_url(dbname)
    channel = f"samtale-test-{uuid.uuid4().hex[:8]}"
    a = _start_worker(database_url, channel, tmp_path)
    b = _start_worker(database_url, channel, tmp_path)
    try:
        yield a, b
    finally:
        for worker in (a, b):
            worker.stop()
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_signaling_crosses_between_workers_through_redis(
        two_workers: tuple[LivePortal, LivePortal]) -> None:
    a, b = two_workers
    host = a.create_host()
    consult = a.book_consult(host, guests=["Pat on another worker"])
    invite = consult.guest
    host_socket = a.host_client(consult)
    host_id = host_socket.wait_for("welcome")["self"]["id"]
    guest_socket = b.guest_client(invite)
    assert guest_socket.wait_for("welcome")["state"] == "invited"

    guest_socket.emit("lobby:join", {})
    assert guest_socket.wait_for("lobby:state")["state"] == "waiting"
    waiting = host_socket.wait_for("lobby:list", lambda p: p["waiting"])
    assert [w["id"] for w in waiting["waiting"]] == [invite.participant_id]

    host_socket.emit("lobby:admit", {"participant_id": invite.participant_id})
    assert guest_socket.wait_for("lobby:state")["state"] == "admitted"

    host_socket.emit("call:join", {"resume": False})
    host_socket.wait_for("call:joined")
    guest_socket.emit("call:join", {"resume": False})
    assert [p["name"] for p in guest_socket.wait_for("call:joined")["peers"]] == [host.name]
    joined = host_socket.wait_for("call:peer-joined")
    assert joined["peer"]["id"] == invite.participant_id

    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}
    host_socket.emit("signal", {"to": invite.participant_id, "description": offer})
    relayed = guest_socket.wait_for("signal")
    assert relayed == {"from": host_id, "description": offer}
    guest_socket.emit("signal", {"to": host_id, "candidate": None})
    assert host_socket.wait_for("signal") == {"from": invite.participant_id, "candidate": None}

    guest_socket.emit("chat:send", {"text": "Hello from worker B"})
    assert host_socket.wait_for("chat:message")["text"] == "Hello from worker B"

    host_socket.emit("call:end", {})
    guest_socket.wait_for("call:ended")


def _post_form(session: Any, base_url: str, page: str, action: str) -> None:
    """Post a confirmation form of page (as the host's browser would)."""
    token = CSRF_RE.search(session.get(base_url + page, timeout=10).text)
    assert token is not None, f"no form on {page}"
    answer = session.post(base_url + action, data={"csrf_token": token.group(1)}, timeout=10)
    assert answer.status_code < 400, answer.text[:300]


def test_a_stopped_link_and_a_sign_out_close_sockets_on_the_other_worker(
        two_workers: tuple[LivePortal, LivePortal]) -> None:
    """The host acts through worker A; the sockets it concerns sit on worker B. Each is told
    why and closed at once, without sending anything first."""
    a, b = two_workers
    host = a.create_host()
    consult = a.book_consult(host, guests=["Pat on worker B"])
    invite = consult.guest
    guest_socket = b.guest_client(invite)
    guest_socket.wait_for("welcome")
    host_on_b = b.host_client(consult, cookie=a.login_cookie(host))
    host_on_b.wait_for("welcome")
    page = f"/appointments/{consult.appointment_id}"
    with a.login_session(host) as browser:
        _post_form(browser, a.base_url, page, f"{page}/guests/{invite.participant_id}/revoke")
        assert guest_socket.wait_for("error")["code"] == "ended"
        assert guest_socket.disconnected.wait(5), "the guest's socket on worker B stayed open"
        assert host_on_b.connected

        _post_form(browser, a.base_url, page, "/logout")
    assert host_on_b.wait_for("error")["code"] == "unauthorized"
    assert host_on_b.disconnected.wait(5), "the host's socket on worker B stayed open"
