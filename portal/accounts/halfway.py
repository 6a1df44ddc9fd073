"""Half signed in: the password was right, the second factor is still due (or, where it is
required, still to be set up). The session then names the user but grants nothing: Flask-Login
knows no one, so every page but the code and enrolment pages asks for sign-in. The state ends
after PENDING_SECONDS, at sign-out, and when the sign-in completes."""

from __future__ import annotations

from flask import request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.utils import redirect

from portal.accounts import mfa
from portal.accounts.auth import load_user
from portal.clock import clock
from portal.models import User

PENDING = "mfa_pending"
PENDING_SECONDS = 300
#: Endpoints a signed-in user who must still set up the second factor may reach.
_OPEN_WHILE_ENROLLING = {"accounts.mfa", "accounts.logout", "accounts.password", "static",
                         "i18n.switch_language"}


def begin(user: User, next_url: str) -> None:
    session[PENDING] = {"user": user.get_id(), "at": clock().now().timestamp(),
                        "next": next_url}


def pending_user() -> User | None:
    """The half-signed-in user, if the state is young enough and the account unchanged."""
    state = session.get(PENDING)
    if not isinstance(state, dict):
        return None
    at, who = state.get("at"), state.get("user")
    if (not isinstance(at, int | float) or not isinstance(who, str)
            or clock().now().timestamp() - at > PENDING_SECONDS):
        session.pop(PENDING, None)
        return None
    return load_user(who)


def next_url() -> str:
    state = session.get(PENDING)
    target = state.get("next") if isinstance(state, dict) else None
    return target if isinstance(target, str) else url_for("appointments.index")


def end() -> None:
    session.pop(PENDING, None)


def enforce_enrolment() -> ResponseReturnValue | None:
    """Before every request: a signed-in user for whom the second factor is required but not
    set up (a session from before the policy, say) sets it up before anything else."""
    endpoint = request.endpoint or ""
    if endpoint in _OPEN_WHILE_ENROLLING or endpoint.startswith(("api.", "api-docs.")):
        return None  # the API never loads the session: its requests carry bearer tokens
    if current_user.is_authenticated and mfa.missing(current_user):
        return redirect(url_for("accounts.mfa"))
    return None
