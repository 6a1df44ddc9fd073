"""A hearing's court procedure as pure decisions (issue 12, docs/hearings.md): what each role
may do, who receives whose audio and video, and what the record holds.

Nothing here changes a row or talks to Janus: `portal.call.court` acts on `may`, and the media
layer (`portal.hearing.media`) subscribes each participant to exactly `allowed_feeds`.
"""

from __future__ import annotations

import enum

from portal import presence
from portal.models import (
    STAFF_ROLES,
    Appointment,
    HearingStage,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Place,
)

Role = ParticipantRole
AUDIO, VIDEO = "audio", "video"
BOTH = frozenset({AUDIO, VIDEO})
#: Feed (participant id) -> which of its media ("audio", "video") a participant receives.
Feeds = dict[int, set[str]]

#: Waiting until the judge calls them, and not taken in when the hearing starts.
CALLED_IN = (Role.WITNESS, Role.EXPERT)
#: The bench room's members.
BENCH = (Role.JUDGE, Role.PANEL)


class Action(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    END = "end"
    ADMIT = "admit"  # and deny
    CALL = "call"
    DISMISS = "dismiss"
    REMOVE = "remove"
    MUTE = "mute"
    RECORD = "record"  # start and stop the recording
    SCREEN = "screen"
    OPEN_BENCH = "open_bench"
    OPEN_COUNSEL = "open_counsel"
    INVITE = "invite"  # into the room one is in
    LEAVE_ROOM = "leave_room"
    RECALL = "recall"
    BENCH_MESSAGE = "bench_message"
    CHAT = "chat"
    PUBLISH = "publish"
    UNMUTE_SELF = "unmute_self"


#: Actions of a host (judge, clerk, a consult's host) on the hearing as a whole.
_HOSTS = frozenset({Action.START, Action.PAUSE, Action.RESUME, Action.END, Action.RECORD,
                    Action.SCREEN, Action.RECALL, Action.BENCH_MESSAGE, Action.OPEN_BENCH})
#: Actions of a host on one other participant.
_ON_OTHERS = frozenset({Action.ADMIT, Action.CALL, Action.DISMISS, Action.REMOVE, Action.MUTE})
#: Everyone but an observer, on themselves.
_OWN = frozenset({Action.CHAT, Action.PUBLISH, Action.UNMUTE_SELF, Action.LEAVE_ROOM})


def may(p: Participant, action: Action, target: Participant | None = None) -> bool:
    """Whether p's role gives the right to `action` (on `target`, for the actions that have
    one). The hearing's state (is it started, is p in a room) is the caller's to check."""
    if target is not None and (target.appointment_id != p.appointment_id or target.id == p.id):
        return False
    if action in _OWN:
        return (target is None and p.role is not Role.OBSERVER
                and not (action is Action.UNMUTE_SELF and p.mute_locked))
    if action in _HOSTS:
        if action is Action.OPEN_BENCH and target is not None:
            return p.is_host and target.role in BENCH
        return p.is_host and target is None
    if action in _ON_OTHERS:
        if target is None:  # muting everyone at once; the others need someone
            return p.is_host and action is Action.MUTE
        return p.is_host and _may_be_moved(action, target)
    if action is Action.OPEN_COUNSEL:
        return p.role is Role.COUNSEL and (target is None or _counsel_may_meet(p, target))
    if action is Action.INVITE:  # into a counsel room by counsel, into the bench by a host
        if target is None:
            return p.role is Role.COUNSEL or p.is_host
        if p.role is Role.COUNSEL:
            return _counsel_may_meet(p, target)
        return p.is_host and target.role in BENCH
    return False


def _may_be_moved(action: Action, target: Participant) -> bool:
    """A host acts on guests (and mutes the panel); never on another host."""
    if target.is_host:
        return False
    if action is Action.MUTE:
        return target.role is not Role.OBSERVER
    if action in (Action.ADMIT, Action.REMOVE):
        return target.role not in STAFF_ROLES
    return target.role not in STAFF_ROLES and target.role is not Role.OBSERVER  # call, dismiss


def _counsel_may_meet(counsel: Participant, target: Participant) -> bool:
    """Counsel's private room: the parties they represent, and other counsel."""
    return target.role is Role.COUNSEL or any(p.id == target.id for p in counsel.represents)


def screening_refused(protected: Participant, hidden_from: Participant) -> str | None:
    """Why this screening may not be (a code), or None: both of the hearing, two people, the
    court (staff) always sees, nobody is screened from their interpreter."""
    if protected.appointment_id != hidden_from.appointment_id or protected.id == hidden_from.id:
        return "unknown_peer"
    if hidden_from.role in STAFF_ROLES or protected.role is Role.OBSERVER:
        return "forbidden"
    if _interpreting(protected, hidden_from):
        return "interpreter"
    return None


def _interpreting(a: Participant, b: Participant) -> bool:
    return a.interprets_for_id == b.id or b.interprets_for_id == a.id


def followers(p: Participant) -> list[Participant]:
    """The interpreters who move with p (admitted, called, dismissed, into rooms)."""
    return [q for q in p.appointment.participants if q.interprets_for_id == p.id]


def called_in(p: Participant) -> bool:
    """Waits until called (a witness, an expert, or their interpreter)."""
    principal = p.interprets_for if p.role is Role.INTERPRETER else None
    return p.role in CALLED_IN or (principal is not None and principal.role in CALLED_IN)


def taken_in_at_start(p: Participant) -> bool:
    """Moves into the hearing when it starts: everyone but witnesses, experts (and their
    interpreters) and observers; guests only once let in (or still invited: they go straight
    to the hearing when admitted later)."""
    if p.role is Role.OBSERVER or called_in(p):
        return False
    return p.role in STAFF_ROLES or p.lobby_state is not LobbyState.DENIED


def place_after_room(appointment: Appointment, p: Participant) -> Place:
    """Where someone leaving a private room goes: the hearing once it has started, unless
    they wait to be called."""
    if appointment.hearing_stage is HearingStage.OPENING or called_in(p):
        return Place.WAITING
    return Place.HEARING


# --- who receives whom -----------------------------------------------------------------------

def allowed_feeds(appointment: Appointment, participant: Participant) -> Feeds:
    """Whose audio and video this participant may receive now, per feed.

    A consult: everyone else in the call, fully. A hearing: in the hearing while it is in
    session, everyone else in it; in a private room, its other members only; an observer the
    hearing, while in session; anyone waiting (or a paused hearing) nothing. Observers are in
    nobody's; a screened person gets the protected one's audio, never their video; a mute
    that a host locked keeps that microphone from everyone."""
    members = presence.members(appointment)
    if participant.id not in {p.id for p in members}:
        return {}
    others = [p for p in members if p.id != participant.id]
    if appointment.kind is not Kind.HEARING:
        return {p.id: set(BOTH) for p in others}
    if participant.role is Role.OBSERVER:
        if appointment.hearing_stage is not HearingStage.IN_SESSION:
            return {}
        sources = [p for p in others if _in_hearing(p)]
    elif participant.place is Place.CONSULTATION:
        room = participant.consultation_room_id
        sources = [p for p in others if p.place is Place.CONSULTATION and room is not None
                   and p.consultation_room_id == room]
    elif _in_hearing(participant) and appointment.hearing_stage is HearingStage.IN_SESSION:
        sources = [p for p in others if _in_hearing(p)]
    else:
        return {}
    found: Feeds = {}
    for source in sources:
        media = _media_of(source, participant)
        if media:
            found[source.id] = media
    return found


def _in_hearing(p: Participant) -> bool:
    return p.place is Place.HEARING and p.role is not Role.OBSERVER


def _media_of(source: Participant, receiver: Participant) -> set[str]:
    media = set(BOTH)
    if source.mute_locked:
        media.discard(AUDIO)
    if not _interpreting(source, receiver) and any(
            q.id == receiver.id for q in source.screened_from):
        media.discard(VIDEO)
    return media


class Absent(enum.StrEnum):
    """Why a participant's audio or video is not in the record (the manifest says so)."""

    NOT_IN_CALL = "not_in_call"  # not connected (not joined yet, left, or dropped)
    NOT_IN_SESSION = "not_in_session"  # the hearing has not started, or is paused
    WAITING = "waiting"  # in the waiting room: not called yet, or dismissed
    CONSULTATION = "consultation"  # in a private room (counsel's or the bench's)
    MUTED = "muted"  # their microphone is off
    MUTE_LOCKED = "mute_locked"  # a host muted them and locked the mute


def unrecorded(appointment: Appointment) -> dict[int, dict[str, Absent]]:
    """For each participant the record could hold (everyone but observers), which of their
    media the record does not hold now, and why; {} for someone fully recorded. The first
    reason that holds wins: not in the call, in a private room, waiting, the hearing not in
    session; a microphone that is off (or locked off) only costs the audio."""
    in_call = {p.id for p in presence.members(appointment)}
    found: dict[int, dict[str, Absent]] = {}
    for p in appointment.participants:
        if appointment.kind is Kind.HEARING and p.role is Role.OBSERVER:
            continue
        why = _why_absent(appointment, p, p.id in in_call)
        if why is not None:
            found[p.id] = {AUDIO: why, VIDEO: why}
        elif appointment.kind is Kind.HEARING and (p.mute_locked or not p.audio_on):
            found[p.id] = {AUDIO: Absent.MUTE_LOCKED if p.mute_locked else Absent.MUTED}
        else:
            found[p.id] = {}
    return found


def _why_absent(appointment: Appointment, p: Participant, in_call: bool) -> Absent | None:
    if not in_call:
        return Absent.NOT_IN_CALL
    if appointment.kind is not Kind.HEARING:
        return None
    if p.place is Place.CONSULTATION:
        return Absent.CONSULTATION
    if p.place is not Place.HEARING:
        return Absent.WAITING
    if appointment.hearing_stage is not HearingStage.IN_SESSION:
        return Absent.NOT_IN_SESSION
    return None


def recorded_feeds(appointment: Appointment) -> Feeds:
    """What the record holds now: the hearing itself while in session (not private rooms,
    not the waiting room, not observers), and no muted microphone. A consult: everyone in
    the call. (Why the rest is not: `unrecorded`.)"""
    found: Feeds = {}
    for pid, absent in unrecorded(appointment).items():
        media = set(BOTH) - set(absent)
        if media:
            found[pid] = media
    return found
