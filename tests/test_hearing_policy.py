"""Which calls go through Janus, and whose media each participant may receive there
(portal/hearing/policy.py): decided on the server from the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from calls import Consult, in_call
from flask import Flask
from people import People
from support import SocketClient, book, invite

from portal.extensions import db
from portal.hearing.policy import MESH_MOST, needs_janus, uses_janus
from portal.hearing.procedure import allowed_feeds
from portal.models import Appointment, Kind, Participant, RecordingPolicy


@pytest.mark.parametrize(("kind", "people", "janus"), [
    (Kind.CONSULT, 1, False), (Kind.CONSULT, MESH_MOST, False),
    (Kind.CONSULT, MESH_MOST + 1, True), (Kind.CONSULT, 15, True),
    (Kind.HEARING, 1, True), (Kind.HEARING, 2, True), (Kind.HEARING, 15, True)])
def test_a_hearing_or_more_than_a_mesh_carries_goes_through_janus(
        kind: Kind, people: int, janus: bool) -> None:
    assert needs_janus(kind, people) is janus


def test_uses_janus_counts_everyone_invited_with_the_host(app: Flask, people: People) -> None:
    consult_id = book(app, people.host_a.id, starts_in=timedelta(0))
    hearing_id = book(app, people.host_a.id, starts_in=timedelta(0), kind=Kind.HEARING,
                      policy=RecordingPolicy.OFF)

    def janus(appointment_id: int) -> bool:
        with app.app_context():
            appointment = db.session.get(Appointment, appointment_id)
            assert appointment is not None
            return uses_janus(appointment)

    assert janus(hearing_id) and not janus(consult_id)
    for i in range(MESH_MOST - 1):  # the host and three guests: still a mesh
        invite(app, consult_id, f"Guest {i}")
    assert not janus(consult_id)
    invite(app, consult_id, "The fifth")
    assert janus(consult_id)


def test_in_a_consult_allowed_feeds_are_everyone_else_in_the_call_now(
        app: Flask, consult: Consult, host_socket: Callable[..., SocketClient]) -> None:
    host, (pat,) = in_call(app, host_socket, consult)
    kim_id = consult.guests[1][0]  # invited, not in the call

    def allowed(participant_id: int) -> set[int]:
        with app.app_context():
            appointment = db.session.get(Appointment, consult.id)
            participant = db.session.get(Participant, participant_id)
            assert appointment is not None and participant is not None
            feeds = allowed_feeds(appointment, participant)
            assert all(media == {"audio", "video"} for media in feeds.values())
            return set(feeds)

    assert allowed(host.id) == {pat.id}
    assert allowed(pat.id) == {host.id}
    assert allowed(kim_id) == set()  # not in the call: nothing at all
    pat.emit("call:leave", {})
    pat.no_errors()
    assert allowed(host.id) == set()
    assert allowed(pat.id) == set()
