"""Hearings through a real Janus, without a browser: the portal runs as `python app.py`
(tests/live.py) with a Janus of its own (tests/janus.py), both in the run's network namespace;
aiortc peers (tests/hearing_peers.py) act as the participants' browsers over python-socketio.
Each publishes small VP8 video and Opus audio and counts the frames it decodes from the
others."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hearing_peers import HearingPeer, hearing_peers
from janus import JanusProcess
from live import WAIT, Consult, LivePortal, SignalClient, running, self_id

from portal.models import Kind, RecordingPolicy

pytestmark = [pytest.mark.live, pytest.mark.webrtc]

GRACE_SECONDS = 10
#: Janus is restarted in a test: its media comes back within this.
RECOVERY = 30.0


@pytest.fixture(scope="module")
def hearing_portal(request: pytest.FixtureRequest, sqlite_template: Any,
                   tmp_path_factory: pytest.TempPathFactory,
                   janus: JanusProcess) -> Iterator[LivePortal]:
    """One live portal for the module, driving the module's Janus."""
    env = {"PORTAL_JANUS_URLS": janus.url, "PORTAL_JANUS_API_SECRET": janus.api_secret,
           "PORTAL_JANUS_ADMIN_KEY": janus.admin_key, "PORTAL_JANUS_RETRY_SECONDS": "1"}
    with running(request, sqlite_template, tmp_path_factory.mktemp("hearing"),
                 grace_seconds=GRACE_SECONDS, env=env) as live:
        yield live
        live.close_clients()


@pytest.fixture
def peers() -> Iterator[Callable[[SignalClient], HearingPeer]]:
    with hearing_peers() as make:
        yield make


def book_hearing(live: LivePortal, guests: int) -> Consult:
    return live.book_consult(live.create_host(), [f"Party {i}" for i in range(guests)],
                             title="Live hearing", kind=Kind.HEARING,
                             policy=RecordingPolicy.OFF)


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
    client.emit("call:join", {"resume": resume})
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
        hearing_portal: LivePortal, peers: Callable[[SignalClient], HearingPeer]) -> None:
    live = hearing_portal
    hearing = book_hearing(live, guests=3)
    everyone = into_hearing(live, hearing, peers)
    for peer in everyone:
        peer.wait_offer(lambda o, p=peer: {(s["participant_id"], s["kind"])
                                           for s in o["streams"]} == full(others(p, everyone)))
    for peer in everyone:
        received = peer.wait_frames(others(peer, everyone), at_least=15)
        own = int(peer.client.id)
        assert not [k for k in received if k[0] == own], "a participant received itself"
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
