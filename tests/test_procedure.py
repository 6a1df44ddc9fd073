"""A hearing's court procedure as pure decisions (portal/hearing/procedure.py): every role
against every action, the targets each may act on, and who receives whose audio and video.
On unsaved rows: nothing here needs a database. Through the sockets and a fake Janus:
test_court_events.py."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest

from portal.hearing.procedure import (
    Absent,
    Action,
    allowed_feeds,
    followers,
    may,
    place_after_room,
    recorded_feeds,
    screening_refused,
    taken_in_at_start,
    unrecorded,
)
from portal.models import (
    Appointment,
    HearingStage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Place,
)

R = ParticipantRole
AV = {"audio", "video"}
HOSTS = {R.HOST, R.JUDGE, R.CLERK}
EVERYONE_BUT_OBSERVERS = set(R) - {R.OBSERVER}
#: Who may do each action (on a witness, for the actions on someone).
RIGHTS: dict[Action, set[ParticipantRole]] = {
    Action.START: HOSTS, Action.PAUSE: HOSTS, Action.RESUME: HOSTS, Action.END: HOSTS,
    Action.ADMIT: HOSTS, Action.CALL: HOSTS, Action.DISMISS: HOSTS, Action.REMOVE: HOSTS,
    Action.MUTE: HOSTS, Action.RECORD: HOSTS, Action.SCREEN: HOSTS, Action.RECALL: HOSTS,
    Action.OPEN_BENCH: HOSTS, Action.BENCH_MESSAGE: HOSTS,
    Action.OPEN_COUNSEL: {R.COUNSEL}, Action.INVITE: HOSTS | {R.COUNSEL},
    Action.LEAVE_ROOM: EVERYONE_BUT_OBSERVERS, Action.CHAT: EVERYONE_BUT_OBSERVERS,
    Action.PUBLISH: EVERYONE_BUT_OBSERVERS, Action.UNMUTE_SELF: EVERYONE_BUT_OBSERVERS,
}
ON_SOMEONE = {Action.ADMIT, Action.CALL, Action.DISMISS, Action.REMOVE, Action.MUTE}
_ids = count(100)


def hearing(stage: HearingStage = HearingStage.IN_SESSION, kind: Kind = Kind.HEARING,
            ) -> Appointment:
    return Appointment(id=next(_ids), kind=kind, hearing_stage=stage, participants=[])


def person(appointment: Appointment, role: ParticipantRole, *, place: Place = Place.HEARING,
           in_call: bool = True, **extra: object) -> Participant:
    """A participant of the appointment (in its call unless told otherwise)."""
    values: dict[str, object] = {
        "id": next(_ids), "appointment_id": appointment.id, "role": role,
        "display_name": role.value, "lobby_state": LobbyState.ADMITTED, "place": place,
        "mute_locked": False, "audio_on": True, "video_on": True, "interprets_for_id": None,
        "consultation_room_id": None,
        "joined_call_at": datetime.now(UTC) if in_call else None,
        "presence_sid": f"sid{next(_ids)}" if in_call else None}
    values.update(extra)
    p = Participant(**values)
    p.appointment = appointment
    p.represents = []
    p.screened_from = []
    return p


def test_the_table_names_every_action_and_every_role_is_tested() -> None:
    assert set(RIGHTS) == set(Action)


@pytest.mark.parametrize("role", list(R), ids=str)
@pytest.mark.parametrize("action", list(Action), ids=str)
def test_every_role_against_every_action(role: ParticipantRole, action: Action) -> None:
    a = hearing()
    me = person(a, role)
    target = person(a, R.WITNESS) if action in ON_SOMEONE else None
    assert may(me, action, target) is (role in RIGHTS[action])


@pytest.mark.parametrize("action", sorted(ON_SOMEONE - {Action.MUTE}))
def test_actions_on_someone_need_someone(action: Action) -> None:
    judge = person(hearing(), R.JUDGE)
    assert not may(judge, action)


def test_muting_everyone_is_a_hosts_right() -> None:
    a = hearing()
    assert may(person(a, R.CLERK), Action.MUTE)
    assert not may(person(a, R.PANEL), Action.MUTE)
    assert not may(person(a, R.COUNSEL), Action.MUTE)


@pytest.mark.parametrize("action", sorted(ON_SOMEONE))
def test_a_host_never_acts_on_another_host_nor_on_themselves(action: Action) -> None:
    a = hearing()
    judge, clerk, host = person(a, R.JUDGE), person(a, R.CLERK), person(a, R.HOST)
    for other in (clerk, host):
        assert not may(judge, action, other)
    assert not may(clerk, action, judge)
    assert not may(judge, action, judge)


@pytest.mark.parametrize("action", sorted(ON_SOMEONE) + [Action.OPEN_COUNSEL, Action.INVITE])
def test_nobody_acts_on_someone_of_another_hearing(action: Action) -> None:
    a, b = hearing(), hearing()
    for me in (person(a, R.JUDGE), person(a, R.COUNSEL)):
        assert not may(me, action, person(b, R.WITNESS))
        assert not may(me, action, person(b, R.COUNSEL))


@pytest.mark.parametrize(("action", "targets"), [
    (Action.CALL, set(R) - {R.HOST, R.JUDGE, R.CLERK, R.PANEL, R.OBSERVER}),
    (Action.DISMISS, set(R) - {R.HOST, R.JUDGE, R.CLERK, R.PANEL, R.OBSERVER}),
    (Action.ADMIT, set(R) - {R.HOST, R.JUDGE, R.CLERK, R.PANEL}),
    (Action.REMOVE, set(R) - {R.HOST, R.JUDGE, R.CLERK, R.PANEL}),
    (Action.MUTE, set(R) - {R.HOST, R.JUDGE, R.CLERK, R.OBSERVER}),
    (Action.OPEN_BENCH, {R.JUDGE, R.PANEL}),
])
def test_whom_a_host_acts_on(action: Action, targets: set[ParticipantRole]) -> None:
    a = hearing()
    clerk = person(a, R.CLERK)
    for role in R:
        assert may(clerk, action, person(a, role)) is (role in targets), role


def test_counsel_meets_the_parties_they_represent_and_other_counsel() -> None:
    a = hearing()
    counsel, other_counsel = person(a, R.COUNSEL), person(a, R.COUNSEL)
    mine, theirs = person(a, R.PARTY), person(a, R.PARTY)
    counsel.represents = [mine]
    other_counsel.represents = [theirs]
    for action in (Action.OPEN_COUNSEL, Action.INVITE):
        assert may(counsel, action, mine)
        assert may(counsel, action, other_counsel)
        for nobody_of_theirs in (theirs, person(a, R.WITNESS), person(a, R.JUDGE),
                                 person(a, R.OBSERVER), person(a, R.INTERPRETER)):
            assert not may(counsel, action, nobody_of_theirs)
    # A party cannot open one or invite, even with their own counsel.
    assert not may(mine, Action.OPEN_COUNSEL, counsel)
    assert not may(mine, Action.INVITE, counsel)
    # Into the bench, a host invites the judge and panel only.
    judge = person(a, R.JUDGE)
    assert may(judge, Action.INVITE, person(a, R.PANEL))
    assert not may(judge, Action.INVITE, mine)


def test_a_locked_mute_stops_unmuting_oneself() -> None:
    a = hearing()
    party = person(a, R.PARTY)
    assert may(party, Action.UNMUTE_SELF)
    party.mute_locked = True
    assert not may(party, Action.UNMUTE_SELF)
    assert may(party, Action.CHAT)  # the rest stays


def test_own_actions_take_no_target() -> None:
    a = hearing()
    party = person(a, R.PARTY)
    for action in (Action.CHAT, Action.PUBLISH, Action.UNMUTE_SELF, Action.LEAVE_ROOM):
        assert not may(party, action, person(a, R.PARTY))


def test_screening_that_is_refused() -> None:
    a, b = hearing(), hearing()
    witness, party, judge = person(a, R.WITNESS), person(a, R.PARTY), person(a, R.JUDGE)
    interpreter = person(a, R.INTERPRETER, interprets_for_id=witness.id)
    assert screening_refused(witness, party) is None
    assert screening_refused(witness, witness) == "unknown_peer"
    assert screening_refused(witness, person(b, R.PARTY)) == "unknown_peer"
    assert screening_refused(witness, judge) == "forbidden"  # the court always sees
    assert screening_refused(person(a, R.OBSERVER), party) == "forbidden"
    assert screening_refused(witness, interpreter) == "interpreter"
    assert screening_refused(interpreter, witness) == "interpreter"


def test_who_moves_at_the_start_and_after_a_room() -> None:
    a = hearing(HearingStage.OPENING)
    witness, expert = person(a, R.WITNESS), person(a, R.EXPERT)
    party, judge = person(a, R.PARTY), person(a, R.JUDGE)
    w_interpreter = person(a, R.INTERPRETER, interprets_for_id=witness.id)
    w_interpreter.interprets_for = witness
    p_interpreter = person(a, R.INTERPRETER, interprets_for_id=party.id)
    p_interpreter.interprets_for = party
    a.participants = [witness, expert, party, judge, w_interpreter, p_interpreter]
    assert [p for p in a.participants if taken_in_at_start(p)] == [party, judge, p_interpreter]
    assert not taken_in_at_start(person(a, R.OBSERVER))
    assert not taken_in_at_start(person(a, R.PARTY, lobby_state=LobbyState.DENIED))
    assert followers(witness) == [w_interpreter]
    assert place_after_room(a, party) is Place.WAITING  # not started
    a.hearing_stage = HearingStage.PAUSED
    assert place_after_room(a, party) is Place.HEARING
    assert place_after_room(a, w_interpreter) is Place.WAITING


# --- who receives whom -----------------------------------------------------------------------

def test_in_a_consult_everyone_in_the_call_receives_everyone_else() -> None:
    a = hearing(kind=Kind.CONSULT, stage=HearingStage.OPENING)
    host, pat = person(a, R.HOST, place=Place.WAITING), person(a, R.PATIENT, place=Place.WAITING)
    out = person(a, R.PATIENT, in_call=False)
    a.participants = [host, pat, out]
    assert allowed_feeds(a, host) == {pat.id: AV}
    assert allowed_feeds(a, out) == {}
    assert recorded_feeds(a) == {host.id: AV, pat.id: AV}


def test_in_session_the_hearing_receives_itself_and_the_waiting_room_nothing() -> None:
    a = hearing()
    judge, party, counsel = person(a, R.JUDGE), person(a, R.PARTY), person(a, R.COUNSEL)
    witness = person(a, R.WITNESS, place=Place.WAITING)
    gone = person(a, R.PARTY, in_call=False)
    a.participants = [judge, party, counsel, witness, gone]
    assert allowed_feeds(a, judge) == {party.id: AV, counsel.id: AV}
    assert allowed_feeds(a, witness) == {}
    assert allowed_feeds(a, gone) == {}
    assert all(witness.id not in allowed_feeds(a, p) for p in a.participants)
    assert recorded_feeds(a) == {judge.id: AV, party.id: AV, counsel.id: AV}
    for stage in (HearingStage.OPENING, HearingStage.PAUSED):
        a.hearing_stage = stage
        assert allowed_feeds(a, judge) == {} and allowed_feeds(a, party) == {}
        assert recorded_feeds(a) == {}


def test_a_private_room_receives_only_itself_and_is_never_recorded() -> None:
    a = hearing(HearingStage.PAUSED)
    judge = person(a, R.JUDGE)
    counsel = person(a, R.COUNSEL, place=Place.CONSULTATION, consultation_room_id=1)
    party = person(a, R.PARTY, place=Place.CONSULTATION, consultation_room_id=1)
    other = person(a, R.COUNSEL, place=Place.CONSULTATION, consultation_room_id=2)
    observer = person(a, R.OBSERVER, place=Place.WAITING)
    a.participants = [judge, counsel, party, other, observer]
    assert allowed_feeds(a, counsel) == {party.id: AV}
    assert allowed_feeds(a, party) == {counsel.id: AV}
    assert allowed_feeds(a, other) == {}
    a.hearing_stage = HearingStage.IN_SESSION
    for outsider in (judge, other, observer):
        assert not {counsel.id, party.id} & set(allowed_feeds(a, outsider))
    assert set(recorded_feeds(a)) == {judge.id}


def test_screening_hides_video_never_audio_and_never_from_an_interpreter() -> None:
    a = hearing()
    witness, defendant, judge = person(a, R.WITNESS), person(a, R.PARTY), person(a, R.JUDGE)
    interpreter = person(a, R.INTERPRETER, interprets_for_id=witness.id)
    witness.screened_from = [defendant, interpreter]  # the second one cannot hold
    a.participants = [witness, defendant, judge, interpreter]
    assert allowed_feeds(a, defendant)[witness.id] == {"audio"}
    assert allowed_feeds(a, judge)[witness.id] == AV
    assert allowed_feeds(a, interpreter)[witness.id] == AV
    assert allowed_feeds(a, witness)[defendant.id] == AV  # one way only
    assert recorded_feeds(a)[witness.id] == AV


def test_observers_receive_the_hearing_and_nobody_receives_them() -> None:
    a = hearing()
    judge, party = person(a, R.JUDGE), person(a, R.PARTY)
    witness = person(a, R.WITNESS, place=Place.WAITING)
    observer = person(a, R.OBSERVER, place=Place.HEARING)
    protected = person(a, R.WITNESS)
    protected.screened_from = [observer]
    a.participants = [judge, party, witness, observer, protected]
    assert allowed_feeds(a, observer) == {judge.id: AV, party.id: AV, protected.id: {"audio"}}
    assert all(observer.id not in allowed_feeds(a, p) for p in a.participants)
    assert observer.id not in recorded_feeds(a)
    a.hearing_stage = HearingStage.PAUSED
    assert allowed_feeds(a, observer) == {}


def test_a_locked_mute_keeps_the_microphone_from_everyone_and_the_record() -> None:
    a = hearing()
    judge, party = person(a, R.JUDGE), person(a, R.PARTY)
    a.participants = [judge, party]
    party.mute_locked = True
    assert allowed_feeds(a, judge) == {party.id: {"video"}}
    assert recorded_feeds(a)[party.id] == {"video"}
    party.mute_locked, party.audio_on = False, False  # muted by themselves: not recorded
    assert allowed_feeds(a, judge) == {party.id: AV}
    assert recorded_feeds(a)[party.id] == {"video"}


def test_what_the_record_does_not_hold_and_why() -> None:
    a = hearing(HearingStage.IN_SESSION)
    judge, party = person(a, R.JUDGE), person(a, R.PARTY, audio_on=False)
    locked = person(a, R.PARTY, audio_on=False, mute_locked=True)
    counsel = person(a, R.COUNSEL, place=Place.CONSULTATION, consultation_room_id=1)
    witness = person(a, R.WITNESS, place=Place.WAITING)
    gone = person(a, R.PARTY, in_call=False)
    observer = person(a, R.OBSERVER)
    a.participants = [judge, party, locked, counsel, witness, gone, observer]
    both = {"audio", "video"}
    assert unrecorded(a) == {
        judge.id: {}, party.id: {"audio": Absent.MUTED},
        locked.id: {"audio": Absent.MUTE_LOCKED},
        counsel.id: dict.fromkeys(both, Absent.CONSULTATION),
        witness.id: dict.fromkeys(both, Absent.WAITING),
        gone.id: dict.fromkeys(both, Absent.NOT_IN_CALL)}  # observers: never in the record
    assert recorded_feeds(a) == {judge.id: AV, party.id: {"video"}, locked.id: {"video"}}
    a.hearing_stage = HearingStage.PAUSED
    assert unrecorded(a)[judge.id] == dict.fromkeys(both, Absent.NOT_IN_SESSION)
    assert unrecorded(a)[counsel.id] == dict.fromkeys(both, Absent.CONSULTATION)
    assert recorded_feeds(a) == {}
    # A consult: everyone in the call, whatever their microphone.
    c = hearing(kind=Kind.CONSULT)
    host, out = person(c, R.HOST, audio_on=False), person(c, R.PATIENT, in_call=False)
    c.participants = [host, out]
    assert unrecorded(c) == {host.id: {}, out.id: dict.fromkeys(both, Absent.NOT_IN_CALL)}
