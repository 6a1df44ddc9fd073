"""The Janus client against a scripted stand-in (tests/fake_janus.py): the answer rules, late
and unasked messages, timeouts, a lost socket, keepalive, and that no thread outlives it. The
same behaviour against real Janus: test_janus_live.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fake_janus import SESSION, FakeJanus, janus_like

from portal.hearing.janus import JanusClient, JanusError, JanusGone, JanusTimeout


def silent_to(kind: str) -> Any:
    """Answers like Janus, but never to messages of this kind."""
    return lambda message: [] if message["janus"] == kind else janus_like(message)


def janus_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("janus-")]


@pytest.fixture
def fake() -> Iterator[FakeJanus]:
    server = FakeJanus()
    yield server
    server.close()


class Recorder:
    """on_event and on_close, kept."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.closed: list[str] = []
        self.closed_once = threading.Event()

    def on_event(self, handle: int, message: dict[str, Any]) -> None:
        self.events.append((handle, message))

    def on_close(self, reason: str) -> None:
        self.closed.append(reason)
        self.closed_once.set()


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


@pytest.fixture
def client(fake: FakeJanus, seen: Recorder) -> Iterator[JanusClient]:
    made = JanusClient(fake.url, "the-secret", timeout=2.0, keepalive=3600,
                       on_event=seen.on_event, on_close=seen.on_close)
    made.connect()
    yield made
    made.close()
    assert janus_threads() == []


def test_every_request_carries_the_secret_the_session_and_its_own_transaction(
        client: JanusClient, fake: FakeJanus) -> None:
    handle = client.attach()
    assert handle == 2222 and client.session_id == SESSION and client.alive
    assert client.request(handle, {"request": "exists", "room": 5}) == {
        "request": "exists", "room": 5}
    data, jsep = client.message(handle, {"async": True, "request": "join"},
                                jsep={"type": "offer", "sdp": "v=0"})
    assert data == {"async": True, "request": "join"} and jsep == {"type": "offer", "sdp": "v=0"}
    client.trickle(handle, {"candidate": "c", "sdpMid": "0", "sdpMLineIndex": 0})
    client.trickle(handle, None)
    client.detach(handle)
    sent = fake.received
    assert [m["janus"] for m in sent] == ["create", "attach", "message", "message", "trickle",
                                          "trickle", "detach"]
    assert all(m["apisecret"] == "the-secret" for m in sent)
    assert all(m["session_id"] == SESSION for m in sent[1:])
    assert all(m["handle_id"] == handle for m in sent[2:])
    assert len({m["transaction"] for m in sent}) == len(sent)
    assert sent[5]["candidate"] == {"completed": True}


def test_a_janus_error_and_a_plugin_error_raise_with_their_codes(fake: FakeJanus,
                                                                 client: JanusClient) -> None:
    def answer(message: dict[str, Any]) -> list[dict[str, Any]]:
        tx = message["transaction"]
        if message["janus"] != "message":
            return janus_like(message)
        if message["body"].get("request") == "core":
            return [{"janus": "error", "transaction": tx,
                     "error": {"code": 458, "reason": "No such session"}}]
        return [{"janus": "ack", "transaction": tx},
                {"janus": "event", "transaction": tx, "sender": 2222, "plugindata": {
                    "plugin": "janus.plugin.videoroom",
                    "data": {"videoroom": "event", "error_code": 426, "error": "No such room"}}}]

    fake.answer = answer
    with pytest.raises(JanusError) as core:
        client.request(2222, {"request": "core"})
    assert (core.value.code, core.value.reason) == (458, "No such session")
    with pytest.raises(JanusError) as plugin:
        client.message(2222, {"request": "join"})
    assert (plugin.value.code, plugin.value.reason) == (426, "No such room")
    assert not isinstance(plugin.value, JanusGone | JanusTimeout)
    assert client.alive


def test_unasked_messages_go_to_on_event_and_late_answers_nowhere(
        fake: FakeJanus, client: JanusClient, seen: Recorder) -> None:
    held: list[dict[str, Any]] = []

    def hold(message: dict[str, Any]) -> list[dict[str, Any]]:
        held.append(message)
        return []

    fake.answer = hold
    with pytest.raises(JanusTimeout, match="did not answer message within 0.2 s"):
        client.request(2222, {"request": "slow"}, timeout=0.2)
    assert client.alive  # a timeout alone does not end the client
    fake.answer = janus_like
    for reply in janus_like(held[0]):  # the answer comes after all
        fake.push(reply)
    fake.push({"janus": "webrtcup", "session_id": SESSION, "sender": 2222})
    fake.push("not json")
    fake.push({"janus": "event", "session_id": SESSION, "sender": 2222,
               "plugindata": {"data": {"videoroom": "talking", "id": 3}}})
    assert client.request(2222, {"request": "after"}) == {"request": "after"}
    assert [(h, m["janus"]) for h, m in seen.events] == [(2222, "webrtcup"), (2222, "event")]


def test_on_event_that_fails_does_not_stop_the_reader(fake: FakeJanus) -> None:
    def broken(handle: int, message: dict[str, Any]) -> None:
        raise RuntimeError("a bug in the caller")

    made = JanusClient(fake.url, "s", timeout=2, keepalive=3600, on_event=broken)
    made.connect()
    fake.push({"janus": "hangup", "session_id": SESSION, "sender": 1})
    assert made.attach() == 2222
    made.close()


def test_a_lost_socket_fails_what_waits_and_tells_on_close_once(
        fake: FakeJanus, client: JanusClient, seen: Recorder) -> None:
    fake.answer = silent_to("message")
    failures: list[BaseException] = []

    def waiting() -> None:
        try:
            client.message(2222, {"request": "join"}, timeout=30)
        except JanusError as exc:
            failures.append(exc)

    thread = threading.Thread(target=waiting)
    thread.start()
    fake.wait_for("message")
    fake.drop()
    thread.join(timeout=5)
    assert len(failures) == 1 and isinstance(failures[0], JanusGone)
    assert seen.closed_once.wait(5)
    assert len(seen.closed) == 1 and "lost" in seen.closed[0]
    assert not client.alive
    with pytest.raises(JanusGone):
        client.attach()
    for thread in janus_threads():
        thread.join(timeout=5)
    assert janus_threads() == []


def test_a_websocket_close_and_a_session_timeout_end_the_client(seen: Recorder) -> None:
    for end in ("close", "timeout"):
        fake = FakeJanus()
        made = JanusClient(fake.url, "s", timeout=2, keepalive=3600, on_close=seen.on_close)
        made.connect()
        if end == "close":
            fake.close_websocket()
        else:
            fake.push({"janus": "timeout", "session_id": SESSION})
        assert seen.closed_once.wait(5)
        seen.closed_once.clear()
        assert not made.alive
        made.close()
        fake.close()
    assert seen.closed == ["Janus closed the WebSocket", "Janus timed the session out"]


def test_keepalive_is_sent_every_interval(fake: FakeJanus) -> None:
    made = JanusClient(fake.url, "s", timeout=2, keepalive=0.05)
    made.connect()
    sent = fake.wait_for("keepalive", count=3)
    assert all(m["session_id"] == SESSION and m["apisecret"] == "s" for m in sent)
    made.close()


def test_an_unanswered_keepalive_ends_the_client(fake: FakeJanus, seen: Recorder) -> None:
    fake.answer = silent_to("keepalive")
    made = JanusClient(fake.url, "s", timeout=0.2, keepalive=0.05, on_close=seen.on_close)
    made.connect()
    assert seen.closed_once.wait(5)
    assert seen.closed == ["Janus did not answer a keepalive within 0.2 s"]
    made.close()


def test_close_is_idempotent_destroys_the_session_and_does_not_call_on_close(
        fake: FakeJanus, seen: Recorder) -> None:
    made = JanusClient(fake.url, "s", timeout=2, keepalive=3600, on_close=seen.on_close)
    made.connect()
    made.close()
    made.close()
    assert fake.wait_for("destroy")
    assert not made.alive and seen.closed == [] and janus_threads() == []
    with pytest.raises(JanusGone):
        made.attach()


def test_close_from_on_close_does_not_deadlock(fake: FakeJanus) -> None:
    done = threading.Event()
    made: JanusClient

    def closing(reason: str) -> None:
        made.close()
        done.set()

    made = JanusClient(fake.url, "s", timeout=2, keepalive=3600, on_close=closing)
    made.connect()
    fake.drop()
    assert done.wait(5)


def test_unreachable_janus_and_a_refused_session_raise() -> None:
    fake = FakeJanus()
    url = fake.url
    fake.close()
    with pytest.raises(JanusGone, match="cannot reach Janus"):
        JanusClient(url, "s", timeout=1).connect()

    refusing = FakeJanus(lambda m: [{"janus": "error", "transaction": m["transaction"],
                                     "error": {"code": 403, "reason": "Unauthorized request"}}])
    with pytest.raises(JanusError) as refused:
        JanusClient(refusing.url, "wrong", timeout=1).connect()
    assert refused.value.code == 403
    refusing.close()
    assert janus_threads() == []


def test_a_silent_server_times_the_connect_out() -> None:
    silent = FakeJanus(silent_to("create"))
    made = JanusClient(silent.url, "s", timeout=0.2)
    with pytest.raises(JanusTimeout):
        made.connect()
    assert not made.alive and janus_threads() == []
    silent.close()
