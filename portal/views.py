"""The front door."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

bp = Blueprint("home", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """Staff go to their appointments; everyone else to the sign-in page."""
    if current_user.is_authenticated:
        return redirect(url_for("appointments.index"))
    return redirect(url_for("accounts.login"))


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """For a load balancer: the process answers."""
    return {"status": "ok"}


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    """Browsers ask for it on every page, whatever the page links."""
    return current_app.send_static_file("favicon.ico")
