"""Account operations. Each one that changes state writes its audit event."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from math import ceil

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import format_time
from flask_babel import gettext as _
from sqlalchemy import select

from portal import signals
from portal.accounts import mfa, passwords, throttle
from portal.audit import services as audit
from portal.clock import clock
from portal.database import outside_transaction
from portal.errors import Conflict, DomainError, TooManyAttempts
from portal.extensions import db
from portal.models import ApiToken, Role, User, utcnow
from portal.signals import announce
from portal.tokens import hash_token, new_token

MIN_PASSWORD_LENGTH = passwords.MIN_LENGTH
API_TOKEN_PREFIX = "smt_"  # noqa: S105 (a label, not a secret)


@dataclass(frozen=True)
class _Passwords:
    hasher: PasswordHasher
    #: Verified against for unknown e-mail addresses, so a miss costs as long as a hit.
    dummy_hash: str
    #: How many sign-ins may hash at once (PASSWORD_HASH_CONCURRENCY): each argon2 hash
    #: takes every core it may, so a flood of them would starve every other request of CPU.
    #: The rest wait their turn, outside any transaction.
    gate: threading.BoundedSemaphore


def _passwords() -> _Passwords:
    """The app's argon2id hasher with the configured parameters (ARGON2_* settings)."""
    found = current_app.extensions.get("passwords")
    if found is None:
        config = current_app.config
        hasher = PasswordHasher(time_cost=config["ARGON2_TIME_COST"],
                                memory_cost=config["ARGON2_MEMORY_COST"],
                                parallelism=config["ARGON2_PARALLELISM"])
        found = current_app.extensions.setdefault("passwords", _Passwords(
            hasher, hasher.hash(secrets.token_hex(16)),
            threading.BoundedSemaphore(config["PASSWORD_HASH_CONCURRENCY"])))
    assert isinstance(found, _Passwords)
    return found


def _hash(password: str) -> str:
    """Hash a new password with no transaction open (see outside_transaction): call it before
    the changes it goes with, then write them in a short transaction of their own."""
    with outside_transaction():
        found = _passwords()
        with found.gate:
            return found.hasher.hash(password)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str, *, email: str = "", name: str = "") -> None:
    passwords.check(password, email=email, name=name)


def _check_length(value: str, limit: int, field: str) -> None:
    """The forms limit lengths; this guards the other callers (the command line)."""
    if len(value) > limit:
        raise DomainError(_("That is too long (%(n)d characters at most).", n=limit), field=field)


def generate_password() -> str:
    """A one-time password for a new or reset account (about 100 bits)."""
    return secrets.token_urlsafe(16)


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def _check_address_free(email: str) -> None:
    if user_by_email(email) is not None:
        raise Conflict(_("An account with this e-mail address exists already."))


def create_user(email: str, name: str, role: Role, password: str | None = None) -> tuple[User, str]:
    """Create a staff account. Without a password a one-time one is made; either way the user
    must choose their own at first sign-in. Returns the user and the one-time password.

    The hash runs with no transaction open, so what the caller changed before must be flushed;
    nothing is written before every check has passed (a caller needs no savepoint)."""
    email = normalise_email(email)
    name = name.strip()
    if not name:
        raise DomainError(_("A name is required."), field="name")
    _check_length(name, 120, "name")
    _check_length(email, 254, "email")
    _check_address_free(email)
    one_time = password or generate_password()
    check_password_strength(one_time, email=email, name=name)
    password_hash = _hash(one_time)
    _check_address_free(email)  # again: another account may have taken it during the hash
    user = User(
        email=email,
        name=name,
        role=role,
        password_hash=password_hash,
        must_change_password=True,
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user.created", object_type="user", object_id=user.id,
                 details={"role": role.value})
    return user, one_time


def _throttled(retry_at: datetime, user: User | None, action: str) -> TooManyAttempts:
    """Audit an attempt refused by the account's throttle; the error to raise."""
    seconds = max(1, ceil((retry_at - clock().now()).total_seconds()))
    audit.record(action, object_type="user", object_id=user.id if user else None,
                 details={"retry_after": seconds})
    return TooManyAttempts(
        _("Too many failed sign-ins for this account. Try again at %(time)s (in %(minutes)d "
          "min).", time=format_time(retry_at, "short"), minutes=ceil(seconds / 60)),
        retry_after=seconds)


def _verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Whether the password matches (an unknown account's check costs as long), and a new
    hash if the stored one has other parameters than the app's. Call it with no transaction
    open (outside_transaction)."""
    found = _passwords()
    with found.gate:
        try:
            found.hasher.verify(stored or found.dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if stored is None or not found.hasher.check_needs_rehash(stored):
            return stored is not None, None
        return True, found.hasher.hash(password)


def authenticate(email: str, password: str) -> User | None:
    """The user if the password is right and the account enabled, else None; raises
    TooManyAttempts while the account's throttle makes attempts wait. Audits failures.

    The password hash runs with no transaction open (on SQLite a transaction holds the write
    lock: a flood of sign-ins would make every other request wait behind each hash); the
    outcome is written in a short transaction after it. Signing in is finished by
    complete_sign_in, after the second factor where there is one."""
    key = throttle.key_for(email)
    user = user_by_email(email)
    retry_at = throttle.wait_until(key)
    if retry_at is not None:
        raise _throttled(retry_at, user, "auth.login_throttled")
    user_id, stored = (user.id, user.password_hash) if user else (None, None)
    with outside_transaction():
        ok, new_hash = _verify_password(stored, password)
    user = db.session.get(User, user_id) if user_id is not None else None
    if user is not None and user.password_hash != stored:
        ok = False  # the password changed while it was being checked
    if not ok or user is None or user.is_disabled:
        reason = "disabled" if ok and user is not None else "bad_credentials"
        throttle.failed(key)
        audit.record("auth.login_failed", object_type="user",
                     object_id=user.id if user else None, details={"reason": reason})
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    return user


def check_second_factor(user: User, code: str) -> str | None:
    """The second step of signing in: a TOTP or recovery code. Returns which one it was, or
    None (audited, and counted by the account's throttle as a wrong password is)."""
    key = throttle.key_for(user.email)
    retry_at = throttle.wait_until(key)
    if retry_at is not None:
        raise _throttled(retry_at, user, "mfa.throttled")
    method = mfa.verify(user, code)
    if method is None:
        throttle.failed(key)
        audit.record("mfa.failed", object_type="user", object_id=user.id)
    return method


def complete_sign_in(user: User, second_factor: str | None = None) -> None:
    """The session is granted: the account's failures are forgotten, the sign-in audited."""
    throttle.succeeded(throttle.key_for(user.email))
    user.last_login_at = utcnow()
    audit.record("auth.login", object_type="user", object_id=user.id,
                 actor=audit.Actor("user", str(user.id)),
                 details={"second_factor": second_factor} if second_factor else None)


def confirm_mfa(user: User, code: str) -> list[str] | None:
    """Turn the second factor on (the code proves the app has the secret); the user's other
    sessions end. Returns the recovery codes, or None if the code is wrong."""
    codes = mfa.confirm_enrolment(user, code)
    if codes is not None:
        _sessions_end(user)
    return codes


def reset_mfa(user: User) -> None:
    """An operator turns a user's second factor off (lost phone); the user's sessions end."""
    mfa.reset(user)
    _sessions_end(user)


def record_logout(user: User) -> None:
    """Signing out also ends the account's call connections."""
    audit.record("auth.logout", object_type="user", object_id=user.id)
    announce(signals.signed_out, user_id=user.id, message=_("You signed out."))


def _sessions_end(user: User) -> None:
    user.session_epoch += 1
    announce(signals.account_changed, user_id=user.id)


def change_password(user: User, current: str, new: str) -> None:
    """The user's own change: needs the current password. Ends the user's other sessions.

    Both hashes run with no transaction open (as in authenticate); the change is written
    after them, unless the account changed meanwhile (an administrator's reset wins).
    Nothing is written before every check has passed (a caller needs no savepoint)."""
    stored, epoch = user.password_hash, user.session_epoch
    email, name = user.email, user.name
    with outside_transaction():
        ok, _rehash = _verify_password(stored, current)
    if not ok:
        raise DomainError(_("The current password is wrong."), field="current")
    check_password_strength(new, email=email, name=name)
    if new == current:
        raise DomainError(_("Choose a password different from the current one."), field="new")
    new_hash = _hash(new)
    # Read afresh (the hashes ended the transaction): a reset, a disabling or another change
    # meanwhile ended this session, and wins.
    if user.password_hash != stored or user.session_epoch != epoch or user.is_disabled:
        raise Conflict(_("Your account was changed meanwhile. Sign in again."))
    user.password_hash = new_hash
    user.must_change_password = False
    _sessions_end(user)
    audit.record("user.password_changed", object_type="user", object_id=user.id)


def reset_password(user: User) -> str:
    """An administrator's reset: a one-time password, and every session of the user ends.
    The hash runs first, with no transaction open; what the caller changed must be flushed."""
    one_time = generate_password()
    password_hash = _hash(one_time)
    user.password_hash = password_hash
    user.must_change_password = True
    _sessions_end(user)
    audit.record("user.password_reset", object_type="user", object_id=user.id)
    return one_time


def set_disabled(user: User, disabled: bool, *, by: User | None = None) -> None:
    """Disable (ends every session, stops sign-in and API tokens) or enable an account."""
    if by is not None and by.id == user.id and disabled:
        raise Conflict(_("You cannot disable your own account."))
    if disabled and user.role is Role.ADMIN and not user.is_disabled and _enabled_admins() <= 1:
        raise Conflict(_("This is the last enabled administrator."))
    if disabled == user.is_disabled:
        return
    user.disabled_at = utcnow() if disabled else None
    _sessions_end(user)
    audit.record("user.disabled" if disabled else "user.enabled",
                 object_type="user", object_id=user.id)


def _enabled_admins() -> int:
    """How many administrators are enabled. Locks their rows until the transaction ends, so two
    administrators disabling each other at once cannot both see the other one remain."""
    return len(db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.disabled_at.is_(None))
        .with_for_update()
    ).all())


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.name)))


def second_factor_state(user: User) -> str:
    """For the lists of accounts: "on", "missing" (required but not set up: the user sets it
    up at the next sign-in) or "off"."""
    if user.has_mfa:
        return "on"
    return "missing" if mfa.required(user) else "off"


def issue_api_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A token for a host's record system. Returns the row and the token, shown once."""
    name = name.strip()
    if not name:
        raise DomainError(_("Give the token a name, e.g. the system that will use it."),
                          field="name")
    _check_length(name, 120, "name")
    if user.is_disabled:
        raise Conflict(_("The account is disabled."))
    plain, digest = new_token(API_TOKEN_PREFIX)
    token = ApiToken(user_id=user.id, name=name, token_hash=digest,
                     prefix=plain[: len(API_TOKEN_PREFIX) + 4])
    db.session.add(token)
    db.session.flush()
    audit.record("api_token.issued", object_type="api_token", object_id=token.id,
                 details={"user_id": user.id})
    return token, plain


def revoke_api_token(token: ApiToken) -> None:
    if token.is_revoked:
        return
    token.revoked_at = utcnow()
    audit.record("api_token.revoked", object_type="api_token", object_id=token.id,
                 details={"user_id": token.user_id})


def list_api_tokens() -> list[ApiToken]:
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


def api_token_by_secret(plain: str) -> ApiToken | None:
    """The live token with this secret whose owner is enabled, else None."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plain)))
    if token is None or token.is_revoked or token.user.is_disabled:
        return None
    return token
