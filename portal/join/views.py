"""The invite landing page, /j/<token>, and a hearing's observer link, /o/<token>."""

from __future__ import annotations

from flask import Blueprint, current_app, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from portal.appointments import hearing
from portal.appointments.hearing import ObserverState
from portal.appointments.services import InviteState, check_invite
from portal.audit import services as audit
from portal.clock import clock
from portal.database import all_or_nothing, writing
from portal.errors import DomainError
from portal.extensions import limiter
from portal.join.forms import ObserverForm
from portal.join.opened import opened_links

bp = Blueprint("join", __name__)

#: Unknown links get 404; links that existed but no longer work get 410 Gone.
_STATUS = {
    InviteState.VALID: 200,
    InviteState.TOO_EARLY: 403,
    InviteState.UNKNOWN: 404,
    InviteState.REVOKED: 410,
    InviteState.REPLACED: 410,
    InviteState.CANCELLED: 410,
    InviteState.ENDED: 410,
}


@bp.get("/j/<token>")
@limiter.limit(lambda: current_app.config["INVITE_RATE_LIMIT"])
def landing(token: str) -> ResponseReturnValue:
    check = check_invite(token)
    if check.guest is not None:
        g.guest_participant = check.guest
    status = _STATUS[check.state]
    template = "join/landing.html" if check.state is InviteState.VALID else "join/unavailable.html"
    page = render_template(template, check=check, guest=check.guest,
                           appointment=check.guest.appointment if check.guest else None)
    if check.guest is not None:  # after rendering: the entry's write ends what was read
        _audit_opened(check.guest.id, check.guest.appointment_id, check.state)
    return _secret(current_app.make_response((page, status)))


def _secret(response: Response) -> Response:
    # The link is a secret: keep it out of caches and out of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


_OBSERVER_STATUS = {
    ObserverState.VALID: 200,
    ObserverState.TOO_EARLY: 403,
    ObserverState.UNKNOWN: 404,
    ObserverState.OFF: 410,
    ObserverState.CANCELLED: 410,
    ObserverState.ENDED: 410,
}


@bp.route("/o/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["INVITE_RATE_LIMIT"])
def observer(token: str) -> ResponseReturnValue:
    """A hearing's observer link: a name, then the observer's own link (/j/...), where they
    wait to be admitted. No camera or microphone is asked for here or there."""
    check = hearing.check_observer_link(token)
    if check.state is not ObserverState.VALID:
        page = render_template("join/unavailable.html", check=check, observer=True,
                               appointment=check.appointment)
        return _secret(current_app.make_response((page, _OBSERVER_STATUS[check.state])))
    form = ObserverForm()
    status = 200
    if form.validate_on_submit():
        try:
            with all_or_nothing():
                _observer, personal = hearing.join_as_observer(token, form.display_name.data or "")
        except DomainError as err:
            form.display_name.errors = [*form.display_name.errors, err.message]
            status = err.status
        else:
            return _secret(redirect(url_for(".landing", token=personal), code=303))
    elif form.is_submitted():
        status = 400
    page = render_template("join/observer.html", form=form, appointment=check.appointment)
    return _secret(current_app.make_response((page, status)))


def _audit_opened(participant_id: int, appointment_id: int, state: InviteState) -> None:
    """The first view, a change of state, else one entry per PORTAL_INVITE_AUDIT_MINUTES
    (portal/join/opened.py): a page view is not a write each time."""
    links = opened_links(current_app)
    unrecorded = links.claim(participant_id, state.value, clock().monotonic())
    if unrecorded is None:
        return
    details: dict[str, object] = {"appointment_id": appointment_id, "state": state.value}
    if unrecorded:
        details["views_not_recorded"] = unrecorded
    try:
        writing()  # end the read: the entry waits its turn for the write lock
        audit.record("invite.opened", object_type="participant", object_id=participant_id,
                     details=details)
    except Exception:
        links.release(participant_id)
        raise
