"""The /api/v1 endpoints: a host's appointments and guests, for a clinic's or a court's own
system. Thin: every rule lives in appointments.services; every answer is a schema."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, url_for
from flask.views import MethodView
from flask_babel import gettext as _
from flask_smorest import Blueprint
from webargs.flaskparser import abort
from werkzeug.exceptions import HTTPException

from portal import outbox
from portal.api import auth, errors
from portal.api.schemas import (
    AppointmentCreateSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AppointmentUpdateSchema,
    BookedAppointmentSchema,
    InvitedParticipantSchema,
    MessageSchema,
    ObserverLinkSchema,
    ParticipantCreateSchema,
    ParticipantSchema,
    ReminderSettingSchema,
    ScreeningSchema,
)
from portal.appointments import hearing, services
from portal.appointments.hearing import Seat
from portal.errors import Conflict, DomainError, NotFound
from portal.extensions import db, limiter
from portal.links import invite_url, observer_url
from portal.models import Appointment, OutboxMessage, Participant

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="Appointments and invitations, acting as the token's owner.")

#: Methods that carry a body; it must be JSON.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_json_body() -> None:
    """A body in any other format would be read as empty: refuse it instead."""
    if request.method in _BODY_METHODS and request.get_data(cache=True) and not request.is_json:
        abort(400, message=_("Send the body as JSON (Content-Type: application/json)."))


bp.before_request(auth.authenticate)
bp.before_request(require_json_body)
bp.after_request(auth.finish)
bp.register_error_handler(DomainError, errors.handle_domain)
bp.register_error_handler(HTTPException, errors.handle_http)
limiter.shared_limit(lambda: current_app.config["API_RATE_LIMIT"], scope="api")(bp)


def _appointment(appointment_id: int) -> Appointment:
    """An appointment the token's owner hosts or sits in; anyone else's is 404."""
    return hearing.get_for_staff(auth.current_host(), appointment_id)


def _to_change(appointment_id: int) -> Appointment:
    """An appointment whose booking the token's owner may change (a panel member: 403)."""
    return hearing.get_to_change(auth.current_host(), appointment_id)


def _guest(appointment_id: int, participant_id: int) -> Participant:
    return services.get_guest(_to_change(appointment_id), participant_id)


def _invited(guest: Participant, token: str | None, **extra: Any) -> dict[str, Any]:
    """The participant as InvitedParticipantSchema dumps it: with the link, not stored."""
    return {"participant": guest, "invite_url": invite_url(token) if token else None, **extra}


@bp.route("/appointments", endpoint="appointments")
class Appointments(MethodView):
    @bp.arguments(AppointmentQuerySchema, location="query")
    @bp.response(200, AppointmentSchema(many=True))
    @bp.alt_response(401, response="UNAUTHORIZED")
    def get(self, query: dict[str, Any]) -> list[Appointment]:
        """List the host's appointments

        Soonest first, past ones included.
        """
        status = query.get("status")
        return [a for a in services.for_host(auth.current_host())
                if status is None or a.status is status]

    @bp.arguments(AppointmentCreateSchema)
    @bp.response(201, BookedAppointmentSchema, headers={"Location": {
        "description": "The new appointment's address", "schema": {"type": "string"}}})
    @bp.alt_response(400, response="BAD_REQUEST")
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Book an appointment, and a hearing's people with it

        The token's owner is the host. A notice recording policy is for hearings only.
        `participants` may name each other by `ref` (counsel's `represents`, an
        interpreter's `interprets_for`, `screened_from`). The request is all or nothing: a
        bad reference is 422 and books nothing. The answer holds each guest's invite link
        and the observer link: this once only.
        """
        booked = hearing.book_hearing(auth.current_host(), data.pop("participants"),
                                      observer_link=data.pop("observer_link"), **data)
        appointment = booked.appointment
        made = {one.participant.id: one for one in booked.added}
        people = [_invited(p, made[p.id].token if p.id in made else None,
                           ref=made[p.id].ref if p.id in made else None)
                  for p in appointment.participants]
        location = url_for(".appointment", appointment_id=appointment.id)
        return {"appointment": appointment, "participants": people,
                "observer_url": (observer_url(booked.observer_token)
                                 if booked.observer_token else None)}, 201, {
            "Location": location}


@bp.route("/appointments/<id:appointment_id>", endpoint="appointment")
class AppointmentItem(MethodView):
    @bp.response(200, AppointmentSchema)
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, appointment_id: int) -> Appointment:
        """Show one appointment"""
        return _appointment(appointment_id)

    @bp.arguments(AppointmentUpdateSchema)
    @bp.response(200, AppointmentSchema)
    @bp.alt_response(400, response="BAD_REQUEST")
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    @bp.alt_response(409, response="CONFLICT")
    def patch(self, data: dict[str, Any], appointment_id: int) -> Appointment:
        """Change or reschedule an appointment

        Only a scheduled appointment can change. Existing invite links follow the new time.
        """
        appointment = services.update(_to_change(appointment_id), **data)
        db.session.flush()  # so that updated_at is the new one
        return appointment


@bp.route("/appointments/<id:appointment_id>/cancel", endpoint="cancel",
          methods=["POST"])
@bp.response(200, AppointmentSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def cancel(appointment_id: int) -> Appointment:
    """Cancel an appointment

    Every invite link then answers 410 Gone.
    """
    appointment = _to_change(appointment_id)
    services.cancel(appointment)
    return appointment


@bp.route("/appointments/<id:appointment_id>/participants", endpoint="participants")
class Participants(MethodView):
    @bp.response(200, ParticipantSchema(many=True))
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    def get(self, appointment_id: int) -> list[Participant]:
        """List the participants

        The host first, then the guests in the order they were invited.
        """
        return list(_appointment(appointment_id).participants)

    @bp.arguments(ParticipantCreateSchema)
    @bp.response(201, InvitedParticipantSchema)
    @bp.alt_response(400, response="BAD_REQUEST")
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    @bp.alt_response(409, response="CONFLICT")
    def post(self, data: Seat, appointment_id: int) -> dict[str, Any]:
        """Add a participant

        A guest gets an invite link, in this answer only: only its hash is kept. A judge,
        clerk or panel member (hearings only) names a staff account by `staff_email` and
        gets no link. References (`represents`, `interprets_for`, `screened_from`) are ids
        of this appointment's participants; a bad one is 422.
        """
        added = hearing.add_participant(_to_change(appointment_id), data)
        return _invited(added.participant, added.token)


@bp.route("/appointments/<id:appointment_id>/participants/<id:participant_id>/screening",
          endpoint="screening", methods=["PUT"])
@bp.arguments(ScreeningSchema)
@bp.response(200, ParticipantSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def screening(data: dict[str, Any], appointment_id: int, participant_id: int) -> Participant:
    """Change whom a participant is screened from

    Replaces the list: these participants never receive this one's video (they do hear
    them). `[]` screens them from nobody. Not the bench, nor an interpreter's principal.
    """
    appointment = _to_change(appointment_id)
    protected = next((p for p in appointment.participants if p.id == participant_id), None)
    if protected is None:
        raise NotFound(_("No such participant."))
    return hearing.set_screening(appointment, protected, data["screened_from"])


@bp.route("/appointments/<id:appointment_id>/observer-link", endpoint="observer_link")
class ObserverLink(MethodView):
    @bp.response(201, ObserverLinkSchema)
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    @bp.alt_response(409, response="CONFLICT")
    def post(self, appointment_id: int) -> dict[str, Any]:
        """Turn the observer link on

        A hearing's name-only link for observers and the press, shown in this answer only.
        Each call makes a new link; the one before stops working.
        """
        token = hearing.enable_observer_link(_to_change(appointment_id))
        return {"observer_url": observer_url(token)}

    @bp.response(204)
    @bp.alt_response(401, response="UNAUTHORIZED")
    @bp.alt_response(404, response="NOT_FOUND")
    def delete(self, appointment_id: int) -> None:
        """Turn the observer link off

        The link answers 410 Gone from then on. Observers who joined keep their own links.
        """
        hearing.disable_observer_link(_to_change(appointment_id))


@bp.route("/appointments/<id:appointment_id>/participants/<id:participant_id>/revoke",
          endpoint="revoke", methods=["POST"])
@bp.response(200, ParticipantSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
def revoke(appointment_id: int, participant_id: int) -> Participant:
    """Revoke a guest's invite link

    The link answers 410 Gone from now on. Revoking twice changes nothing.
    """
    guest = _guest(appointment_id, participant_id)
    services.revoke_invite(guest)
    return guest


@bp.route("/appointments/<id:appointment_id>/participants/<id:participant_id>/reissue",
          endpoint="reissue", methods=["POST"])
@bp.response(200, InvitedParticipantSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def reissue(appointment_id: int, participant_id: int) -> dict[str, Any]:
    """Give a guest a new invite link

    The old link stops working; a revoked guest is invited again. Shown this once.
    """
    guest = _guest(appointment_id, participant_id)
    token = services.reissue_invite(guest)
    return _invited(guest, token)


@bp.route("/appointments/<id:appointment_id>/messages", endpoint="messages")
@bp.response(200, MessageSchema(many=True))
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
def messages(appointment_id: int) -> list[OutboxMessage]:
    """List the e-mail sent to the guests

    Newest first, each with its status: queued, sending, sent, failed (with the reason and
    the next try) or skipped.
    """
    return outbox.messages_of(_appointment(appointment_id))


@bp.route("/appointments/<id:appointment_id>/messages/<id:message_id>/resend",
          endpoint="resend", methods=["POST"])
@bp.response(202, MessageSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def resend(appointment_id: int, message_id: int) -> OutboxMessage:
    """Send a message again

    A failed message is tried at once; any other is queued anew, written as things are then.
    """
    message = outbox.get_message(_to_change(appointment_id), message_id)
    if message is None:
        raise NotFound(_("No such message."))
    if not outbox.sending():
        raise Conflict(_("This portal sends no e-mail."))
    again = outbox.resend(message)
    db.session.flush()
    return again


@bp.route("/appointments/<id:appointment_id>/reminders", endpoint="reminders",
          methods=["PUT"])
@bp.arguments(ReminderSettingSchema)
@bp.response(200, AppointmentSchema)
@bp.alt_response(401, response="UNAUTHORIZED")
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def reminders(data: dict[str, Any], appointment_id: int) -> Appointment:
    """Turn reminders on or off for one appointment"""
    appointment = _to_change(appointment_id)
    outbox.set_reminders(appointment, data["on"])
    return appointment
