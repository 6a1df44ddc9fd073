"""Who is asking: session loading for Flask-Login and the role checks views use."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort, flash, jsonify, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required, logout_user

from portal import signals
from portal.accounts import sessions
from portal.audit import services as audit
from portal.database import writing
from portal.extensions import db, login_manager
from portal.models import User
from portal.signals import announce

P = ParamSpec("P")
R = TypeVar("R")

#: Endpoints a user who must change their password may still reach.
_OPEN_WHILE_CHANGING = {"accounts.password", "accounts.logout", "static", "i18n.switch_language",
                        "session.idle", "session.touch"}


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
    """At sign-in: a new session id, and the sign-in's lifetime and idle time count from now."""
    sessions.begin()


def sign_out() -> None:
    """Sign out here, and end the session where it is stored: a copy of its cookie is refused."""
    logout_user()
    sessions.end()


def end_expired_sign_in() -> ResponseReturnValue | None:
    """Before every request: a sign-in idle for PORTAL_IDLE_MINUTES, or older than
    PERMANENT_SESSION_LIFETIME (however active it was since), is ended and sent to the sign-in
    page, and its call sockets close. Otherwise the request is activity (the idle status
    idle.js asks for is not)."""
    endpoint = request.endpoint or ""
    if "_user_id" not in session or endpoint.startswith(("api.", "static")):
        return None  # the API never loads the session: its requests carry bearer tokens
    reason = sessions.why_ended(session)
    if reason is None:
        if endpoint == "session.touch":  # "stay signed in": the idle time starts again now
            sessions.touch()
        elif endpoint != "session.idle":
            sessions.touch(every=sessions.touch_every())
        return None
    writing()  # the end is audited, also on a GET
    user = current_user._get_current_object() if current_user.is_authenticated else None
    logout_user()
    ended = sessions.end()
    if user is not None:
        audit.record("auth.session_ended", object_type="user", object_id=user.id,
                     actor=audit.Actor("user", str(user.id)), details={"reason": reason})
    if ended is not None:
        announce(signals.session_ended, session_id=ended, message=sessions.ended_message(reason))
    flash(sessions.ended_message(reason), "info")
    if endpoint.startswith("session."):
        return jsonify(signed_in=False), 401
    return redirect(url_for("accounts.login"))
