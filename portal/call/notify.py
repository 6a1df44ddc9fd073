"""The notifier: what the domain announces (portal.signals) reaches the sockets.

Receivers run once the announcing transaction has committed. Work that reads the database
runs in a background task of its own, never inside someone else's transaction.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_babel import gettext as _

from portal import presence, signals
from portal.call import rooms
from portal.call.court_events import hosts_board
from portal.call.guard import Refused, refuse, sockets
from portal.extensions import db, socketio
from portal.models import Appointment, Kind


def send_lobby(appointment: Appointment) -> None:
    """The hosts' pages get the waiting room as it is now (a hearing's: its status board too)."""
    socketio.emit("lobby:list", {"waiting": presence.waiting(appointment)},
                  to=rooms.hosts_room(appointment.id))
    if appointment.kind is Kind.HEARING:
        socketio.emit("hearing:state", hosts_board(appointment),
                      to=rooms.hosts_room(appointment.id))


def _appointment_closed(app: Flask, *, appointment_id: int) -> None:
    """Ended or cancelled: everyone connected hears it is over, then every socket closes."""
    socketio.emit("call:ended", {}, to=rooms.appointment_room(appointment_id))
    socketio.close_room(rooms.call_room(appointment_id))
    sockets(app).close("appointment", appointment_id)


def _appointment_rescheduled(app: Flask, *, appointment_id: int) -> None:
    sockets(app).recheck("appointment", appointment_id)


def _link_stopped(app: Flask, *, participant_id: int, appointment_id: int, sid: str | None,
                  was_in_call: bool) -> None:
    """Out of the lobby and the call at once; any other tab of the link closes too."""
    message = _("This invite link was stopped by the host.")

    def tell() -> None:
        with app.app_context():
            if was_in_call:
                socketio.emit("call:peer-left", {"id": participant_id},
                              to=rooms.call_room(appointment_id))
            if sid is not None:
                refuse(sid, "connect", Refused("ended", message, close=True))
            sockets(app).recheck("participant", participant_id)
            appointment = db.session.get(Appointment, appointment_id)
            if appointment is not None:
                send_lobby(appointment)

    socketio.start_background_task(tell)


def _account_changed(app: Flask, *, user_id: int) -> None:
    sockets(app).recheck("user", user_id)


def _signed_out(app: Flask, *, user_id: int, message: str) -> None:
    sockets(app).close("user", user_id, "unauthorized", message)


def _session_ended(app: Flask, *, session_id: str, message: str) -> None:
    sockets(app).close("session", session_id, "unauthorized", message)


def _recording_changed(app: Flask, *, appointment_id: int, recording_id: str,
                       state: dict[str, Any], publish: list[str]) -> None:
    socketio.emit("record:state", state, to=rooms.appointment_room(appointment_id))
    for sid in publish:
        socketio.emit("record:publish", {"id": recording_id}, to=sid)


def _recording_losing(app: Flask, *, appointment_id: int, notice: dict[str, Any]) -> None:
    """Only the hosts: they can act on it (stop, ask the guest to move closer to Wi-Fi)."""
    socketio.emit("record:loss", notice, to=rooms.hosts_room(appointment_id))


def connect(app: Flask) -> None:
    """Listen to this app's announcements."""
    for signal, receiver in (
            (signals.appointment_closed, _appointment_closed),
            (signals.appointment_rescheduled, _appointment_rescheduled),
            (signals.link_stopped, _link_stopped),
            (signals.account_changed, _account_changed),
            (signals.signed_out, _signed_out),
            (signals.session_ended, _session_ended),
            (signals.recording_changed, _recording_changed),
            (signals.recording_losing, _recording_losing)):
        signal.connect(receiver, sender=app, weak=False)
