"""The second factor: TOTP (RFC 6238, pyotp) with one-use recovery codes.

The TOTP secret is stored sealed (AES-256-GCM, the user's id as associated data) under a key
of its own, PORTAL_MFA_KEY or instance/mfa_key: a copy of the database alone (a backup, a
dump) gives no one the codes, and a secret cannot be moved to another account. The key is
not the session key, so rotating PORTAL_SECRET_KEY leaves the second factors working. The
secret is shown only while enrolling; once a code has confirmed it, never again.

Each accepted code moves `mfa_last_step` forward with a conditional UPDATE, so a code (or an
earlier one) is never accepted twice, not even by two requests at once. Recovery codes are
random (40 bits each) and kept as SHA-256 hashes, like the portal's other tokens."""

from __future__ import annotations

import base64
import hmac
import secrets
from pathlib import Path

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import delete, select, update

from portal.audit import services as audit
from portal.clock import clock
from portal.config import load_secret_key
from portal.errors import DomainError
from portal.extensions import db
from portal.models import RecoveryCode, User, utcnow
from portal.tokens import hash_token

ISSUER = "Samtale"
STEP_SECONDS = 30
#: Codes of the step before and after are accepted too (clocks drift; typing takes time).
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_SEALED = "v1."


def required(user: User) -> bool:
    """Administrators always; hosts if the deployment says so (PORTAL_MFA_HOSTS)."""
    return user.is_admin or current_app.config["MFA_HOSTS"] == "required"


def missing(user: User) -> bool:
    """The user must enrol before anything else."""
    return required(user) and not user.has_mfa


def _key() -> bytes:
    configured = current_app.config.get("MFA_KEY") or load_secret_key(
        Path(current_app.instance_path), "mfa_key")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"samtale totp secret v1").derive(configured.encode("utf-8"))


def _seal(user: User, secret: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key()).encrypt(nonce, secret.encode("ascii"), f"user:{user.id}".encode())
    return _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def _unseal(user: User) -> str | None:
    if not user.mfa_secret or not user.mfa_secret.startswith(_SEALED):
        return None
    raw = base64.urlsafe_b64decode(user.mfa_secret[len(_SEALED):])
    try:
        return AESGCM(_key()).decrypt(raw[:12], raw[12:], f"user:{user.id}".encode()).decode()
    except InvalidTag:  # another key (or another user's row): no code can match
        return None


def begin_enrolment(user: User) -> str:
    """A fresh secret for a user without a second factor, stored sealed and not yet in
    effect. Returns it, to be shown this once."""
    if user.has_mfa:
        raise DomainError(_("Two-step sign-in is on already."))
    secret = pyotp.random_base32()
    user.mfa_secret = _seal(user, secret)
    return secret


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> Markup:
    """The enrolment QR code as inline SVG: drawn here, sent to no other service, and no
    inline style for the Content-Security-Policy to refuse."""
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#000", light="#fff", title=_("QR code for your app"),
        svgclass="qr")
    return Markup(svg)  # noqa: S704 (segno's own markup; the URI inside it is escaped by segno)


def _step() -> int:
    return int(clock().now().timestamp()) // STEP_SECONDS


def _totp_step(user: User, code: str) -> int | None:
    """The time step this code is for, if it is right, current and not used already."""
    secret = _unseal(user)
    if secret is None or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now = _step()
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if step > (user.mfa_last_step or -1) and hmac.compare_digest(
                totp.generate_otp(step), code):
            return step
    return None


def _take_step(user: User, step: int) -> bool:
    """Move the last used step forward, unless another request did already."""
    moved = db.session.execute(
        update(User).where(User.id == user.id)
        .where((User.mfa_last_step.is_(None)) | (User.mfa_last_step < step))
        .values(mfa_last_step=step).returning(User.id)
        .execution_options(synchronize_session=False)).first()
    db.session.refresh(user, ["mfa_last_step"])
    return moved is not None


def _normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def pending_secret(user: User) -> str | None:
    """The secret being enrolled (not yet confirmed), to show again after a wrong code."""
    return None if user.has_mfa else _unseal(user)


def confirm_enrolment(user: User, code: str) -> list[str] | None:
    """The first code confirms the secret: the second factor is on from now. Returns the
    recovery codes, to be shown this once; None (audited) if the code is wrong."""
    if user.has_mfa:
        raise DomainError(_("Two-step sign-in is on already."))
    step = _totp_step(user, _normalise(code))
    if step is None or not _take_step(user, step):
        audit.record("mfa.enrol_failed", object_type="user", object_id=user.id)
        return None
    user.mfa_enabled_at = utcnow()
    plain = [secrets.token_hex(5) for _i in range(RECOVERY_CODES)]
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_token(code))
                       for code in plain)
    audit.record("mfa.enrolled", object_type="user", object_id=user.id)
    return [f"{code[:5]}-{code[5:]}" for code in plain]


def verify(user: User, code: str) -> str | None:
    """Check a TOTP code or a recovery code at sign-in; returns which it was, or None."""
    code = _normalise(code)
    if not user.has_mfa:
        return None
    step = _totp_step(user, code)
    if step is not None and _take_step(user, step):
        method = "totp"
    elif _use_recovery_code(user, code):
        method = "recovery_code"
    else:
        return None
    details: dict[str, object] = {"method": method}
    if method == "recovery_code":
        details["recovery_codes_left"] = recovery_codes_left(user)
    audit.record("mfa.verified", object_type="user", object_id=user.id, details=details)
    return method


def _use_recovery_code(user: User, code: str) -> bool:
    if len(code) != 10:
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == hash_token(code),
               RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow()).returning(RecoveryCode.id)
        .execution_options(synchronize_session=False)).first()
    return used is not None


def recovery_codes_left(user: User) -> int:
    return len(db.session.scalars(select(RecoveryCode.id).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).all())


def reset(user: User) -> None:
    """An operator's reset (a lost phone and no recovery code): the second factor is off;
    where it is required the user enrols again at the next sign-in."""
    user.mfa_secret = None
    user.mfa_enabled_at = None
    user.mfa_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    audit.record("mfa.reset", object_type="user", object_id=user.id)
