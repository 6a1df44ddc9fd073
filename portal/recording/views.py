"""Recordings in the browser: list, play and download (decrypted on the fly), delete.

Only the appointment's host. Anyone else signed in, administrators included, finds nothing
there (404, as for an id that does not exist); visitors without a session are sent to sign in.
Administrators handle recordings from the command line (verify, export, purge), which shows no
names.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wrappers import Response
from werkzeug.wsgi import wrap_file

from portal.appointments import services as appointments
from portal.appointments.forms import ConfirmForm
from portal.database import writing
from portal.extensions import db
from portal.models import Recording, RecordingTrack
from portal.models.recording import STORED
from portal.recording import archive, loss_report, playback
from portal.recording.keys import KeyringError
from portal.recording.store import StoreError

bp = Blueprint("recordings", __name__)
CHUNK = 64 * 1024


def _recording(recording_id: str) -> Recording:
    """The recording if the asker hosts its appointment; for anyone else it does not exist."""
    recording = db.session.get(Recording, recording_id) if len(recording_id) == 32 else None
    if recording is None or recording.appointment.host_id != current_user.id:
        abort(404)
    return recording


@bp.get("/appointments/<id:appointment_id>/recordings")
@login_required
def index(appointment_id: int) -> ResponseReturnValue:
    appointment = appointments.get_for_host(current_user, appointment_id)
    recordings = db.session.scalars(select(Recording).where(
        Recording.appointment_id == appointment.id).order_by(Recording.requested_at.desc())).all()
    return render_template("recordings/index.html", appointment=appointment,
                           recordings=recordings, confirm=ConfirmForm(), stored=STORED,
                           losses={r.id: loss_report.report(r) for r in recordings})


@bp.get("/recordings/<recording_id>/tracks/<id:track_id>")
@login_required
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
    stream: Any = archive.PlainStream(source)
    body = wrap_file(request.environ, stream, buffer_size=CHUNK)
    response = Response(body, mimetype="video/webm", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-store"
    if download:
        response.headers["Content-Disposition"] = (
            f'attachment; filename="recording-{recording.id[:8]}-{track.name}.webm"')
    try:
        response = response.make_conditional(request.environ, accept_ranges=True,
                                             complete_length=source.size)
    except RequestedRangeNotSatisfiable:  # nothing is read, so nothing is audited
        stream.close()
        raise
    writing()  # a read of a recording is audited: a write on this GET
    playback.note_read(recording, track, _served(response, source.size),
                       size=source.size, download=download)
    return response


def _served(response: Response, size: int) -> playback.Span | None:
    """The byte range the response carries (None: no body, as for HEAD or an empty track)."""
    if request.method == "HEAD" or size == 0:
        return None
    found = response.content_range
    if response.status_code == 206 and found.start is not None and found.stop is not None:
        return found.start, found.stop - 1
    return 0, size - 1


@bp.post("/recordings/<recording_id>/delete")
@login_required
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
