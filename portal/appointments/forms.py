"""Booking and guest forms. Times are entered in the viewer's zone and stored in UTC."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, EmailField, Field, IntegerField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from portal.appointments.services import MAX_DURATION, MIN_DURATION
from portal.models import GUEST_ROLES, Kind, ParticipantRole, RecordingPolicy
from portal.timeutil import local_to_utc


def kind_choices() -> list[tuple[str, str]]:
    return [(Kind.CONSULT.value, str(_l("Consult"))), (Kind.HEARING.value, str(_l("Hearing")))]


def policy_choices() -> list[tuple[str, str]]:
    return [
        (RecordingPolicy.OFF.value, str(_l("Never recorded"))),
        (RecordingPolicy.CONSENT.value, str(_l("Recorded only if everyone consents"))),
        (RecordingPolicy.NOTICE.value, str(_l("Recorded by order of the court (hearings)"))),
    ]


def role_label(role: ParticipantRole) -> str:
    labels = {
        ParticipantRole.HOST: _l("Host"), ParticipantRole.PATIENT: _l("Patient"),
        ParticipantRole.CLIENT: _l("Client"), ParticipantRole.COUNSEL: _l("Counsel"),
        ParticipantRole.PARTY: _l("Party"), ParticipantRole.WITNESS: _l("Witness"),
        ParticipantRole.INTERPRETER: _l("Interpreter"), ParticipantRole.OBSERVER: _l("Observer"),
        ParticipantRole.JUDGE: _l("Judge"), ParticipantRole.CLERK: _l("Clerk"),
        ParticipantRole.PANEL: _l("Panel member"), ParticipantRole.EXPERT: _l("Expert"),
    }
    return str(labels[role])


class AppointmentForm(FlaskForm):
    kind = SelectField(_l("Kind"), validators=[DataRequired()])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    # InputRequired, not DataRequired: an unreadable value gets "Not a valid …", not "required".
    starts_at = DateTimeLocalField(_l("Start"), format="%Y-%m-%dT%H:%M",
                                   validators=[InputRequired()])
    duration_minutes = IntegerField(
        _l("Duration (minutes)"), default=30,
        validators=[InputRequired(), NumberRange(min=MIN_DURATION, max=MAX_DURATION)])
    recording_policy = SelectField(_l("Recording"), validators=[DataRequired()])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.kind.choices = kind_choices()
        self.recording_policy.choices = policy_choices()

    def validate_starts_at(self, field: Field) -> None:
        """Times at the very edge of the calendar (year 1, year 9999) have no UTC equivalent."""
        if field.data is None:
            return
        try:
            local_to_utc(field.data)
        except OverflowError as exc:
            raise ValidationError(field.gettext("Not a valid datetime value.")) from exc


class GuestForm(FlaskForm):
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    role = SelectField(_l("Role"), validators=[DataRequired()])
    email = EmailField(_l("E-mail (optional)"), validators=[Optional(), Email(), Length(max=254)])

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.role.choices = [(r.value, role_label(r)) for r in GUEST_ROLES]


class ConfirmForm(FlaskForm):
    """An empty form: a POST button with its CSRF token."""
