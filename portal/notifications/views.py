"""The host's actions on guests' e-mail: resend a message, reminders on or off. The status
itself is a section of the appointment page (templates/notifications/_status.html)."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal import outbox
from portal.appointments import hearing
from portal.appointments.forms import ConfirmForm
from portal.errors import DomainError
from portal.models import Appointment, MessageKind, MessageStatus
from portal.notifications import smtp

bp = Blueprint("notifications", __name__, url_prefix="/appointments")


def _own(appointment_id: int) -> Appointment:
    try:
        appointment = hearing.get_for_staff(current_user, appointment_id)
    except DomainError:
        abort(404)
    if not hearing.may_change(current_user, appointment):
        abort(403)
    return appointment


@bp.post("/<id:appointment_id>/messages/<id:message_id>/resend")
@login_required
def resend(appointment_id: int, message_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    message = outbox.get_message(appointment, message_id)
    if message is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if not outbox.sending():
        abort(409)
    outbox.resend(message)
    flash(_("The message is queued again."), "info")
    return redirect(url_for("appointments.show", appointment_id=appointment.id) + "#messages")


@bp.post("/<id:appointment_id>/reminders")
@login_required
def reminders(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        outbox.set_reminders(appointment, not appointment.reminders)
    except DomainError as err:
        flash(err.message, "error")
    return redirect(url_for("appointments.show", appointment_id=appointment.id) + "#messages")


def kind_label(kind: MessageKind) -> str:
    return {MessageKind.INVITATION: _("Invitation"), MessageKind.UPDATE: _("New time"),
            MessageKind.REMINDER: _("Reminder"),
            MessageKind.CANCELLATION: _("Cancellation")}[kind]


def status_label(status: MessageStatus) -> str:
    return {MessageStatus.QUEUED: _("queued"), MessageStatus.SENDING: _("sending"),
            MessageStatus.SENT: _("sent"), MessageStatus.FAILED: _("failed"),
            MessageStatus.SKIPPED: _("not sent")}[status]


def init_app(app: Flask) -> None:
    from portal.notifications.cli import notifications_cli

    app.register_blueprint(bp)
    app.cli.add_command(notifications_cli)
    app.jinja_env.globals.update(
        outbox_messages=outbox.messages_of,
        mail_on=lambda: smtp.configured(app.config),
        message_kind_label=kind_label, message_status_label=status_label)
