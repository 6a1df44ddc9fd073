"""Sign-in, sign-out and the user's own password."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user

from portal.accounts import auth, services
from portal.accounts.forms import LoginForm, PasswordForm
from portal.database import all_or_nothing
from portal.errors import DomainError
from portal.extensions import limiter
from portal.links import is_local_path

bp = Blueprint("accounts", __name__)
bp.before_app_request(auth.end_expired_sign_in)


def _safe_next(target: str | None) -> str:
    if target and is_local_path(target):
        return target
    return url_for("appointments.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("appointments.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            login_user(user)
            auth.note_sign_in()
            return redirect(_safe_next(request.args.get("next")))
        flash(_("Wrong e-mail address or password, or the account is disabled."), "error")
        return render_template("accounts/login.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("accounts/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    services.record_logout(current_user._get_current_object())
    auth.sign_out()
    flash(_("You are signed out."), "info")
    return redirect(url_for("accounts.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            with all_or_nothing():
                services.change_password(user, form.current.data or "", form.new.data or "")
        except DomainError as err:
            flash(err.message, "error")
            return render_template("accounts/password.html", form=form), err.status
        login_user(user)  # the epoch moved on: renew this session, end the others
        flash(_("Your password is changed."), "info")
        return redirect(url_for("appointments.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("accounts/password.html", form=form), status
