"""Sign-in (password, then the second factor where there is one), sign-out, the user's own
password and second factor."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user

from portal.accounts import auth, halfway, mfa, services
from portal.accounts.forms import CodeForm, LoginForm, PasswordForm
from portal.database import all_or_nothing, writing
from portal.errors import DomainError, TooManyAttempts
from portal.extensions import limiter
from portal.links import is_local_path
from portal.models import User

bp = Blueprint("accounts", __name__)
bp.before_app_request(auth.end_expired_sign_in)
bp.before_app_request(halfway.enforce_enrolment)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _safe_next(target: str | None) -> str:
    if target and is_local_path(target):
        return target
    return url_for("appointments.index")


def _sign_in(user: User, second_factor: str | None = None) -> None:
    halfway.end()
    login_user(user)
    auth.note_sign_in()
    services.complete_sign_in(user, second_factor)


def _too_many(template: str, form: object, err: TooManyAttempts) -> ResponseReturnValue:
    flash(err.message, "error")
    response = current_app.make_response((render_template(template, form=form), 429))
    response.headers["Retry-After"] = str(err.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("appointments.index"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data or "", form.password.data or "")
        except TooManyAttempts as err:
            return _too_many("accounts/login.html", form, err)
        if user is not None:
            target = _safe_next(request.args.get("next"))
            if user.has_mfa or mfa.required(user):
                halfway.begin(user, target)
                return redirect(url_for("accounts.second_factor" if user.has_mfa
                                        else "accounts.mfa"))
            _sign_in(user)
            return redirect(target)
        flash(_("Wrong e-mail address or password, or the account is disabled."), "error")
        return render_template("accounts/login.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("accounts/login.html", form=form), status


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def second_factor() -> ResponseReturnValue:
    """The second step: the code from the app, or a recovery code."""
    if current_user.is_authenticated:
        return redirect(url_for("appointments.index"))
    user = halfway.pending_user()
    if user is None or not user.has_mfa:
        flash(_("Please sign in again."), "info")
        return redirect(url_for("accounts.login"))
    form = CodeForm()
    if form.validate_on_submit():
        try:
            method = services.check_second_factor(user, form.code.data or "")
        except TooManyAttempts as err:
            return _too_many("accounts/code.html", form, err)
        if method is not None:
            target = halfway.next_url()
            _sign_in(user, method)
            if method == "recovery_code":
                flash(_("You used a recovery code; %(n)d are left. If your phone is lost, ask "
                        "an administrator to reset two-step sign-in.",
                        n=mfa.recovery_codes_left(user)), "info")
            return redirect(target)
        flash(_("That code is not right."), "error")
        return render_template("accounts/code.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("accounts/code.html", form=form), status


@bp.route("/account/mfa", methods=["GET", "POST"], endpoint="mfa")
@limiter.limit(_login_limit, methods=["POST"])
def two_step() -> ResponseReturnValue:
    """Set up the second factor: a new secret (QR code and text), confirmed by a code. Open to
    the signed-in and to the half-signed-in who must set it up before they may sign in."""
    signed_in = current_user.is_authenticated
    user = current_user._get_current_object() if signed_in else halfway.pending_user()
    if user is None:
        return redirect(url_for("accounts.login", next=request.path))
    if user.has_mfa:
        return render_template("accounts/mfa.html", user=user, secret=None,
                               left=mfa.recovery_codes_left(user))
    form = CodeForm()
    if form.validate_on_submit():
        with all_or_nothing():
            codes = services.confirm_mfa(user, form.code.data or "")
        if codes is not None:
            target = url_for("appointments.index")
            if signed_in:
                login_user(user)  # the epoch moved on: renew this session, end the others
            else:
                target = halfway.next_url()
                _sign_in(user, "totp")
            return render_template("accounts/recovery_codes.html", codes=codes, target=target)
        flash(_("That code is not right. Check the time on your phone and try the next "
                "code."), "error")
        secret, status = mfa.pending_secret(user), 422
    else:
        secret, status = None, 400 if form.is_submitted() else 200
    if secret is None:
        try:
            writing()  # the new secret is stored, also on a GET
            secret = mfa.begin_enrolment(user)
        except DomainError as err:  # pragma: no cover (has_mfa was checked above)
            flash(err.message, "error")
            return redirect(url_for("appointments.index"))
    uri = mfa.provisioning_uri(user, secret)
    return render_template("accounts/mfa.html", user=user, secret=secret, form=form,
                           qr=mfa.qr_svg(uri), required=mfa.required(user),
                           signed_in=signed_in), status


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    services.record_logout(current_user._get_current_object())
    halfway.end()
    auth.sign_out()
    flash(_("You are signed out."), "info")
    return redirect(url_for("accounts.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    form = PasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:  # writes nothing unless it succeeds; its hashes run with no transaction open
            services.change_password(user, form.current.data or "", form.new.data or "")
        except DomainError as err:
            flash(err.message, "error")
            return render_template("accounts/password.html", form=form), err.status
        login_user(user)  # the epoch moved on: renew this session, end the others
        flash(_("Your password is changed."), "info")
        return redirect(url_for("appointments.index"))
    status = 400 if form.is_submitted() else 200
    return render_template("accounts/password.html", form=form), status
