"""The host's pages: list, book, edit, cancel, guests and their invite links; a hearing's
staff seats, references, screening and observer link. A hearing's judge and clerk may do what
its host does; a panel member sees the page only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required

from portal.appointments import hearing, once, services
from portal.appointments.forms import (
    AppointmentForm,
    ConfirmForm,
    ParticipantForm,
    ScreeningForm,
)
from portal.database import all_or_nothing
from portal.errors import DomainError
from portal.links import invite_url, observer_url
from portal.models import (
    Appointment,
    Kind,
    Participant,
    RecordingPolicy,
    utcnow,
)
from portal.timeutil import local_to_utc, utc_to_local_naive

bp = Blueprint("appointments", __name__, url_prefix="/appointments")


def _seated(appointment_id: int) -> Appointment:
    """The host's appointment, or a hearing the user sits in; anyone else's is 404."""
    try:
        return hearing.get_for_staff(current_user, appointment_id)
    except DomainError:
        abort(404)


def _own(appointment_id: int) -> Appointment:
    """An appointment whose booking the user may change; a panel member gets 403."""
    appointment = _seated(appointment_id)
    if not hearing.may_change(current_user, appointment):
        abort(403)
    return appointment


def _link_made(appointment: Appointment, url: str, participant: Participant | None = None
               ) -> ResponseReturnValue:
    """Keep a new link for the appointment page, shown there once (post/redirect/get)."""
    once.keep(appointment.id, once.NewLink(participant.id if participant else None, url))
    return redirect(url_for(".show", appointment_id=appointment.id))


def _page(appointment: Appointment, *, participant_form: ParticipantForm | None = None,
          screening_form: ScreeningForm | None = None) -> str:
    """The appointment page; a link made by the POST before it is shown in it, this once."""
    new_link: tuple[Participant, str] | None = None
    new_observer_link: str | None = None
    made = once.take(appointment.id)
    if made is not None and made.participant is None:
        new_observer_link = made.url
    elif made is not None:
        guest = next((p for p in appointment.participants if p.id == made.participant), None)
        new_link = (guest, made.url) if guest is not None else None
    opens, closes = services.invite_window(appointment)
    return render_template(
        "appointments/show.html", appointment=appointment,
        may_change=hearing.may_change(current_user, appointment),
        owner=appointment.host_id == current_user.id,
        guest_form=participant_form or ParticipantForm(appointment, formdata=None),
        screening_form=screening_form or ScreeningForm(appointment, formdata=None),
        confirm=ConfirmForm(), window=(opens, closes), new_link=new_link,
        new_observer_link=new_observer_link)


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    appointments = services.listed_for_host(current_user)
    now = utcnow()
    upcoming = [a for a in appointments if a.ends_at >= now]
    past = [a for a in reversed(appointments) if a.ends_at < now]
    return render_template("appointments/index.html", upcoming=upcoming, past=past,
                           # url_for once, not per row: the page's link is this plus the id
                           show_url=url_for(".show", appointment_id=0).removesuffix("0"))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> ResponseReturnValue:
    form = AppointmentForm()
    if form.validate_on_submit():
        try:
            with all_or_nothing():
                appointment = services.book(
                    current_user, kind=Kind(form.kind.data), title=form.title.data or "",
                    starts_at=local_to_utc(form.starts_at.data),
                    duration_minutes=form.duration_minutes.data or 0,
                    recording_policy=RecordingPolicy(form.recording_policy.data))
        except DomainError as err:
            _attach(form, err)
            return render_template("appointments/edit.html", form=form, appointment=None), 422
        flash(_("Appointment booked. Now add the guests."), "info")
        return redirect(url_for(".show", appointment_id=appointment.id))
    status = 400 if form.is_submitted() else 200
    return render_template("appointments/edit.html", form=form, appointment=None), status


@bp.get("/<id:appointment_id>")
@login_required
def show(appointment_id: int) -> ResponseReturnValue:
    return _page(_seated(appointment_id))


@bp.get("/<id:appointment_id>/call")
@login_required
def call(appointment_id: int) -> ResponseReturnValue:
    appointment = _seated(appointment_id)
    services.require_open_for_call(appointment)
    # A panel member joins as staff but hosts nothing: no waiting room, Record or End.
    return render_template("appointments/call.html", appointment=appointment,
                           hosting=hearing.may_change(current_user, appointment))


@bp.route("/<id:appointment_id>/edit", methods=["GET", "POST"])
@login_required
def edit(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    services.require_scheduled(appointment)
    form = AppointmentForm()
    if not form.is_submitted():
        form.kind.data = appointment.kind.value
        form.title.data = appointment.title
        form.starts_at.data = utc_to_local_naive(appointment.starts_at)
        form.duration_minutes.data = appointment.duration_minutes
        form.recording_policy.data = appointment.recording_policy.value
    elif form.validate():
        starts_at = local_to_utc(form.starts_at.data)
        if starts_at == appointment.starts_at.replace(second=0, microsecond=0):
            starts_at = appointment.starts_at  # the form shows whole minutes: start unchanged
        try:
            with all_or_nothing():
                services.update(
                    appointment, kind=Kind(form.kind.data), title=form.title.data or "",
                    starts_at=starts_at,
                    duration_minutes=form.duration_minutes.data,
                    recording_policy=RecordingPolicy(form.recording_policy.data))
        except DomainError as err:
            _attach(form, err)
            return render_template("appointments/edit.html", form=form,
                                   appointment=appointment), err.status
        flash(_("Appointment saved. Existing invite links follow the new time."), "info")
        return redirect(url_for(".show", appointment_id=appointment.id))
    else:
        return render_template("appointments/edit.html", form=form,
                               appointment=appointment), 400
    return render_template("appointments/edit.html", form=form, appointment=appointment)


@bp.post("/<id:appointment_id>/cancel")
@login_required
def cancel(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    services.cancel(appointment)
    flash(_("Appointment cancelled. The invite links no longer work."), "info")
    return redirect(url_for(".show", appointment_id=appointment.id))


@bp.post("/<id:appointment_id>/guests")
@login_required
def add_guest(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    form = ParticipantForm(appointment)
    if not form.validate_on_submit():
        return _page(appointment, participant_form=form), 400
    try:
        with all_or_nothing():
            added = hearing.add_participant(appointment, form.seat())
    except DomainError as err:
        _attach(form, err)
        return _page(appointment, participant_form=form), err.status
    if added.token is None:  # a staff seat: no link to show, so post/redirect/get
        flash(_("%(name)s sits in this hearing; they open it from their own list of "
                "appointments.", name=added.participant.display_name), "info")
        return redirect(url_for(".show", appointment_id=appointment.id))
    return _link_made(appointment, invite_url(added.token), added.participant)


@bp.post("/<id:appointment_id>/screening")
@login_required
def screening(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    form = ScreeningForm(appointment)
    if not form.validate_on_submit():
        return _page(appointment, screening_form=form), 400
    protected = next(p for p in appointment.participants if str(p.id) == form.participant.data)
    try:
        with all_or_nothing():
            hearing.set_screening(appointment, protected,
                                  [int(v) for v in form.screened_from.data or ()])
    except DomainError as err:
        _attach(form, err)
        return _page(appointment, screening_form=form), err.status
    flash(_("Screening saved for %(name)s.", name=protected.display_name), "info")
    return redirect(url_for(".show", appointment_id=appointment.id))


@bp.post("/<id:appointment_id>/observer-link")
@login_required
def observer_link_on(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with all_or_nothing():
            token = hearing.enable_observer_link(appointment)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for(".show", appointment_id=appointment.id))
    return _link_made(appointment, observer_url(token))


@bp.post("/<id:appointment_id>/observer-link/off")
@login_required
def observer_link_off(appointment_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    hearing.disable_observer_link(appointment)
    flash(_("The observer link is off: it no longer works."), "info")
    return redirect(url_for(".show", appointment_id=appointment.id))


@bp.post("/<id:appointment_id>/guests/<id:participant_id>/revoke")
@login_required
def revoke(appointment_id: int, participant_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    guest = _guest(appointment, participant_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    services.revoke_invite(guest)
    flash(_("The invite link for %(name)s no longer works.", name=guest.display_name), "info")
    return redirect(url_for(".show", appointment_id=appointment.id))


@bp.post("/<id:appointment_id>/guests/<id:participant_id>/reissue")
@login_required
def reissue(appointment_id: int, participant_id: int) -> ResponseReturnValue:
    appointment = _own(appointment_id)
    guest = _guest(appointment, participant_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        with all_or_nothing():
            token = services.reissue_invite(guest)
    except DomainError as err:
        flash(err.message, "error")
        return redirect(url_for(".show", appointment_id=appointment.id))
    return _link_made(appointment, invite_url(token), guest)


def _guest(appointment: Appointment, participant_id: int) -> Participant:
    try:
        return services.get_guest(appointment, participant_id)
    except DomainError:
        abort(404)


def _attach(form: object, err: DomainError) -> None:
    """Show a domain error next to its field, or at the top of the form."""
    field = getattr(form, err.field, None) if err.field else None
    if field is not None:
        field.errors = [*field.errors, err.message]
    else:
        flash(err.message, "error")
