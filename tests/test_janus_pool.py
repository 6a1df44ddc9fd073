"""The app's Janus instances (portal/hearing/instances.py): choosing by load, backoff on an
unreachable instance (a clock moved by hand), lost and back, events with their instance. Against
the scripted stand-in (tests/fake_janus.py); a real Janus killed and restarted at the end."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_janus import FakeJanus, janus_like
from flask import Flask
from janus import running_janus
from netns import Namespace

from portal.hearing.instances import JanusPool, clients, live_hearings
from portal.hearing.janus import JanusGone


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fakes() -> Iterator[list[FakeJanus]]:
    made = [FakeJanus(), FakeJanus()]
    yield made
    for fake in made:
        fake.close()


def closed_url() -> str:
    gone = FakeJanus()
    gone.close()
    return gone.url


def pool_of(urls: list[str], **options: Any) -> JanusPool:
    options.setdefault("supervise", False)
    return JanusPool(urls, "s", timeout=1, keepalive=3600, **options)


def test_choose_takes_the_reachable_instance_with_the_fewest_live_hearings(
        fakes: list[FakeJanus]) -> None:
    load = {fakes[0].url: 3, fakes[1].url: 1}
    unreachable = closed_url()
    pool = pool_of([unreachable, fakes[0].url, fakes[1].url], load=load.get)
    assert pool.choose() == fakes[1].url
    load[fakes[1].url] = 3
    assert pool.choose() == fakes[0].url  # a tie: the first listed
    assert pool.available and pool.client(fakes[0].url).alive
    with pytest.raises(JanusGone, match="not one of this portal's"):
        pool.client("ws://127.0.0.1:1")
    pool.close()


def test_without_instances_nothing_is_available() -> None:
    pool = pool_of([])
    assert not pool.configured and not pool.available
    with pytest.raises(JanusGone, match="PORTAL_JANUS_URLS"):
        pool.choose()
    unreachable = pool_of([closed_url()])
    assert unreachable.configured and not unreachable.available
    with pytest.raises(JanusGone, match="no Janus instance is reachable"):
        unreachable.choose()


def test_an_unreachable_instance_is_tried_again_after_a_doubling_backoff() -> None:
    refusing = FakeJanus(lambda m: [{"janus": "error", "transaction": m["transaction"],
                                     "error": {"code": 403, "reason": "Unauthorized"}}])
    clock = Clock()
    pool = pool_of([refusing.url], clock=clock, retry=2, max_retry=5)
    attempts = []
    for moved in (0, 1, 1, 3.9, 0.1, 4.9, 0.1, 5):
        clock.now += moved
        with pytest.raises(JanusGone):
            pool.client(refusing.url)
        attempts.append(refusing.connections)
    # tries at +0, +2 (backoff 2), +6 (backoff 4), +11 (5: the cap), +16
    assert attempts == [1, 1, 2, 2, 3, 3, 4, 5]
    refusing.answer = janus_like
    clock.now += 5
    assert pool.client(refusing.url).alive
    pool.close()
    refusing.close()


def test_a_lost_instance_is_told_reconnected_and_told_again(fakes: list[FakeJanus]) -> None:
    fake = fakes[0]
    pool = pool_of([fake.url], retry=0.01)
    told: list[tuple[str, str]] = []
    events: list[tuple[str, int, str]] = []
    pool.listen(on_event=lambda url, handle, m: events.append((url, handle, m["janus"])),
                on_lost=lambda url: told.append(("lost", url)),
                on_back=lambda url: told.append(("back", url)))
    first = pool.client(fake.url)
    fake.push({"janus": "webrtcup", "session_id": 1111, "sender": 5})
    fake.drop()
    for thread in [t for t in threading.enumerate() if t.name.startswith("janus-reader")]:
        thread.join(timeout=5)
    assert not first.alive
    assert pool.tick() == 0.0  # told of the loss, reconnected at once: "back" is due
    assert told == [("lost", fake.url)]
    assert pool.tick() is None
    assert told == [("lost", fake.url), ("back", fake.url)]
    second = pool.client(fake.url)
    assert second is not first and second.alive and fake.connections == 2
    assert events == [(fake.url, 5, "webrtcup")]
    pool.close()


def test_a_forked_worker_starts_without_the_parents_connections(fakes: list[FakeJanus]) -> None:
    """gunicorn makes the app (and perhaps its pool) in the master, then forks the worker."""
    pool = JanusPool([fakes[0].url], "s", timeout=1, keepalive=3600)
    assert pool.client(fakes[0].url).alive
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status only
        fresh = pool._instances[fakes[0].url].client is None and pool._supervisor is None
        os._exit(0 if fresh and pool._lock.acquire(timeout=1) else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pool.client(fakes[0].url).alive  # the parent's are untouched
    pool.close()


def test_the_app_keeps_one_pool_made_from_its_settings(app: Flask) -> None:
    assert clients(app) is clients(app) and clients(app).urls == []
    app.extensions.pop("janus")
    app.config.update(JANUS_URLS=["ws://127.0.0.1:8188", "ws://127.0.0.1:8189"],
                      JANUS_API_SECRET="api", JANUS_TIMEOUT_SECONDS=3)
    pool = clients(app)
    assert pool.urls == ["ws://127.0.0.1:8188", "ws://127.0.0.1:8189"] and pool.timeout == 3
    with app.app_context():
        assert live_hearings("ws://127.0.0.1:8188") == 0
    pool.close()


@pytest.mark.webrtc
def test_a_killed_janus_is_lost_and_back_after_its_restart(tmp_path: Path,
                                                           media_namespace: Namespace) -> None:
    with running_janus(tmp_path, media_namespace) as janus, media_namespace.entered():
        pool = JanusPool([janus.url], janus.api_secret, timeout=2, keepalive=3600, retry=0.05,
                         max_retry=0.2)
        lost, back = threading.Event(), threading.Event()
        pool.listen(on_lost=lambda url: lost.set(), on_back=lambda url: back.set())
        before = pool.client(janus.url)
        janus.kill()
        assert lost.wait(5) and not back.is_set()
        janus.restart()
        assert back.wait(5)
        after = pool.client(janus.url)
        assert after is not before and after.attach() > 0
        pool.close()
