"""The Janus client against real Janus (tests/janus.py, in the run's network namespace): a
session that drives VideoRoom, Janus's error answers, keepalive past the session timeout, a
request Janus does not answer, and a Janus killed under a waiting request."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from janus import JanusProcess, running_janus
from netns import Namespace

from portal.hearing.janus import JanusError, JanusGone, JanusTimeout

pytestmark = pytest.mark.webrtc


def janus_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("janus-")]


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.closed: list[str] = []
        self.closed_once = threading.Event()
        self.event_came = threading.Event()

    def on_event(self, handle: int, message: dict[str, Any]) -> None:
        self.events.append((handle, message))
        self.event_came.set()

    def on_close(self, reason: str) -> None:
        self.closed.append(reason)
        self.closed_once.set()


def test_a_session_drives_videoroom(janus: JanusProcess) -> None:
    seen = Seen()
    portal = janus.client(on_event=seen.on_event, on_close=seen.on_close)
    handle = portal.attach()
    created = portal.request(handle, {"request": "create", "room": 101,
                                      "admin_key": janus.admin_key, "secret": "room-secret",
                                      "publishers": 16, "permanent": False})
    assert created == {"videoroom": "created", "room": 101, "permanent": False}
    joined, jsep = portal.message(handle, {"request": "join", "ptype": "publisher", "room": 101,
                                           "id": 7, "display": "7"})
    assert (joined["videoroom"], joined["id"], jsep) == ("joined", 7, None)
    listed = portal.request(handle, {"request": "listparticipants", "room": 101})
    assert [p["id"] for p in listed["participants"]] == [7]
    portal.detach(handle)
    # Janus says "detached" on its own after answering the detach: wait for it, not a timer.
    assert seen.event_came.wait(10), "no detached event"
    portal.request(portal.attach(), {"request": "destroy", "room": 101, "secret": "room-secret"})
    portal.close()
    assert [m["janus"] for _, m in seen.events] == ["detached"]
    assert seen.events[0][0] == handle
    assert seen.closed == [] and janus_threads() == []


def test_janus_errors_carry_janus_codes(janus: JanusProcess) -> None:
    portal = janus.client()
    handle = portal.attach()
    with pytest.raises(JanusError) as no_room:
        portal.message(handle, {"request": "join", "ptype": "publisher", "room": 999})
    assert (no_room.value.code, no_room.value.reason) == (426, "No such room (999)")
    with pytest.raises(JanusError) as no_handle:
        portal.request(12345, {"request": "list"})
    assert no_handle.value.code == 459  # JANUS_ERROR_HANDLE_NOT_FOUND
    assert portal.alive
    portal.close()


def test_keepalive_keeps_a_session_past_the_session_timeout(tmp_path: Path,
                                                            media_namespace: Namespace) -> None:
    """Janus ends a session silent for session_timeout (3 s here, checked every 2 s): the one
    that keeps alive every second lives on, the silent one is told its session ended."""
    with running_janus(tmp_path, media_namespace, session_timeout=3) as janus:
        kept, left = Seen(), Seen()
        keeping = janus.client(keepalive=1.0, on_close=kept.on_close)
        silent = janus.client(keepalive=3600, on_close=left.on_close)
        assert left.closed_once.wait(10), "Janus never timed the silent session out"
        assert left.closed == ["Janus timed the session out"] and not silent.alive
        assert keeping.alive and kept.closed == []
        keeping.request(keeping.attach(), {"request": "list"})


def test_a_request_janus_does_not_answer_times_out(tmp_path: Path,
                                                   media_namespace: Namespace) -> None:
    with running_janus(tmp_path, media_namespace) as janus:
        seen = Seen()
        portal = janus.client(on_event=seen.on_event, on_close=seen.on_close)
        handle = portal.attach()
        janus.pause()  # SIGSTOP: the socket stays open, nobody answers
        try:
            with pytest.raises(JanusTimeout, match="within 0.3 s"):
                portal.request(handle, {"request": "list"}, timeout=0.3)
        finally:
            janus.resume()
        assert portal.alive
        # The late answer is dropped; the client goes on.
        assert portal.request(handle, {"request": "list"})["videoroom"] == "success"
        assert seen.events == [] and seen.closed == []


def test_a_killed_janus_fails_the_waiting_request_and_calls_on_close(
        tmp_path: Path, media_namespace: Namespace) -> None:
    with running_janus(tmp_path, media_namespace) as janus:
        seen = Seen()
        portal = janus.client(on_close=seen.on_close)
        handle = portal.attach()
        failures: list[BaseException] = []

        def waiting() -> None:
            try:
                portal.message(handle, {"request": "join", "ptype": "publisher", "room": 1},
                               timeout=30)
            except JanusError as exc:
                failures.append(exc)

        janus.pause()  # so that the request is still waiting when Janus dies
        thread = threading.Thread(target=waiting)
        thread.start()
        janus.kill()
        thread.join(timeout=5)
        assert [type(f) for f in failures] == [JanusGone]
        assert seen.closed_once.wait(5) and len(seen.closed) == 1
        assert "lost" in seen.closed[0] or "closed" in seen.closed[0]
        assert not portal.alive
        for thread in janus_threads():
            thread.join(timeout=5)
        assert janus_threads() == []

        janus.restart()  # the same port and secrets: a new client works
        again = janus.client()
        assert again.attach() > 0
