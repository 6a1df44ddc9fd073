"""Administrator pages. Every one of them is for administrators only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from portal.accounts import services as accounts
from portal.accounts.auth import admin_required
from portal.admin.forms import TokenForm, UserForm
from portal.appointments.forms import ConfirmForm
from portal.audit import services as audit
from portal.errors import DomainError
from portal.extensions import db
from portal.inputs import MAX_ID
from portal.models import ApiToken, Role, User

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _confirmed() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


def _users_page(form: UserForm, one_time: tuple[User, str] | None = None) -> str:
    return render_template("admin/users.html", users=accounts.list_users(), form=form,
                           confirm=ConfirmForm(), one_time=one_time,
                           second_factor=accounts.second_factor_state)


@bp.get("/users")
@admin_required
def users() -> ResponseReturnValue:
    return _users_page(UserForm())


@bp.post("/users")
@admin_required
def create_user() -> ResponseReturnValue:
    form = UserForm()
    if form.validate_on_submit():
        try:  # writes nothing unless it succeeds; its hash runs with no transaction open
            user, one_time = accounts.create_user(form.email.data or "",
                                                  form.name.data or "", Role(form.role.data))
        except DomainError as err:
            flash(err.message, "error")
            status = err.status
        else:
            return _users_page(UserForm(formdata=None), (user, one_time))
    else:
        status = 400
    return _users_page(form), status


@bp.post("/users/<id:user_id>/disable")
@admin_required
def disable_user(user_id: int) -> ResponseReturnValue:
    return _set_disabled(user_id, True)


@bp.post("/users/<id:user_id>/enable")
@admin_required
def enable_user(user_id: int) -> ResponseReturnValue:
    return _set_disabled(user_id, False)


def _set_disabled(user_id: int, disabled: bool) -> ResponseReturnValue:
    user = _user(user_id)
    _confirmed()
    accounts.set_disabled(user, disabled, by=current_user)
    flash(_("%(name)s is disabled.", name=user.name) if disabled
          else _("%(name)s is enabled.", name=user.name), "info")
    return redirect(url_for(".users"))


@bp.post("/users/<id:user_id>/reset-password")
@admin_required
def reset_password(user_id: int) -> ResponseReturnValue:
    user = _user(user_id)
    _confirmed()
    one_time = accounts.reset_password(user)
    return _users_page(UserForm(formdata=None), (user, one_time))


def _token_form() -> TokenForm:
    form = TokenForm()
    form.user_id.choices = [(u.id, f"{u.name} <{u.email}>") for u in accounts.list_users()
                            if not u.is_disabled]
    return form


@bp.get("/tokens")
@admin_required
def tokens() -> ResponseReturnValue:
    return render_template("admin/tokens.html", tokens=accounts.list_api_tokens(),
                           form=_token_form(), confirm=ConfirmForm(), new_token=None)


@bp.post("/tokens")
@admin_required
def issue_token() -> ResponseReturnValue:
    form = _token_form()
    if not form.validate_on_submit():
        return render_template("admin/tokens.html", tokens=accounts.list_api_tokens(),
                               form=form, confirm=ConfirmForm(), new_token=None), 400
    owner = _user(form.user_id.data)
    token, plain = accounts.issue_api_token(owner, form.name.data or "")
    return render_template("admin/tokens.html", tokens=accounts.list_api_tokens(),
                           form=_token_form(), confirm=ConfirmForm(), new_token=(token, plain))


@bp.post("/tokens/<id:token_id>/revoke")
@admin_required
def revoke_token(token_id: int) -> ResponseReturnValue:
    token = db.session.get(ApiToken, token_id)
    if token is None:
        abort(404)
    _confirmed()
    accounts.revoke_api_token(token)
    flash(_("The token %(prefix)s… no longer works.", prefix=token.prefix), "info")
    return redirect(url_for(".tokens"))


@bp.get("/audit")
@admin_required
def audit_log() -> ResponseReturnValue:
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= MAX_ID:
        before = None  # no such row: start from the newest
    events = audit.latest(limit=100, before_seq=before)
    return render_template("admin/audit.html", events=events, verdict=None)


@bp.get("/audit/verify")
@admin_required
def audit_verify() -> ResponseReturnValue:
    verdict = audit.verify()
    return render_template("admin/audit.html", events=audit.latest(limit=100), verdict=verdict)
