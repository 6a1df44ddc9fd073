"""Marshmallow schemas of the JSON API: they validate requests, shape answers and, through
flask-smorest, are the OpenAPI document's components. One source for both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, post_load, pre_dump, validate

from portal.appointments.hearing import ADDABLE_ROLES, MAX_LANGUAGE, Seat
from portal.appointments.services import MAX_DURATION, MIN_DURATION, invite_window
from portal.inputs import MAX_ID
from portal.models import (
    Appointment,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    Status,
)

KINDS = [k.value for k in Kind]
POLICIES = [p.value for p in RecordingPolicy]
STATUSES = [s.value for s in Status]
ROLES = [r.value for r in ParticipantRole]
ADDABLE_ROLE_VALUES = [r.value for r in ADDABLE_ROLES]
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


def _participant_fields(reference: Callable[..., fields.Field]) -> dict[str, fields.Field]:
    """A participant to add; `reference` names another participant (an id, or a ref)."""
    return {
        "display_name": fields.String(validate=validate.Length(min=1, max=120), metadata={
            "description": "Required for guests; a staff seat defaults to the account's name."}),
        "role": fields.String(required=True, validate=validate.OneOf(ADDABLE_ROLE_VALUES),
                              metadata={"description": "judge, clerk and panel (hearings only) "
                                        "are staff accounts; every other role gets a link."}),
        "email": fields.Email(load_default=None, allow_none=True,
                              validate=validate.Length(max=254), metadata={
                                  "description": "Where a guest's invitation goes; optional."}),
        "staff_email": fields.Email(load_default=None, allow_none=True,
                                    validate=validate.Length(max=254), metadata={
            "description": "judge, clerk, panel: the e-mail address of an active staff "
                           "account, who joins signed in (no invite link)."}),
        "represents": fields.List(reference(), load_default=list, metadata={
            "description": "counsel: the parties of this hearing they represent."}),
        "interprets_for": reference(load_default=None, allow_none=True, metadata={
            "description": "interpreter: the participant interpreted for (not an interpreter "
                           "or observer); needs `language`."}),
        "language": fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=MAX_LANGUAGE), metadata={
            "description": "interpreter: a short BCP 47 tag, e.g. nb, en-GB, pl."}),
        "screened_from": fields.List(reference(), load_default=list, metadata={
            "description": "Screening: these participants never receive this one's video "
                           "(audio they do). Not the bench, nor an interpreter's principal."}),
        "message_language": fields.String(load_default=None, allow_none=True,
                                          validate=validate.OneOf(("en", "nb")), metadata={
            "description": "The language of the guest's e-mail (default: the request's "
                           "Accept-Language, else en)."}),
        "timezone": fields.String(load_default=None, allow_none=True,
                                  validate=validate.Length(min=1, max=64), metadata={
            "description": "The IANA time zone the guest's e-mail states times in, e.g. "
                           "Europe/Oslo (default: the host's)."}),
    }


def _id(**kwargs: Any) -> fields.Field:
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)


def _ref(**kwargs: Any) -> fields.Field:
    return fields.String(validate=validate.Length(min=1, max=40), **kwargs)


class _SeatInput(Schema):
    @post_load
    def _to_seat(self, data: dict[str, Any], **_kwargs: Any) -> Seat:
        data["role"] = ParticipantRole(data["role"])
        data.setdefault("display_name", "")
        return Seat(**data)


#: A participant to add to an appointment; references are the ids of its participants.
ParticipantCreateSchema = _SeatInput.from_dict(
    _participant_fields(_id), name="ParticipantCreateSchema")

#: A participant booked with the appointment; references are other participants' `ref`.
BookingParticipantSchema = _SeatInput.from_dict({
    **_participant_fields(_ref),
    "ref": _ref(load_default=None, metadata={
        "description": "This participant's name within this request, for the references of "
                       "the others."}),
}, name="BookingParticipantSchema")


class ScreeningSchema(Schema):
    """Whom a participant is screened from, from now on; [] screens them from nobody."""

    screened_from = fields.List(_id(), required=True, metadata={
        "description": "Participant ids of the same appointment."})


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


#: A new appointment; the token's owner becomes its host. A hearing may bring its people.
AppointmentCreateSchema = _AppointmentInput.from_dict({
    **_appointment_fields(required=True),
    "participants": fields.List(fields.Nested(BookingParticipantSchema), load_default=list,
                                validate=validate.Length(max=100), metadata={
        "description": "Participants booked with it, all or none: a bad reference refuses "
                       "the whole request (422)."}),
    "observer_link": fields.Boolean(load_default=False, metadata={
        "description": "Hearings: turn the observer link on (shown once, in the answer)."}),
}, name="AppointmentCreateSchema")
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


# Answers ------------------------------------------------------------------------------------
# Every field of an answer is always present (null where allowed): hence required=True, which
# only documents this; dumping ignores it.


class InviteWindowSchema(Schema):
    opens_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "Invite links work from this moment ..."})
    closes_at = fields.AwareDateTime(required=True, format="iso", metadata={
        "description": "... until this one."})


class AppointmentSchema(Schema):
    """An appointment; an answer that also made links passes {"appointment": ..., extras}."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    title = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    starts_at = fields.AwareDateTime(required=True, format="iso")
    ends_at = fields.AwareDateTime(required=True, format="iso")
    duration_minutes = fields.Integer(required=True)
    recording_policy = fields.String(required=True, validate=validate.OneOf(POLICIES))
    invite_window = fields.Nested(InviteWindowSchema, required=True)
    observer_link_enabled = fields.Boolean(required=True, metadata={
        "description": "Hearings: whether the observer link works (it is never shown again)."})
    reminders = fields.Boolean(required=True, metadata={
        "description": "Whether the guests get e-mail reminders before the start."})
    created_at = fields.AwareDateTime(required=True, format="iso")
    updated_at = fields.AwareDateTime(required=True, format="iso")

    @pre_dump
    def _with_window(self, given: Appointment | dict[str, Any], **_kwargs: Any,
                     ) -> dict[str, Any]:
        extra = {} if isinstance(given, Appointment) else dict(given)
        appointment: Appointment = extra.pop("appointment", given)
        opens, closes = invite_window(appointment)
        data = {name: getattr(appointment, name)
                for name in self.fields if name != "invite_window" and name not in extra}
        data["invite_window"] = {"opens_at": opens, "closes_at": closes}
        return {**data, **extra}


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
    staff = fields.Boolean(required=True, metadata={
        "description": "Joins with a staff account (host, judge, clerk, panel), not a link."})
    represents = fields.List(fields.Integer(), required=True, metadata={
        "description": "counsel: the ids of the parties they represent."})
    interprets_for = fields.Integer(required=True, allow_none=True, metadata={
        "description": "interpreter: the id of the participant they interpret for."})
    language = fields.String(required=True, allow_none=True)
    message_language = fields.String(required=True, allow_none=True)
    timezone = fields.String(required=True, allow_none=True)
    screened_from = fields.List(fields.Integer(), required=True, metadata={
        "description": "The ids of the participants who never receive this one's video."})

    @pre_dump
    def _ids(self, given: Participant | dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        extra = {} if isinstance(given, Participant) else dict(given)
        person: Participant = extra.pop("participant", given)
        shown = {name: getattr(person, name) for name in (
            "id", "display_name", "role", "email", "lobby_state", "invite_issued_at",
            "invite_revoked_at", "language", "message_language", "timezone")}
        return {**shown, "staff": person.user_id is not None,
                "represents": [p.id for p in person.represents],
                "interprets_for": person.interprets_for_id,
                "screened_from": [p.id for p in person.screened_from], **extra}


class InvitedParticipantSchema(ParticipantSchema):
    invite_url = fields.Url(required=True, allow_none=True, metadata={
        "description": "The guest's link. Shown only in this answer: it is stored as a hash. "
                       "null for staff, who sign in."})


class BookedParticipantSchema(InvitedParticipantSchema):
    ref = fields.String(required=True, allow_none=True, metadata={
        "description": "The participant's `ref` in the booking request."})


class BookedAppointmentSchema(AppointmentSchema):
    participants = fields.List(fields.Nested(BookedParticipantSchema), required=True, metadata={
        "description": "Everyone, the host first; each guest's link is in this answer only."})
    observer_url = fields.Url(required=True, allow_none=True, metadata={
        "description": "The observer link, when it was turned on: shown in this answer only."})


class ObserverLinkSchema(Schema):
    observer_url = fields.Url(required=True, metadata={
        "description": "The hearing's observer link, shown in this answer only. Turning it on "
                       "again makes a new one; the old one stops working."})


class MessageSchema(Schema):
    """One e-mail to a guest and how it went (addresses and links are not shown here)."""

    id = fields.Integer(required=True)
    participant_id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(
        ("invitation", "update", "reminder", "cancellation")))
    status = fields.String(required=True, validate=validate.OneOf(
        ("queued", "sending", "sent", "failed", "skipped")), metadata={
        "description": "failed: `error` says why; tried again at `next_try_at` (null: given "
                       "up, resend it). skipped: no longer true when its turn came."})
    sequence = fields.Integer(required=True, metadata={
        "description": "The calendar entry's SEQUENCE in this message."})
    attempts = fields.Integer(required=True)
    error = fields.String(required=True, allow_none=True, attribute="last_error")
    next_try_at = fields.AwareDateTime(required=True, format="iso", allow_none=True)
    created_at = fields.AwareDateTime(required=True, format="iso")
    sent_at = fields.AwareDateTime(required=True, format="iso", allow_none=True)


class ReminderSettingSchema(Schema):
    on = fields.Boolean(required=True, metadata={
        "description": "Whether this appointment's guests get reminders before the start."})
