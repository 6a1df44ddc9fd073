"""Marshmallow schemas of the JSON API: they validate requests, shape answers and, through
flask-smorest, are the OpenAPI document's components. One source for both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, post_load, pre_dump, validate

from portal.appointments.services import MAX_DURATION, MIN_DURATION, invite_window
from portal.models import (
    GUEST_ROLES,
    Appointment,
    Kind,
    LobbyState,
    ParticipantRole,
    RecordingPolicy,
    Status,
)

KINDS = [k.value for k in Kind]
POLICIES = [p.value for p in RecordingPolicy]
STATUSES = [s.value for s in Status]
ROLES = [r.value for r in ParticipantRole]
GUEST_ROLE_VALUES = [r.value for r in GUEST_ROLES]
LOBBY_STATES = [s.value for s in LobbyState]

_AWARE = "ISO 8601 with a UTC offset, e.g. 2026-11-25T10:00:00+01:00. Stored and answered in UTC."


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


class UtcDateTime(fields.AwareDateTime):
    """An aware ISO 8601 time, turned to UTC; one so near year 1 or 9999 that the conversion
    (or an appointment's end after it) overflows is invalid, not a 500."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None
        if not 1970 <= moment.year <= 9000:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return moment


class ErrorSchema(Schema):
    """Every error answer: a stable code for programs and a message for people."""

    code = fields.String(required=True, metadata={
        "description": "Stable, machine-readable: unauthorized, not_found, conflict, invalid, "
                       "bad_request, method_not_allowed, too_many_requests, ..."})
    message = fields.String(required=True, metadata={"description": "Human-readable."})
    field = fields.String(allow_none=True, metadata={
        "description": "The request field a domain rule refused, if any."})
    errors = fields.Dict(keys=fields.String(), values=fields.Raw(), metadata={
        "description": "Validation messages by location and field, e.g. "
                       '{"json": {"title": ["Missing data for required field."]}}.'})


# Requests -----------------------------------------------------------------------------------


def _appointment_fields(*, required: bool) -> dict[str, fields.Field]:
    """The fields of a new appointment (all required) or of a change (any subset)."""
    return {
        "kind": fields.String(required=required, validate=validate.OneOf(KINDS), metadata={
            "description": "A consult or a hearing."}),
        "title": fields.String(required=required, validate=validate.Length(min=1, max=200)),
        "starts_at": UtcDateTime(required=required, format="iso",
                                 metadata={"description": _AWARE}),
        "duration_minutes": fields.Integer(
            required=required, strict=True,
            validate=validate.Range(min=MIN_DURATION, max=MAX_DURATION)),
        "recording_policy": fields.String(
            required=required, validate=validate.OneOf(POLICIES), metadata={
                "description": "off: never recorded; consent: only if every participant agrees; "
                               "notice: recorded by order of the court (hearings only)."}),
    }


class _AppointmentInput(Schema):
    @post_load
    def _to_domain(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "kind" in data:
            data["kind"] = Kind(data["kind"])
        if "recording_policy" in data:
            data["recording_policy"] = RecordingPolicy(data["recording_policy"])
        if "starts_at" in data:
            data["starts_at"] = _utc(data["starts_at"])
        return data


#: A new appointment; the token's owner becomes its host.
AppointmentCreateSchema = _AppointmentInput.from_dict(
    _appointment_fields(required=True), name="AppointmentCreateSchema")
#: Change or reschedule a scheduled appointment: send only the fields that change.
AppointmentUpdateSchema = _AppointmentInput.from_dict(
    _appointment_fields(required=False), name="AppointmentUpdateSchema")


class AppointmentQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(STATUSES),
                           metadata={"description": "Only appointments in this state."})

    @post_load
    def _to_domain(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        if "status" in data:
            data["status"] = Status(data["status"])
        return data


class ParticipantCreateSchema(Schema):
    """A guest to invite; the answer carries the invite link, shown this once."""

    display_name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    role = fields.String(required=True, validate=validate.OneOf(GUEST_ROLE_VALUES))
    email = fields.Email(load_default=None, allow_none=True, validate=validate.Length(max=254),
                         metadata={"description": "Where the invitation goes; optional."})

    @post_load
    def _to_domain(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["role"] = ParticipantRole(data["role"])
        return data


# Answers ------------------------------------------------------------------------------------
# Every field of an answer is always present (null where allowed): hence required=True, which
# only documents this; dumping ignores it.


class InviteWindowSchema(Schema):
    opens_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "Invite links work from this moment ..."})
    closes_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "... until this one."})


class AppointmentSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    title = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    starts_at = fields.AwareDateTime(required=True, format="iso")
    ends_at = fields.AwareDateTime(required=True, format="iso")
    duration_minutes = fields.Integer(required=True)
    recording_policy = fields.String(required=True, validate=validate.OneOf(POLICIES))
    invite_window = fields.Nested(InviteWindowSchema, required=True)
    created_at = fields.AwareDateTime(required=True, format="iso")
    updated_at = fields.AwareDateTime(required=True, format="iso")

    @pre_dump
    def _with_window(self, appointment: Appointment, **_kwargs: Any) -> dict[str, Any]:
        opens, closes = invite_window(appointment)
        data = {name: getattr(appointment, name)
                for name in self.fields if name != "invite_window"}
        data["invite_window"] = {"opens_at": opens, "closes_at": closes}
        return data


class ParticipantSchema(Schema):
    id = fields.Integer(required=True)
    display_name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    email = fields.String(required=True, allow_none=True)
    lobby_state = fields.String(required=True, validate=validate.OneOf(LOBBY_STATES))
    invite_issued_at = fields.AwareDateTime(required=True, format="iso", allow_none=True,
                                            metadata={"description": "When the current invite "
                                                      "link was made; null for the host."})
    invite_revoked_at = fields.AwareDateTime(required=True, format="iso", allow_none=True)


class InvitedParticipantSchema(ParticipantSchema):
    invite_url = fields.Url(required=True, metadata={
        "description": "The guest's link. Shown only in this answer: it is stored as a hash."})
