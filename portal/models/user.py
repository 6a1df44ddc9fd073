"""Staff accounts and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    """What a staff member may do: admins manage accounts; both may host appointments."""

    ADMIN = "admin"
    HOST = "host"


class User(Base):
    """A staff account (clinician, lawyer, judge, clerk, administrator). Guests have none."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Lower-cased sign-in address, unique.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    #: argon2id hash (argon2-cffi's encoded form).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    #: Set when an administrator disables the account; it can no longer sign in.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Bumped on password reset or disable: every older session stops being valid.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    #: After an administrator sets or resets a password, the user must choose their own.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    #: IANA zone for showing times; None means: the browser's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The TOTP secret, sealed (portal/accounts/mfa.py); set at enrolment, in effect only once
    #: a code confirmed it (mfa_enabled_at).
    mfa_secret: Mapped[str | None] = mapped_column(String(255))
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The TOTP time step of the last code accepted: a code is good once, never again.
    mfa_last_step: Mapped[int | None] = mapped_column(Integer)

    api_tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", foreign_keys="ApiToken.user_id"
    )

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def has_mfa(self) -> bool:
        return self.mfa_enabled_at is not None

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    # Flask-Login's user protocol.
    @property
    def is_active(self) -> bool:
        return not self.is_disabled

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """Session identity: id plus epoch, so a reset or disable ends older sessions."""
        return f"{self.id}.{self.session_epoch}"


class ApiToken(Base):
    """A bearer token that lets a record system act as one host through /api/v1."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    #: What the administrator called it, e.g. "EPJ integration".
    name: Mapped[str] = mapped_column(String(120))
    #: SHA-256 of the token, hex; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: First characters of the token, to recognise it in lists.
    prefix: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="api_tokens", foreign_keys=[user_id])

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class RecoveryCode(Base):
    """A one-use code that stands in for the TOTP code (a lost phone). Shown once at
    enrolment; only its SHA-256 is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginThrottle(Base):
    """Failed sign-ins per account (ASVS 2.2.1), keyed by the SHA-256 of the normalised e-mail
    address, so that unknown addresses are throttled alike and no address of a stranger is
    stored. A success removes the row."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Failures since the last success (passwords and second-factor codes alike).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: No attempt is checked before this moment.
    wait_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
