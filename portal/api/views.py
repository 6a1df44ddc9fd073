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

from portal.api import auth, errors
from portal.api.schemas import (
    AppointmentCreateSchema,
    AppointmentQuerySchema,
    AppointmentSchema,
    AppointmentUpdateSchema,
    InvitedParticipantSchema,
    ParticipantCreateSchema,
    ParticipantSchema,
)
from portal.appointments import services
from portal.errors import DomainError
from portal.extensions import db, limiter
from portal.links import invite_url
from portal.models import Appointment, Participant

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
    """One of the token owner's appointments; anyone else's is 404."""
    return services.get_for_host(auth.current_host(), appointment_id)


def _guest(appointment_id: int, participant_id: int) -> Participant:
    return services.get_guest(_appointment(appointment_id), participant_id)


def _invited(guest: Participant, token: str) -> dict[str, Any]:
    """The guest as InvitedParticipantSchema dumps it: with the link, which is not stored."""
    shown = {name: getattr(guest, name) for name in ParticipantSchema().fields}
    return {**shown, "invite_url": invite_url(token)}


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
    @bp.response(201, AppointmentSchema, headers={"Location": {
        "description": "The new appointment's address", "schema": {"type": "string"}}})
    @bp.alt_response(400, response="BAD_REQUEST")
    @bp.alt_response(401, response="UNAUTHORIZED")
    def post(self, data: dict[str, Any]) -> tuple[Appointment, int, dict[str, str]]:
        """Book an appointment

        The token's owner is the host. A notice recording policy is for hearings only.
        """
        appointment = services.book(auth.current_host(), **data)
        location = url_for(".appointment", appointment_id=appointment.id)
        return appointment, 201, {"Location": location}


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
        appointment = services.update(_appointment(appointment_id), **data)
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
    appointment = _appointment(appointment_id)
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
    def post(self, data: dict[str, Any], appointment_id: int) -> dict[str, Any]:
        """Invite a guest

        The answer holds the guest's invite link. It is shown this once: only its hash is kept.
        """
        guest, token = services.add_guest(_appointment(appointment_id), **data)
        return _invited(guest, token)


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
