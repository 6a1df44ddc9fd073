"""Recordings in the browser: list, play and download (decrypted on the fly), delete.

Only the appointment's host and administrators; everyone else gets 403, guests included.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from portal.appointments.forms import ConfirmForm
from portal.audit import services as audit
from portal.extensions import db
from portal.models import Appointment, Recording, RecordingTrack
from portal.models.recording import STORED
from portal.recording import archive
from portal.recording.keys import KeyringError
from portal.recording.store import StoreError

bp = Blueprint("recordings", __name__)
CHUNK = 64 * 1024


def _may_open(appointment: Appointment) -> None:
    if not current_user.is_authenticated or current_user.must_change_password:
        abort(403, _("Only the host of this appointment and administrators can open its "
                     "recordings."))
    if appointment.host_id != current_user.id and not current_user.is_admin:
        abort(403, _("Only the host of this appointment and administrators can open its "
                     "recordings."))


def _recording(recording_id: str) -> Recording:
    recording = db.session.get(Recording, recording_id) if len(recording_id) == 32 else None
    if recording is None:
        abort(404)
    _may_open(recording.appointment)
    return recording


@bp.get("/appointments/<id:appointment_id>/recordings")
def index(appointment_id: int) -> ResponseReturnValue:
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None:
        abort(404)
    _may_open(appointment)
    recordings = db.session.scalars(select(Recording).where(
        Recording.appointment_id == appointment.id).order_by(Recording.requested_at.desc())).all()
    return render_template("recordings/index.html", appointment=appointment,
                           recordings=recordings, confirm=ConfirmForm(), stored=STORED)


@bp.get("/recordings/<recording_id>/tracks/<id:track_id>")
def media(recording_id: str, track_id: int) -> ResponseReturnValue:
    """The track's WebM, decrypted as it is sent; Range requests let the player seek."""
    recording = _recording(recording_id)
    track = db.session.get(RecordingTrack, track_id)
    if track is None or track.recording_id != recording.id:
        abort(404)
    if recording.status not in STORED:
        abort(409, _("This recording is not available (it is %(status)s).",
                     status=recording.status.value))
    try:
        source = archive.reader(recording, track)
    except (KeyringError, StoreError, OSError) as exc:
        abort(409, _("This recording cannot be opened: %(reason)s", reason=str(exc)))
    download = request.args.get("download") == "1"
    starts_at_zero = request.range is None or request.range.ranges[0][0] == 0
    if download or starts_at_zero:  # not every seek of the player: each viewing, once
        audit.record("recording.downloaded" if download else "recording.played",
                     object_type="recording", object_id=recording.id,
                     details={"track": track.name})
    stream: Any = archive.PlainStream(source)
    body = wrap_file(request.environ, stream, buffer_size=CHUNK)
    response = Response(body, mimetype="video/webm", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    if download:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="recording-{recording.id[:8]}-{track.name}.webm"')
    return response.make_conditional(request.environ, accept_ranges=True,
                                     complete_length=source.size)


@bp.post("/recordings/<recording_id>/delete")
def delete(recording_id: str) -> ResponseReturnValue:
    """Crypto-shred: the data key goes first (committed), then the files."""
    recording = _recording(recording_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, _("The form expired; try again."))
    if recording.status not in STORED:
        abort(409, _("Only a finished recording can be deleted."))
    archive.shred(recording, reason="deleted by a user")
    flash(_("The recording is deleted. Its key is destroyed, so no copy can be read."), "info")
    return redirect(url_for(".index", appointment_id=recording.appointment_id))
