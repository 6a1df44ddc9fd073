"""What idle.js asks: how long the sign-in has left, and "stay signed in"."""

from __future__ import annotations

from flask import Blueprint, jsonify, session
from flask.typing import ResponseReturnValue
from flask_login import current_user

from portal.accounts import sessions

bp = Blueprint("session", __name__, url_prefix="/session")


def _status() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return jsonify(signed_in=False)
    return jsonify(signed_in=True, seconds_left=int(sessions.seconds_left(session)),
                   warn_seconds=sessions.warn_seconds())


@bp.get("/idle")
def idle() -> ResponseReturnValue:
    """The time left; asking is not activity (auth.end_expired_sign_in skips it)."""
    return _status()


@bp.post("/touch")
def touch() -> ResponseReturnValue:
    """The "stay signed in" button: this request was activity, like any other."""
    return _status()
