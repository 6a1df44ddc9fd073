"""The invite landing page: /j/<token>."""

from __future__ import annotations

from flask import Blueprint, current_app, g, render_template
from flask.typing import ResponseReturnValue

from portal.appointments.services import InviteState, check_invite
from portal.audit import services as audit
from portal.extensions import limiter

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
        audit.record("invite.opened", object_type="participant", object_id=check.guest.id,
                     details={"appointment_id": check.guest.appointment_id,
                              "state": check.state.value})
    status = _STATUS[check.state]
    template = "join/landing.html" if check.state is InviteState.VALID else "join/unavailable.html"
    response = current_app.make_response((render_template(
        template, check=check, guest=check.guest,
        appointment=check.guest.appointment if check.guest else None), status))
    # The link is a secret: keep it out of caches and out of Referer headers.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
