"""Changes made outside the call (a stopped link, a cancelled appointment) reach the sockets.

Views and the API call these inside their transaction; the sockets hear of it after commit,
from a background task, so that no socket handler runs inside someone else's transaction.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext as _

from portal.call import presence
from portal.call.guard import Refused, close_appointment_sockets, refuse
from portal.database import after_commit
from portal.extensions import db, socketio
from portal.models import Appointment, Participant


def guest_removed(guest: Participant) -> None:
    """The guest's link was stopped or replaced: out of the lobby and the call, at once."""
    sid, pid, appointment_id = guest.presence_sid, guest.id, guest.appointment_id
    was_in_call = presence.in_call(guest)
    presence.leave(guest)
    message = _("This invite link was stopped by the host.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def tell() -> None:
        with app.app_context():
            if was_in_call:
                socketio.emit("call:peer-left", {"id": pid}, to=presence.call_room(appointment_id))
            if sid is not None:
                refuse(sid, "connect", Refused("ended", message, close=True))
            appointment = db.session.get(Appointment, appointment_id)
            if appointment is not None:
                presence.send_lobby(appointment)

    after_commit(lambda: socketio.start_background_task(tell))


def appointment_closed(appointment: Appointment) -> None:
    """Cancelled: everyone still connected hears that it is over."""
    appointment_id = appointment.id
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def tell() -> None:
        with app.app_context():
            socketio.emit("call:ended", {}, to=presence.appointment_room(appointment_id))
            close_appointment_sockets(appointment_id)

    after_commit(lambda: socketio.start_background_task(tell))
