"""What a participant in the call may do about its recording: ask for it (the host), answer
the consent prompt, stop it (the host), and offer its media to the recorder. Each checks who
asks and the recording's state, then hands the change to the media side (manager.apply)."""

from __future__ import annotations

from flask_babel import gettext as _

from portal import presence
from portal.errors import Conflict, Forbidden, NotFound
from portal.extensions import db
from portal.hearing import policy, procedure
from portal.hearing.procedure import Action
from portal.models import (
    Decision,
    Participant,
    Recording,
    RecordingPolicy,
    RecordingStatus,
)
from portal.recording import manager, services
from portal.recording.wording import Wording, wording

#: Tracks one participant may have in one recording: each reconnect adds one.
MAX_TRACKS_PER_PARTICIPANT = 50


def _in_call(me: Participant, sid: str) -> None:
    if not presence.in_call(me, sid):
        raise Conflict(_("Join the call first."), code="not_in_call")


def _recording(me: Participant, recording_id: str) -> Recording:
    recording = db.session.get(Recording, recording_id)
    if recording is None or recording.appointment_id != me.appointment_id:
        raise NotFound(_("There is no such recording in this call."), code="unknown_recording")
    return recording


def _shown(me: Participant, version: str) -> Wording:
    """The wording the participant read; it must be the one in force."""
    policy = me.appointment.recording_policy
    if policy is RecordingPolicy.OFF:
        raise Forbidden(_("This appointment is not to be recorded."))
    shown = wording("notice" if policy is RecordingPolicy.NOTICE else "consent")
    if version != shown.version:
        raise Conflict(_("The recording notice has changed; read it again."),
                       code="stale_wording")
    return shown


def start(me: Participant, sid: str, version: str, asker: services.Asker) -> None:
    """The host presses Record, having read the wording."""
    if not procedure.may(me, Action.RECORD):
        raise Forbidden(_("Only the host can start a recording."))
    _in_call(me, sid)
    manager.get().apply(services.request(me, _shown(me, version), asker))


def answer(me: Participant, sid: str, recording_id: str, decision: Decision, version: str,
           asker: services.Asker) -> None:
    """Consent given, declined or withdrawn."""
    _in_call(me, sid)
    recording = _recording(me, recording_id)
    shown = _shown(me, version)
    manager.get().apply(services.decide(me, recording, decision, shown, asker))


def stop(me: Participant, sid: str, recording_id: str, asker: services.Asker) -> None:
    if not procedure.may(me, Action.RECORD):
        raise Forbidden(_("Only the host can stop the recording; you can withdraw your "
                          "consent."))
    _in_call(me, sid)
    recording = _recording(me, recording_id)
    manager.get().apply(services.stop(recording, "stopped_by_host", asker.actor))


def offer(me: Participant, sid: str, recording_id: str, sdp: str,
          reply: manager.Reply) -> None:
    """The participant's browser offers its media to the recorder; reply gets the answer."""
    _in_call(me, sid)
    recording = _recording(me, recording_id)
    if policy.uses_janus(me.appointment):  # recorded from Janus by the recorder process
        raise Conflict(_("This call is recorded by its media server."), code="use_hearing")
    if (recording.status not in (RecordingStatus.RECORDING, RecordingStatus.PAUSED)
            or recording.stopped_at is not None):
        raise Conflict(_("This recording is not running."), code="not_recording")
    if me.id not in services.publishers(recording):
        raise Forbidden(_("Only someone who agreed is recorded."))
    tracks = sum(1 for t in recording.tracks
                 if t.participant_id == me.id and t.mode != manager.FAILED)
    if tracks >= MAX_TRACKS_PER_PARTICIPANT:  # failed offers reuse a row: these connected
        raise Conflict(_("Too many attempts to connect to the recorder."), code="too_many_offers")
    manager.get().publish(recording, me, sdp, reply)
