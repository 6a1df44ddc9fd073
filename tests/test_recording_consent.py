"""Consent to recording through the signaling protocol: who may ask, who must agree, what a
"no", a withdrawal, a newcomer or a leaver does, and the hearing's notice. No media here."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from calls import Consult, admit, guest_socket, in_call, join_call
from flask import Flask
from people import People
from sqlalchemy import select
from support import SocketClient, audit_events, book, invite

from portal.extensions import db
from portal.models import (
    AppendOnlyError,
    Consent,
    Decision,
    Kind,
    Recording,
    RecordingPolicy,
    RecordingStatus,
    RecordingTrack,
    utcnow,
)
from portal.recording import archive
from portal.recording.manager import RecordingManager


def version(sock: SocketClient) -> str:
    assert sock.welcome is not None
    wording = sock.welcome["recording"]["wording"]
    assert wording is not None, "no recording wording for this policy"
    return str(wording["version"])


def state(sock: SocketClient) -> dict[str, Any]:
    found = sock.last("record:state")
    assert isinstance(found, dict)
    return found


def recording(app: Flask, recording_id: str) -> Recording:
    with app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        db.session.expunge(row)
        return row


def consents(app: Flask, recording_id: str | None = None) -> list[tuple[int, Decision]]:
    with app.app_context():
        rows = db.session.scalars(select(Consent).order_by(Consent.id)).all()
        return [(c.participant_id, c.decision) for c in rows
                if recording_id is None or c.recording_id == recording_id]


def wait_status(app: Flask, recording_id: str, status: RecordingStatus) -> Recording:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = recording(app, recording_id)
        if row.status is status:
            return row
        time.sleep(0.05)
    raise AssertionError(f"recording stayed {row.status}, not {status}")


@pytest.fixture
def policy_consult(app: Flask, people: People) -> Callable[[RecordingPolicy, int], Consult]:
    def make(policy: RecordingPolicy, guests: int = 1) -> Consult:
        kind = Kind.HEARING if policy is RecordingPolicy.NOTICE else Kind.CONSULT
        appointment_id = book(app, people.host_a.id, starts_in=timedelta(0), minutes=60,
                              policy=policy, kind=kind)
        names = ["Pat", "Kim", "Ola"][:guests]
        return Consult(appointment_id, people.host_a,
                       [invite(app, appointment_id, name) for name in names])

    return make


def ask(host: SocketClient) -> dict[str, Any]:
    host.emit("record:start", {"version": version(host)})
    host.no_errors()
    return state(host)


def answer(sock: SocketClient, recording_id: str, decision: str) -> None:
    """`sock` answers the consent prompt for the recording (no check of the outcome)."""
    sock.emit("record:consent", {"id": recording_id, "decision": decision,
                                 "version": version(sock)})


class Opening(NamedTuple):
    host: SocketClient
    guest: SocketClient
    id: str  # the recording's


def open_recording(app: Flask, host_socket: Any, c: Consult, *, agree: bool = True) -> Opening:
    """The consent opening, each step checked: host and first guest in the call, the host asks
    (and so agrees): requested, the guest pending, no key and nothing published. With `agree`
    the guest agrees too: it records, both publish."""
    host, (guest,) = in_call(app, host_socket, c)
    asked = ask(host)
    assert asked["status"] == "requested"
    assert [p["id"] for p in asked["pending"]] == [guest.id]  # the host agreed by asking
    assert state(guest)["status"] == "requested"
    assert host.take("record:publish") == [] and guest.take("record:publish") == []
    assert recording(app, asked["id"]).wrapped_key is None  # no key, no file, until all agree
    if agree:
        answer(guest, asked["id"], "granted")
        guest.no_errors()
        started = state(host)
        assert started["status"] == "recording" and started["pending"] == []
        assert sorted(started["publishers"]) == sorted([host.id, guest.id])
        assert host.only("record:publish") == {"id": asked["id"]}
        assert guest.only("record:publish") == {"id": asked["id"]}
    return Opening(host, guest, asked["id"])


def test_policy_off_has_no_recording(app: Flask, host_socket: Any,
                                     policy_consult: Callable[..., Consult]) -> None:
    c = policy_consult(RecordingPolicy.OFF)
    host, (guest,) = in_call(app, host_socket, c)
    assert host.welcome is not None and host.welcome["recording"]["wording"] is None
    host.emit("record:start", {"version": "consent-x"})
    assert host.error("record:start")["code"] == "forbidden"
    with app.app_context():
        assert db.session.scalars(select(Recording)).all() == []


def test_everyone_must_agree_before_it_starts(app: Flask, host_socket: Any,
                                              consult: Consult) -> None:
    # The opening checks it step by step: asked, the guest pending, no key, nothing published
    # until the guest agreed; then recording, both publishing.
    host, guest, rid = open_recording(app, host_socket, consult)
    row = recording(app, rid)
    assert row.status is RecordingStatus.RECORDING and row.wrapped_key and row.key_id
    assert consents(app, rid) == [(host.id, Decision.GRANTED), (guest.id, Decision.GRANTED)]
    with app.app_context():
        shown = db.session.scalars(select(Consent)).all()[-1]
        assert shown.wording_version == version(guest) and "record" in shown.wording
    actions = [e.action for e in audit_events(app)]
    for action in ("recording.requested", "consent.granted", "recording.started"):
        assert action in actions


def test_stale_wording_is_refused(app: Flask, host_socket: Any, consult: Consult) -> None:
    host, _guests = in_call(app, host_socket, consult)
    host.emit("record:start", {"version": "consent-0000000000000000"})
    assert host.error("record:start")["code"] == "stale_wording"


def test_one_no_and_nothing_is_recorded(app: Flask, host_socket: Any, consult: Consult) -> None:
    host, guest, rid = open_recording(app, host_socket, consult, agree=False)
    answer(guest, rid, "declined")
    guest.no_errors()
    assert state(host)["status"] == "declined"
    row = recording(app, rid)
    assert row.status is RecordingStatus.DECLINED and row.wrapped_key is None
    assert row.stop_reason == "declined"
    assert host.take("record:publish") == [] and guest.take("record:publish") == []
    assert not Path(app.config["RECORDINGS_DIR"], rid).exists()


def test_withdrawal_stops_and_the_row_stays(app: Flask, host_socket: Any,
                                            consult: Consult) -> None:
    _host, guest, rid = open_recording(app, host_socket, consult)
    answer(guest, rid, "withdrawn")
    guest.no_errors()
    row = wait_status(app, rid, RecordingStatus.COMPLETE)
    assert row.stop_reason == "withdrawn"
    assert consents(app, rid)[-2:] == [(guest.id, Decision.GRANTED),
                                       (guest.id, Decision.WITHDRAWN)]
    # After it stopped, consent to it means nothing.
    answer(guest, rid, "granted")
    assert guest.error("record:consent")["code"] in {"conflict"}


def test_a_newcomer_pauses_it_until_they_agree(app: Flask, host_socket: Any,
                                               consult: Consult) -> None:
    host, _pat, rid = open_recording(app, host_socket, consult)
    kim = guest_socket(app, consult.token(1), label="kim")
    admit(host, kim)
    paused = state(host)
    assert paused["status"] == "paused" and [p["id"] for p in paused["pending"]] == [kim.id]
    assert state(kim)["status"] == "paused"  # the newcomer is asked at once
    assert recording(app, rid).status is RecordingStatus.PAUSED
    answer(kim, rid, "granted")
    kim.no_errors()
    assert state(host)["status"] == "recording"
    assert kim.only("record:publish") == {"id": rid}


def test_a_newcomer_who_says_no_stops_it(app: Flask, host_socket: Any,
                                         consult: Consult) -> None:
    host, _pat, rid = open_recording(app, host_socket, consult)
    kim = guest_socket(app, consult.token(1), label="kim")
    admit(host, kim)
    answer(kim, rid, "declined")
    row = wait_status(app, rid, RecordingStatus.COMPLETE)
    assert row.stop_reason == "declined"


def test_a_recorded_participant_leaving_stops_it(app: Flask, host_socket: Any,
                                                 consult: Consult) -> None:
    host, guest, rid = open_recording(app, host_socket, consult)
    guest.emit("call:leave", {})
    row = wait_status(app, rid, RecordingStatus.COMPLETE)
    assert row.stop_reason == "participant_left"
    assert state(host)["status"] in ("recording", "complete")


def test_guests_cannot_start_or_stop(app: Flask, host_socket: Any, consult: Consult) -> None:
    host, (guest,) = in_call(app, host_socket, consult)
    guest.emit("record:start", {"version": version(guest)})
    assert guest.error("record:start")["code"] == "forbidden"
    asked = ask(host)
    guest.emit("record:stop", {"id": asked["id"]})
    assert guest.error("record:stop")["code"] == "forbidden"
    host.emit("record:stop", {"id": asked["id"]})
    host.no_errors()
    assert state(guest)["status"] == "cancelled"


@pytest.mark.parametrize(("payload", "code"), [
    ({"id": "nothex", "sdp": "v=0 and more"}, "bad_request"),
    ({"id": "0" * 32, "sdp": "v=0 and more"}, "unknown_recording"),
    ({"id": "0" * 32}, "bad_request"),
    ({"id": "0" * 32, "sdp": "v=0 and more", "extra": 1}, "bad_request"),
])
def test_bad_offers_are_refused(app: Flask, host_socket: Any, consult: Consult,
                                payload: dict[str, Any], code: str) -> None:
    host, _guests = in_call(app, host_socket, consult)
    host.emit("record:offer", payload)
    assert host.error("record:offer")["code"] == code


def test_only_someone_who_agreed_may_publish(app: Flask, host_socket: Any,
                                             consult: Consult) -> None:
    _host, guest, rid = open_recording(app, host_socket, consult, agree=False)
    guest.emit("record:offer", {"id": rid, "sdp": "v=0\r\n" * 4})
    assert guest.error("record:offer")["code"] == "not_recording"  # still asking


def test_another_appointments_recording_is_unknown(app: Flask, host_socket: Any,
                                                    consult: Consult, other: Consult) -> None:
    rid = open_recording(app, host_socket, consult, agree=False).id
    _olav_host, (olav,) = in_call(app, host_socket, other)
    answer(olav, rid, "declined")
    assert olav.error("record:consent")["code"] == "unknown_recording"
    assert recording(app, rid).status is RecordingStatus.REQUESTED


def test_consent_rows_are_append_only(app: Flask, host_socket: Any, consult: Consult) -> None:
    open_recording(app, host_socket, consult, agree=False)
    with app.app_context():
        row = db.session.scalars(select(Consent)).first()
        assert row is not None
        row.decision = Decision.DECLINED
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()
        row = db.session.scalars(select(Consent)).first()
        db.session.delete(row)
        with pytest.raises(AppendOnlyError):
            db.session.flush()
        db.session.rollback()


def test_a_hearing_notice_is_acknowledged_before_joining(
        app: Flask, host_socket: Any, policy_consult: Callable[..., Consult]) -> None:
    c = policy_consult(RecordingPolicy.NOTICE)
    host = host_socket(c)
    assert host.welcome is not None
    notice = host.welcome["recording"]["wording"]
    assert notice["kind"] == "notice" and "court" in notice["what"]
    host.emit("call:join", {"resume": False})
    assert host.error("call:join")["code"] == "notice_required"
    host.emit("call:join", {"resume": False, "notice": version(host), "declaration": True})
    host.no_errors()
    host.only("call:joined")
    guest = guest_socket(app, c.token())
    guest.emit("lobby:join", {})
    host.emit("lobby:admit", {"participant_id": guest.id})
    guest.emit("call:join", {"resume": False})
    assert guest.error("call:join")["code"] == "notice_required"
    join_call_with_notice(guest)
    assert consents(app) == [(host.id, Decision.ACKNOWLEDGED), (guest.id, Decision.ACKNOWLEDGED)]
    started = ask(host)
    assert started["status"] == "recording"  # by order: nobody is asked again
    # A hearing goes through Janus: the recorder process records it from there, no browser
    # publishes to a recorder (tests/test_recording_forward*.py).
    assert guest.take("record:publish") == [] and started["publishers"] == [host.id, guest.id]
    answer(guest, started["id"], "withdrawn")
    assert guest.error("record:consent")["code"] == "forbidden"


def join_call_with_notice(sock: SocketClient) -> None:
    sock.emit("call:join", {"resume": False, "notice": version(sock), "declaration": True})
    sock.no_errors()
    sock.only("call:joined")


def test_welcome_tells_a_latecomer_what_runs(app: Flask, host_socket: Any,
                                             consult: Consult) -> None:
    host = host_socket(consult)
    join_call(host)
    asked = ask(host)
    guest = guest_socket(app, consult.token())
    assert guest.welcome is not None
    assert guest.welcome["recording"]["state"]["id"] == asked["id"]
    # The host alone agreed, so it runs; the guest entering the call pauses it.
    assert guest.welcome["recording"]["state"]["status"] == "recording"
    admit(host, guest)
    assert state(guest)["status"] == "paused"


def test_duplicate_request_conflicts(app: Flask, host_socket: Any, consult: Consult) -> None:
    host = open_recording(app, host_socket, consult, agree=False).host
    host.emit("record:start", {"version": version(host)})
    assert host.error("record:start")["code"] == "conflict"


def test_wording_is_configurable_and_versioned(app: Flask, host_socket: Any,
                                               consult: Consult) -> None:
    first = host_socket(consult)
    app.config["RECORDING_PURPOSE"] = "For the patient's journal."
    app.config["RECORDING_RETENTION_DAYS"] = 30
    second = host_socket(consult, label="host2")
    assert version(first) != version(second)
    assert second.welcome is not None
    wording = second.welcome["recording"]["wording"]
    assert "journal" in wording["why"] and "30" in wording["how_long"]


def test_ending_the_call_stops_the_recording(app: Flask, host_socket: Any,
                                             consult: Consult) -> None:
    host, _guest, rid = open_recording(app, host_socket, consult)
    host.emit("call:end", {})
    row = wait_status(app, rid, RecordingStatus.COMPLETE)
    assert row.stop_reason == "call_ended"



def _tracks(app: Flask, rid: str) -> list[tuple[int, str, str | None]]:
    with app.app_context():
        return [(t.participant_id, t.name, t.mode) for t in db.session.scalars(
            select(RecordingTrack).where(RecordingTrack.recording_id == rid)
            .order_by(RecordingTrack.id))]


def test_failed_offers_leave_no_stale_publication_nor_pile_up_rows(
        app: Flask, host_socket: Any, consult: Consult) -> None:
    """The attack: offers the recorder cannot answer, again and again. Each used to leave its
    publication registered and add a track row. Now the participant has one `failed` row, no
    publication, and the recording still verifies once it ends."""
    host, guest, rid = open_recording(app, host_socket, consult)
    recorder = app.extensions["recording"]
    for attempt in range(5):
        guest.emit("record:offer", {"id": rid, "sdp": "v=0\r\n" * 4})
        deadline = time.monotonic() + 10  # the answer comes from the engine's thread
        while not guest.take("error"):
            assert time.monotonic() < deadline, f"no answer to offer {attempt}"
            time.sleep(0.02)
        assert guest.id not in recorder._publications.get(rid, {})
    assert _tracks(app, rid) == [(guest.id, f"p{guest.id}-1", "failed")]
    host.emit("record:stop", {"id": rid})
    wait_status(app, rid, RecordingStatus.COMPLETE)
    with app.app_context():
        row = db.session.get(Recording, rid)
        assert row is not None
        verdict = archive.verify(row)
    assert verdict.ok, verdict.problems


def test_a_recording_losing_media_tells_the_hosts_only(app: Flask, host_socket: Any,
                                                       consult: Consult) -> None:
    """The engine's loss callback (tested with real loss in test_recording_endpoint.py) is
    turned into `record:loss` for the hosts' sockets, and an audit event."""
    host, guest, rid = open_recording(app, host_socket, consult)
    with app.app_context():
        db.session.add(RecordingTrack(recording_id=rid, participant_id=guest.id,
                                      name=f"p{guest.id}-1"))
        db.session.commit()
    total = {"video": {"lost": 12}, "socket": {"socket_drops": 40}}
    app.extensions["recording"]._publication_losing(f"{rid}/p{guest.id}-1", total)
    deadline = time.monotonic() + 10  # told from a background thread
    while not (told := host.take("record:loss")):
        assert time.monotonic() < deadline, "the host was not told"
        time.sleep(0.02)
    assert told == [{"id": rid, "track": f"p{guest.id}-1", "participant": guest.id,
                     "name": "Pat", "total": total}]
    assert guest.take("record:loss") == []
    [event] = audit_events(app, "recording.loss")
    assert event.object_id == rid


def _age(app: Flask, recording_id: str) -> None:
    """As if the heartbeat's limit passed since anyone stamped the recording."""
    with app.app_context():
        row = db.session.get(Recording, recording_id)
        assert row is not None
        row.alive_at = utcnow() - timedelta(hours=1)
        db.session.commit()


def test_a_request_waits_for_a_guest_who_reads_slowly(app: Flask, host_socket: Any,
                                                      consult: Consult) -> None:
    """The process that asked keeps its request alive: the heartbeat must not take a guest
    still reading the prompt for a crashed recorder (it once cancelled after 3 beats)."""
    host, (guest,) = in_call(app, host_socket, consult)
    rid = ask(host)["id"]
    _age(app, rid)
    with app.app_context():
        app.extensions["recording"].beat()
    assert recording(app, rid).status is RecordingStatus.REQUESTED
    assert recording(app, rid).alive_at > utcnow() - timedelta(minutes=1)
    answer(guest, rid, "granted")
    guest.no_errors()
    assert state(host)["status"] == "recording"


def test_a_request_whose_process_died_is_cancelled(app: Flask, host_socket: Any,
                                                   consult: Consult) -> None:
    """A request nobody stamps any more (its web process died) does not block the next one:
    another process's heartbeat cancels it."""
    host, _ = in_call(app, host_socket, consult)
    rid = ask(host)["id"]
    _age(app, rid)
    with app.app_context():
        RecordingManager(app).beat()  # a process that never knew the request
    row = recording(app, rid)
    assert (row.status, row.stop_reason) == (RecordingStatus.CANCELLED, "recorder_stopped")
