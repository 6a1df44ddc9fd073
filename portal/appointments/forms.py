"""Booking and guest forms. Times are entered in the viewer's zone and stored in UTC."""

from __future__ import annotations

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    EmailField,
    Field,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from portal.appointments.hearing import (
    ADDABLE_ROLES,
    MAX_LANGUAGE,
    NOT_INTERPRETED,
    SEAT_ROLES,
    Seat,
)
from portal.appointments.services import MAX_DURATION, MIN_DURATION
from portal.models import (
    GUEST_ROLES,
    STAFF_ROLES,
    Appointment,
    Kind,
    Participant,
    ParticipantRole,
    RecordingPolicy,
)
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


def _people(people: list[Participant]) -> list[tuple[str, str]]:
    return [(str(p.id), f"{p.display_name} ({role_label(p.role)})") for p in people]


class ParticipantForm(FlaskForm):
    """Add someone: a guest (who gets a link) or, in a hearing, a judge, clerk or panel member
    (a staff account, named by e-mail), with whom they represent, interpret for, are
    screened from. The choices are this appointment's people: a forged one is refused."""

    display_name = StringField(_l("Name"), validators=[Length(max=120)])
    role = SelectField(_l("Role"), validators=[DataRequired()])
    email = EmailField(_l("E-mail (optional)"), validators=[Optional(), Email(), Length(max=254)])
    staff_email = EmailField(_l("Staff account's e-mail (judge, clerk, panel member)"),
                             validators=[Optional(), Email(), Length(max=254)])
    represents = SelectMultipleField(_l("Represents (counsel)"), choices=[])
    interprets_for = SelectField(_l("Interprets for (interpreter)"), choices=[], default="")
    language = StringField(_l("Language, e.g. nb, en-GB, pl (interpreter)"),
                           validators=[Optional(), Length(max=MAX_LANGUAGE)])
    screened_from = SelectMultipleField(_l("Screened from: they never see this person"),
                                        choices=[])
    # The e-mail the guest gets (when the portal sends e-mail): its language and time zone.
    # Checked by the domain (message_settings); left out, the default applies.
    message_language = SelectField(_l("Language of the e-mail"), choices=[], validate_choice=False)
    timezone = StringField(_l("Guest's time zone, e.g. Europe/Oslo (blank: yours)"),
                           validators=[Optional(), Length(max=64)])

    def __init__(self, appointment: Appointment, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        hearing = appointment.kind is Kind.HEARING
        self.role.choices = [(r.value, role_label(r))
                             for r in (ADDABLE_ROLES if hearing else GUEST_ROLES)]
        people = list(appointment.participants)
        self.represents.choices = _people([p for p in people
                                           if p.role is ParticipantRole.PARTY])
        self.interprets_for.choices = [("", "—"), *_people(
            [p for p in people if p.role not in NOT_INTERPRETED])]
        self.screened_from.choices = _people([p for p in people if p.role not in STAFF_ROLES])
        self.message_language.choices = [("en", "English"), ("nb", "Norsk bokmål")]
        if not self.is_submitted():  # the host's language is the guest's, unless chosen
            locale = get_locale()
            self.message_language.data = str(locale) if locale and str(locale) in (
                "en", "nb") else "en"

    def validate_display_name(self, field: Field) -> None:
        """Staff seats may leave it empty (the account's name is used); guests may not."""
        if self.role.data not in {r.value for r in SEAT_ROLES} and not (field.data or "").strip():
            raise ValidationError(field.gettext("This field is required."))

    def seat(self) -> Seat:
        return Seat(role=ParticipantRole(self.role.data),
                    display_name=self.display_name.data or "", email=self.email.data or None,
                    staff_email=self.staff_email.data or None,
                    represents=[int(v) for v in self.represents.data or ()],
                    interprets_for=int(self.interprets_for.data) if self.interprets_for.data
                    else None,
                    language=self.language.data or None,
                    screened_from=[int(v) for v in self.screened_from.data or ()],
                    message_language=self.message_language.data or None,
                    timezone=(self.timezone.data or "").strip() or None)


class ScreeningForm(FlaskForm):
    """Change whom one participant is screened from (the list replaces the one before)."""

    participant = SelectField(_l("Participant"), validators=[DataRequired()], choices=[])
    screened_from = SelectMultipleField(_l("Screened from"), choices=[])

    def __init__(self, appointment: Appointment, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        people = [p for p in appointment.participants if p.role not in STAFF_ROLES]
        self.participant.choices = _people(people)
        self.screened_from.choices = _people(people)


class ConfirmForm(FlaskForm):
    """An empty form: a POST button with its CSRF token."""
