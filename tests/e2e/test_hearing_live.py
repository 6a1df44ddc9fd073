"""Hearings through a real Janus, without a browser: the portal runs as `python app.py`
(tests/live.py) with a Janus of its own (tests/janus.py), both in the run's network namespace;
aiortc peers (tests/hearing_peers.py) act as the participants' browsers over python-socketio.
Each publishes small VP8 video and Opus audio and counts the frames it decodes from the
others."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hearing_peers import HearingPeer, hearing_peers
from janus import JanusProcess
from live import (
    WAIT,
    Consult,
    LivePortal,
    SignalClient,
    _wait_until_healthy,
    free_port,
    running,
    self_id,
)

from portal import PROJECT_ROOT
from portal.models import Kind, RecordingPolicy

pytestmark = [pytest.mark.live, pytest.mark.webrtc]

GRACE_SECONDS = 10
REDIS_SERVER = shutil.which("redis-server")
#: Janus is restarted in a test: its media comes back within this.
RECOVERY = 30.0


@pytest.fixture(scope="module")
def hearing_portal(request: pytest.FixtureRequest, sqlite_template: Any,
                   tmp_path_factory: pytest.TempPathFactory,
                   janus: JanusProcess) -> Iterator[LivePortal]:
    """One live portal for the module, driving the module's Janus."""
    env = {**janus.portal_env(), "PORTAL_JANUS_RETRY_SECONDS": "1"}
    with running(request, sqlite_template, tmp_path_factory.mktemp("hearing"),
                 grace_seconds=GRACE_SECONDS, env=env) as live:
        yield live
        live.close_clients()


@pytest.fixture
def peers() -> Iterator[Callable[[SignalClient], HearingPeer]]:
    with hearing_peers() as make:
        yield make


def book_hearing(live: LivePortal, guests: int) -> Consult:
    hearing = live.book_consult(live.create_host(), [f"Party {i}" for i in range(guests)],
                                title="Live hearing", kind=Kind.HEARING,
                                policy=RecordingPolicy.OFF)
    live.in_session(hearing.appointment_id)
    return hearing


def admitted(live: LivePortal, judge: SignalClient, invite: Any, label: str) -> SignalClient:
    guest = live.guest_client(invite, label=label)
    guest_id = self_id(guest)
    guest.emit("lobby:join", {})
    assert guest.wait_for("lobby:state") == {"state": "waiting"}
    judge.wait_for("lobby:list", lambda p: guest_id in [w["id"] for w in p["waiting"]])
    judge.emit("lobby:admit", {"participant_id": guest_id})
    assert guest.wait_for("lobby:state")["state"] == "admitted"
    return guest


def join(client: SignalClient, *, resume: bool = False) -> None:
    """call:join, then the portal's `hearing:media {ready}`: publish now."""
    client.emit("call:join", {"resume": resume, "declaration": True})
    client.wait_for("call:joined")
    assert client.wait_for("hearing:media", timeout=WAIT * 2) == {"state": "ready"}


def into_hearing(live: LivePortal, hearing: Consult,
                 peers: Callable[[SignalClient], HearingPeer]) -> list[HearingPeer]:
    """The judge and every guest in the call, each publishing; returns their peers."""
    judge = live.host_client(hearing, label="judge")
    assert judge.wait_for("welcome")["media"] == "janus"
    made = [peers(judge)]
    join(judge)
    for i, invite in enumerate(hearing.guests):
        guest = admitted(live, judge, invite, f"party{i}")
        made.append(peers(guest))
        join(guest)
    for peer in made:
        peer.publish()
    return made


def ids(peers: list[HearingPeer]) -> list[int]:
    return [int(peer.client.id) for peer in peers]


def others(peer: HearingPeer, everyone: list[HearingPeer]) -> set[int]:
    return {int(p.client.id) for p in everyone if p is not peer}


def full(sources: set[int]) -> set[tuple[int, str]]:
    return {(who, kind) for who in sources for kind in ("audio", "video")}


def test_everyone_publishes_and_receives_everyone_else(
        hearing_portal: LivePortal, janus: JanusProcess,
        peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=3)
    everyone = into_hearing(live, hearing, peers)
    assert live.get_appointment(hearing.appointment_id).janus_url == janus.url  # pinned
    for peer in everyone:
        peer.wait_offer(lambda o, p=peer: {(s["participant_id"], s["kind"])
                                           for s in o["streams"]} == full(others(p, everyone)))
    for peer in everyone:
        received = peer.wait_frames(others(peer, everyone), at_least=15)
        own = int(peer.client.id)
        assert not [k for k in received if k[0] == own], "a participant received itself"
    # Nobody decoded more of anyone than that one sent: every frame was told apart right.
    sent = {int(peer.client.id): peer.sent() for peer in everyone}
    for peer in everyone:
        for (who, kind), count in peer.received().items():
            assert count <= sent[who][kind] + 5, (peer.label, who, kind, count, sent[who])
    # Everyone speaks (a tone): Janus's audio levels name an active speaker to the call.
    speaker = everyone[0].client.wait_for("hearing:speaker", timeout=15)
    assert speaker["participant_id"] in ids(everyone)
    for peer in everyone:
        peer.client.assert_none("error", within=0)
        assert peer.failures == []
    # Layers: a feed received; one that is not is unknown.
    judge = everyone[0]
    judge.client.emit("hearing:layer", {"participant_id": ids(everyone)[1], "substream": 0})
    judge.client.emit("hearing:layer", {"participant_id": ids(everyone)[0], "substream": 1})
    err = judge.client.wait_for("error")
    assert (err["code"], err["event"]) == ("unknown_peer", "hearing:layer")
    judge.client.assert_none("error", within=0.3)


def streams_of(offer: dict[str, Any]) -> set[tuple[int, str]]:
    return {(s["participant_id"], s["kind"]) for s in offer["streams"]}


def test_who_stops_publishing_or_leaves_is_renegotiated_away(
        hearing_portal: LivePortal, peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    everyone = into_hearing(live, book_hearing(live, guests=2), peers)
    for peer in everyone:
        peer.wait_frames(others(peer, everyone))
    stay, leaver = everyone[:2], everyone[2]
    leaver_id = int(leaver.client.id)
    # Unpublished: out of the others' subscriptions; it still receives them.
    marks = [peer.mark() for peer in stay]
    leaver.client.emit("hearing:unpublish", {})
    for peer, mark in zip(stay, marks, strict=True):
        rest = others(peer, everyone) - {leaver_id}
        peer.wait_offer(lambda o, rest=rest: streams_of(o) == full(rest), after=mark)
    leaver.wait_frames(others(leaver, everyone))
    # Published again on a fresh connection: back in.
    marks = [peer.mark() for peer in stay]
    leaver.publish()
    for peer, mark in zip(stay, marks, strict=True):
        peer.wait_offer(lambda o, p=peer: streams_of(o) == full(others(p, everyone)),
                        after=mark)
        peer.wait_frames(others(peer, everyone))
    marks = [peer.mark() for peer in stay]
    leaver.client.emit("call:leave", {})
    for peer, mark in zip(stay, marks, strict=True):
        rest = others(peer, everyone) - {leaver_id}
        peer.wait_offer(lambda o, rest=rest: streams_of(o) == full(rest), after=mark)
        received = peer.wait_frames(rest)
        before = received.get((leaver_id, "video"), 0)
        peer.wait_frames(rest)  # time passes: nothing more comes from the one who left
        assert peer.received().get((leaver_id, "video"), 0) == before
        assert peer.failures == []
    leaver.client.assert_none("hearing:offer", within=0.3)


def test_a_dropped_participant_republishes_without_the_waiting_room(
        hearing_portal: LivePortal, peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=2)
    everyone = into_hearing(live, hearing, peers)
    for peer in everyone:
        peer.wait_frames(others(peer, everyone))
    judge, dropped = everyone[0], everyone[1]
    dropped_id = int(dropped.client.id)
    mark = judge.mark()
    dropped.client.drop()  # the phone changes network
    assert judge.client.wait_for("call:peer-reconnecting") == {"id": dropped_id}
    judge.wait_offer(lambda o: dropped_id not in {s["participant_id"] for s in o["streams"]},
                     after=mark)

    back = live.guest_client(hearing.guests[0], label="party0 back")
    again = peers(back)
    welcome = back.wait_for("welcome")
    assert (welcome["self"]["id"], welcome["resumable"]) == (dropped_id, True)
    join(back, resume=True)  # no lobby
    again.publish()
    now = [judge, again, everyone[2]]
    for peer in now:
        peer.wait_frames(others(peer, now))
    for peer in now:
        assert peer.failures == []
        peer.client.assert_none("error", within=0)


def test_the_end_of_the_hearing_destroys_its_room(
        hearing_portal: LivePortal, janus: JanusProcess,
        peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=1)
    everyone = into_hearing(live, hearing, peers)
    for peer in everyone:
        peer.wait_frames(others(peer, everyone))
    looker = janus.client()
    handle = looker.attach()

    def exists() -> bool:
        found = looker.request(handle, {"request": "exists", "room": hearing.appointment_id})
        return bool(found["exists"])

    assert exists()
    everyone[0].client.emit("call:end", {})
    for peer in everyone:
        assert peer.client.wait_for("call:ended") == {}
    deadline = time.monotonic() + WAIT
    while exists():
        assert time.monotonic() < deadline, "the ended hearing's room is still on Janus"
        time.sleep(0.05)


def test_janus_errors_reach_the_sender_as_media_server(
        hearing_portal: LivePortal, peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=1)
    judge = live.host_client(hearing, label="judge")
    judge.wait_for("welcome")
    join(judge)
    judge.emit("hearing:publish", {"sdp": "v=0\r\nthis is not an offer\r\n"})
    err = judge.wait_for("error")
    assert (err["code"], err["event"]) == ("media_server", "hearing:publish")
    judge.emit("hearing:subscribe", {"sdp": "v=0\r\nno offer was made\r\n"})
    err = judge.wait_for("error")
    assert (err["code"], err["event"]) == ("conflict", "hearing:subscribe")
    # The hearing goes on: a real publication still works.
    peer = peers(judge)
    peer.publish()
    assert judge.connected and live.alive()


def test_who_is_not_in_the_hearing_is_refused_over_the_wire(
        hearing_portal: LivePortal) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=2)
    consult = live.book_consult(live.create_host(), ["Olav"])
    judge = live.host_client(hearing, label="judge")
    judge.wait_for("welcome")
    join(judge)
    waiting = live.guest_client(hearing.guests[0], label="waiting")
    waiting.wait_for("welcome")
    waiting.emit("lobby:join", {})
    waiting.wait_for("lobby:state")
    outsider = live.guest_client(consult.guest, label="other appointment")
    outsider.wait_for("welcome")
    sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    for client in (waiting, outsider):
        for event, payload in (("hearing:publish", {"sdp": sdp}),
                               ("hearing:subscribe", {"sdp": sdp}),
                               ("hearing:candidate", {"pc": "publish", "candidate": None}),
                               ("hearing:layer", {"participant_id": int(judge.id),
                                                  "substream": 0}),
                               ("hearing:unpublish", {})):
            client.emit(event, payload)
            err = client.wait_for("error")
            assert (err["code"], err["event"]) == ("forbidden", event), client.label
    judge.assert_none("hearing:offer", within=0.3)


@contextlib.contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    """A Redis of this test's own inside the namespace (the machine's is outside it)."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.RedisError:
                assert process.poll() is None and time.monotonic() < deadline, \
                    f"redis-server did not start on port {port}"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def second_worker(first: LivePortal) -> LivePortal:
    """Another web worker on the first one's database, Redis and Janus."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**first.env, "PORTAL_PORT": str(port)}
    stderr_path = first.stderr_path.with_name(f"worker-{port}.stderr")
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(PROJECT_ROOT / "app.py")], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
            start_new_session=True)
    worker = LivePortal(base_url, first.database_url, first.grace_seconds, process,
                        stderr_path, first.app, env)
    _wait_until_healthy(worker)
    return worker


def test_two_web_workers_share_a_hearing(
        request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path,
        janus: JanusProcess, peers: Callable[[SignalClient], HearingPeer]) -> None:
    """The judge and a party on one worker, two parties on the other (as behind a load
    balancer): each worker has its own Janus session and handles in the one room, and every
    participant receives every other; one who leaves on one worker is renegotiated away on
    the other."""
    if REDIS_SERVER is None:
        pytest.fail("redis-server is required for this test (Debian: redis-server)")
    with private_redis(tmp_path) as queue:
        env = {"PORTAL_JANUS_URLS": janus.url, "PORTAL_JANUS_API_SECRET": janus.api_secret,
               "PORTAL_JANUS_ADMIN_KEY": janus.admin_key,
               "PORTAL_SOCKETIO_MESSAGE_QUEUE": queue,
               "PORTAL_SOCKETIO_CHANNEL": f"hearing-{uuid.uuid4().hex[:8]}"}
        with running(request, sqlite_template, tmp_path / "a", grace_seconds=GRACE_SECONDS,
                     env=env) as a:
            b = second_worker(a)
            try:
                hearing = book_hearing(a, guests=3)
                judge = a.host_client(hearing, label="judge on A")
                judge.wait_for("welcome")
                everyone = [peers(judge)]
                join(judge)
                for i, invite in enumerate(hearing.guests):
                    worker = a if i == 0 else b
                    label = f"party{i} on {'A' if worker is a else 'B'}"
                    guest = admitted(worker, judge, invite, label)
                    everyone.append(peers(guest))
                    join(guest)
                for peer in everyone:
                    peer.publish()
                for peer in everyone:
                    peer.wait_frames(others(peer, everyone))
                leaver = everyone[2]  # on B
                leaver_id = int(leaver.client.id)
                stay = [everyone[0], everyone[1], everyone[3]]
                marks = [peer.mark() for peer in stay]
                leaver.client.emit("call:leave", {})
                for peer, mark in zip(stay, marks, strict=True):
                    rest = others(peer, everyone) - {leaver_id}
                    peer.wait_offer(lambda o, rest=rest: streams_of(o) == full(rest),
                                    after=mark)
                    peer.wait_frames(rest)
                    assert peer.failures == []
            finally:
                for peer in everyone:
                    peer.close()
                b.stop()


def test_janus_killed_and_restarted_the_hearing_comes_back(
        hearing_portal: LivePortal, janus: JanusProcess,
        peers: Callable[[SignalClient], HearingPeer]) -> None:
    """Last in the module: Janus is killed with SIGKILL. Everyone hears `reconnecting`, then
    `ready` once Janus answers again; they publish again and see and hear each other."""
    live = hearing_portal
    everyone = into_hearing(live, book_hearing(live, guests=2), peers)
    for peer in everyone:
        peer.wait_frames(others(peer, everyone))
    marks = [peer.mark() for peer in everyone]
    janus.kill()
    for peer in everyone:
        said = peer.client.wait_for("hearing:media", timeout=RECOVERY)
        assert said == {"state": "reconnecting"}, peer.label
        peer.restart()  # as a page does: both connections are dead
    janus.start()
    for peer in everyone:
        said = peer.client.wait_for("hearing:media", timeout=RECOVERY)
        assert said == {"state": "ready"}, peer.label
        peer.publish()
    for peer, mark in zip(everyone, marks, strict=True):
        peer.wait_offer(lambda o, p=peer: streams_of(o) == full(others(p, everyone)),
                        after=mark, timeout=RECOVERY)
        peer.wait_frames(others(peer, everyone), timeout=RECOVERY)
        assert peer.failures == []
