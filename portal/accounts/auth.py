"""Who is asking: session loading for Flask-Login and the role checks views use."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, logout_user

from portal.clock import clock
from portal.extensions import db, login_manager
from portal.models import User

#: Session key: when the sign-in was made (POSIX seconds by the app's clock).
SIGNED_IN_AT = "signed_in_at"

P = ParamSpec("P")
R = TypeVar("R")

#: Endpoints a user who must change their password may still reach.
_OPEN_WHILE_CHANGING = {"accounts.password", "accounts.logout", "static", "i18n.switch_language"}


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """The user for a session id "<id>.<epoch>", or None if the session is stale."""
    user_id, _, epoch = session_id.partition(".")
    if not user_id.isdigit() or not epoch.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.is_disabled or user.session_epoch != int(epoch):
        return None
    return user


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    """Signed-in administrators only; anyone else signed in gets 403."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return login_required(wrapper)


def enforce_password_change() -> ResponseReturnValue | None:
    """Before every request: a user with a one-time password goes to choose their own."""
    endpoint = request.endpoint or ""
    if endpoint in _OPEN_WHILE_CHANGING or endpoint.startswith(("api.", "api-docs.")):
        return None  # the API never loads the session: its requests carry bearer tokens
    if current_user.is_authenticated and current_user.must_change_password:
        return redirect(url_for("accounts.password"))
    return None


def note_sign_in() -> None:
    """At sign-in: the session's lifetime counts from now."""
    session[SIGNED_IN_AT] = clock().now().timestamp()


def end_expired_sign_in() -> ResponseReturnValue | None:
    """Before every request: a sign-in older than PERMANENT_SESSION_LIFETIME (however active
    it was since) is signed out and sent to the sign-in page."""
    if "_user_id" not in session or (request.endpoint or "").startswith(("api.", "static")):
        return None  # the API never loads the session: its requests carry bearer tokens
    made = session.get(SIGNED_IN_AT)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if isinstance(made, int | float) and clock().now().timestamp() - made <= lifetime:
        return None
    logout_user()
    session.pop(SIGNED_IN_AT, None)
    flash(_("Your sign-in has expired. Please sign in again."), "info")
    return redirect(url_for("accounts.login"))
