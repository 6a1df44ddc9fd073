"""Settings, read from PORTAL_* environment variables with safe defaults for one machine."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from argon2.profiles import RFC_9106_LOW_MEMORY


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PORTAL_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(f"PORTAL_{name}")
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"PORTAL_{name} must be a whole number, not {raw!r}") from exc


def _env_optional_int(name: str) -> int | None:
    """A whole number not below 0, or None when unset (the code picks the default)."""
    raw = os.environ.get(f"PORTAL_{name}")
    if raw is None or raw.strip() == "":
        return None
    value = _env_int(name, 0)
    if value < 0:
        raise RuntimeError(f"PORTAL_{name} must not be negative, not {raw!r}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(f"PORTAL_{name}")
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = _env(name, default).strip().lower() or default
    if raw not in choices:
        raise RuntimeError(f"PORTAL_{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in _env(name, "").split(",") if item.strip()]


def _reminder_minutes() -> list[int]:
    if "PORTAL_REMINDER_MINUTES" not in os.environ:
        return [24 * 60, 15]
    try:
        return sorted({int(m) for m in _env_list("REMINDER_MINUTES")}, reverse=True)
    except ValueError as exc:
        raise RuntimeError("PORTAL_REMINDER_MINUTES must be whole minutes, e.g. 1440,15") from exc


def load_secret_key(instance_path: Path, name: str = "secret_key") -> str:
    """A key: PORTAL_<NAME> (the session-signing key by default), else a file made once in
    instance/ (0600)."""
    from_env = os.environ.get(f"PORTAL_{name.upper()}")
    if from_env:
        return from_env
    path = instance_path / name
    if not path.exists():
        instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def check_base_url(config: dict[str, Any]) -> None:
    """Invite links are built from PORTAL_BASE_URL alone, never from a request's Host header
    (which the sender chooses). Unset, they point at the server itself, which is right only
    when it listens on this machine's loopback with no proxy in front: anything else must say
    its public address, or the portal does not start."""
    base = config["BASE_URL"]
    if base:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise RuntimeError(f"PORTAL_BASE_URL must be the portal's public address, like "
                               f"https://consult.example.org, not {base!r}")
        return
    if config["PROXIES"] or not _loopback(config["HOST"]):
        raise RuntimeError(
            f"PORTAL_BASE_URL is required when the portal listens on {config['HOST']} or "
            f"behind a proxy: invite links are built from it. Set it to the address guests "
            f"open, e.g. PORTAL_BASE_URL=https://consult.example.org")


def local_base_url(config: dict[str, Any]) -> str:
    """The server's own address (http://127.0.0.1:5000): the invite links' base when
    PORTAL_BASE_URL is unset, which check_base_url allows on a loopback address only."""
    host = config["HOST"]
    return f"http://[{host.strip('[]')}]:{config['PORT']}" if ":" in host \
        else f"http://{host}:{config['PORT']}"


def settings(instance_path: Path) -> dict[str, Any]:
    """All settings as a Flask config mapping."""
    default_db = f"sqlite:///{instance_path / 'samtale.sqlite3'}"
    secure = _env_bool("COOKIE_SECURE", True)
    return {
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL", default_db),
        # SQLite: how long a write waits for another's to finish before answering 503.
        "SQLITE_BUSY_TIMEOUT_MS": _env_int("SQLITE_BUSY_TIMEOUT_MS", 15000),
        "HOST": _env("HOST", "127.0.0.1"),
        "PORT": _env_int("PORT", 5000),
        # Server threads: every open Socket.IO connection holds one while it lasts.
        "SERVER_THREADS": _env_int("THREADS", 500),
        # How many reverse proxies stand in front; their X-Forwarded-* headers are then trusted.
        "PROXIES": _env_int("PROXIES", 0),
        # Public base URL for links sent to guests (behind a proxy: https://consult.example.org);
        # required unless the server listens on loopback with no proxy (check_base_url).
        "BASE_URL": _env("BASE_URL", "").rstrip("/"),
        "SESSION_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        # A staff sign-in ends SESSION_HOURS after it was made, and IDLE_MINUTES after its
        # last activity (accounts/sessions.py); sessions live in the database, or in Redis.
        "PERMANENT_SESSION_LIFETIME": _env_int("SESSION_HOURS", 12) * 3600,
        "IDLE_MINUTES": _env_int("IDLE_MINUTES", 15),
        "SESSION_PERMANENT": False,  # the cookie goes when the browser closes
        "SESSION_REFRESH_EACH_REQUEST": False,  # stored when changed (each page changes it)
        "SESSION_REDIS_URL": _env("SESSION_REDIS_URL", ""),
        # How often the call sockets of ended sign-ins are looked for and closed (0: never).
        "IDLE_CHECK_SECONDS": _env_int("IDLE_CHECK_SECONDS", 30),
        # Strict-Transport-Security on HTTPS requests (behind a proxy: PORTAL_PROXIES); 0: none.
        "HSTS_SECONDS": _env_int("HSTS_SECONDS", 365 * 24 * 3600),
        # Password hashing (argon2id); the defaults are argon2-cffi's (RFC 9106, low memory).
        # Hashes keep their own parameters: changing these rehashes each one at next sign-in.
        "ARGON2_TIME_COST": _env_int("ARGON2_TIME_COST", RFC_9106_LOW_MEMORY.time_cost),
        "ARGON2_MEMORY_COST": _env_int("ARGON2_MEMORY_COST", RFC_9106_LOW_MEMORY.memory_cost),
        "ARGON2_PARALLELISM": _env_int("ARGON2_PARALLELISM", RFC_9106_LOW_MEMORY.parallelism),
        # Sign-ins hashing at once (each hash takes every core it may); the rest queue.
        "PASSWORD_HASH_CONCURRENCY": _env_int("PASSWORD_HASH_CONCURRENCY", 1),
        "WTF_CSRF_TIME_LIMIT": None,  # bound to the session instead; a long form must not expire
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": _env("DEFAULT_TIMEZONE", "UTC"),
        "LANGUAGES": ["en", "nb"],
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT", "10 per minute"),
        # Per account, across addresses (ASVS 2.2.1): after this many failed sign-ins in a row
        # each further attempt waits 30 s, doubling per failure up to the maximum.
        "LOGIN_THROTTLE_AFTER": _env_int("LOGIN_THROTTLE_AFTER", 5),
        "LOGIN_THROTTLE_MAX_SECONDS": _env_int("LOGIN_THROTTLE_MAX_SECONDS", 900),
        # Second factor (TOTP): always for administrators; for hosts `required` or `optional`.
        "MFA_HOSTS": _env_choice("MFA_HOSTS", "optional", ("optional", "required")),
        # Seals the TOTP secrets (AES-GCM); default: a file made once in instance/ (0600).
        "MFA_KEY": os.environ.get("PORTAL_MFA_KEY") or None,
        "INVITE_RATE_LIMIT": _env("INVITE_RATE_LIMIT", "60 per minute"),
        # A link's views are audited at the first, at a change of state, then once per this.
        "INVITE_AUDIT_MINUTES": _env_int("INVITE_AUDIT_MINUTES", 10),
        "API_RATE_LIMIT": _env("API_RATE_LIMIT", "300 per minute"),
        # Signaling: Socket.IO connects per address, and sockets one participant may hold open
        # (tabs, a reconnect before the old socket timed out) on one worker.
        "SOCKET_CONNECT_RATE_LIMIT": _env("SOCKET_CONNECT_RATE_LIMIT", "120 per minute"),
        "SOCKETS_PER_PARTICIPANT": _env_int("SOCKETS_PER_PARTICIPANT", 4),
        # An invite link opens this long before the start and stays valid this long after the end.
        "INVITE_OPENS_MINUTES_BEFORE": _env_int("INVITE_OPENS_MINUTES_BEFORE", 30),
        "INVITE_CLOSES_MINUTES_AFTER": _env_int("INVITE_CLOSES_MINUTES_AFTER", 60),
        "MAX_GUESTS": _env_int("MAX_GUESTS", 14),  # with the host: a hearing of 15
        # Observers of a hearing (they send no media), counted apart from MAX_GUESTS.
        "MAX_OBSERVERS": _env_int("MAX_OBSERVERS", 30),
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # The call: how long a dropped participant may take to come back without the lobby.
        "RECONNECT_GRACE_SECONDS": _env_int("RECONNECT_GRACE_SECONDS", 60),
        # Socket.IO's heartbeat: a socket whose pong is this late is closed. Lenient, because a
        # worker that is busy reads pongs late, and each needless close costs a write.
        "SOCKET_PING_INTERVAL_SECONDS": _env_int("SOCKET_PING_INTERVAL_SECONDS", 10),
        "SOCKET_PING_TIMEOUT_SECONDS": _env_int("SOCKET_PING_TIMEOUT_SECONDS", 20),
        # ICE: comma-separated stun:/turn:/turns: URLs; TURN credentials by the TURN REST
        # scheme (coturn's use-auth-secret / static-auth-secret), valid TURN_TTL_SECONDS.
        "STUN_URLS": _env_list("STUN_URLS"),
        "TURN_URLS": _env_list("TURN_URLS"),
        "TURN_SECRET": _env("TURN_SECRET", ""),
        "TURN_TTL_SECONDS": _env_int("TURN_TTL_SECONDS", 3600),
        # Several web workers: a Redis URL through which they relay Socket.IO events.
        "SOCKETIO_MESSAGE_QUEUE": _env("SOCKETIO_MESSAGE_QUEUE", "") or None,
        # The Redis channel; portals sharing one Redis need different ones.
        "SOCKETIO_CHANNEL": _env("SOCKETIO_CHANNEL", "samtale"),
        # Recording: where the encrypted files live (shared storage in scale-out), the keyring
        # and signing key (else files made once in instance/, 0600), and what the consent
        # prompt tells people about purpose and retention.
        "RECORDINGS_DIR": _env("RECORDINGS_DIR", str(instance_path / "recordings")),
        "RECORDING_KEYS": os.environ.get("PORTAL_RECORDING_KEYS") or None,
        "RECORDING_KEYS_DIR": _env("RECORDING_KEYS_DIR", ""),  # default: instance/
        "RECORDING_SIGNING_KEY": os.environ.get("PORTAL_RECORDING_SIGNING_KEY") or None,
        "RECORDING_PURPOSE": _env("RECORDING_PURPOSE", ""),
        "RECORDING_RETENTION_DAYS": _env_int("RECORDING_RETENTION_DAYS", 90),
        # Networks the recorder may send media checks to besides public addresses (a LAN's
        # clients: 10.20.0.0/16; the tests' loopback: 127.0.0.0/8,::1). Nothing else inward.
        "RECORDER_ALLOW_ADDRESSES": _env_list("RECORDER_ALLOW_ADDRESSES"),
        # Consults' recorder processes (each its own loop and sockets; publications go to the
        # least loaded). Empty: one per core. 0: record in the web process (embedded).
        "RECORDER_WORKERS": _env_optional_int("RECORDER_WORKERS"),
        # A recorder stamps its recordings this often; three missed stamps mean it died.
        "RECORDING_HEARTBEAT_SECONDS": _env_int("RECORDING_HEARTBEAT_SECONDS", 5),
        # The hearings' recorder (`flask --app app recorder run`, next to Janus): the address
        # Janus forwards recorded media to (one UDP port per stream, SRTP), the Janus
        # instances it records (empty: all of JANUS_URLS), how often it looks for recordings
        # to start or stop (ms).
        "RECORDER_FORWARD_HOST": _env("RECORDER_FORWARD_HOST", "127.0.0.1"),
        "RECORDER_JANUS_URLS": _env_list("RECORDER_JANUS_URLS"),
        "RECORDER_POLL_MS": _env_int("RECORDER_POLL_MS", 1000),
        # Hearings: the Janus instances (comma-separated ws:// URLs on loopback or a private
        # network; empty: no media server, hearings say so). The API secret and VideoRoom's
        # admin key: else files made once in instance/ (0600), which `flask janus config`
        # writes into Janus's configuration. docs/operations.md, "Hearings".
        "JANUS_URLS": _env_list("JANUS_URLS"),
        "JANUS_API_SECRET": os.environ.get("PORTAL_JANUS_API_SECRET") or None,
        "JANUS_ADMIN_KEY": os.environ.get("PORTAL_JANUS_ADMIN_KEY") or None,
        "JANUS_RTP_PORTS": _env("JANUS_RTP_PORTS", "20000-40000"),
        # Who may open a Janus API on a private network (the workers' and recorder's addresses).
        "JANUS_ALLOW_FROM": _env_list("JANUS_ALLOW_FROM"),
        # A request Janus does not answer in this time fails; keepalives keep the portal's
        # sessions (Janus ends a silent one after its session_timeout, 60 s).
        "JANUS_TIMEOUT_SECONDS": _env_int("JANUS_TIMEOUT_SECONDS", 10),
        "JANUS_KEEPALIVE_SECONDS": _env_int("JANUS_KEEPALIVE_SECONDS", 25),
        # A lost instance is tried again after this, doubling up to 30 s.
        "JANUS_RETRY_SECONDS": _env_int("JANUS_RETRY_SECONDS", 2),
        # Guests' e-mail (docs/operations.md, "E-mail"): the SMTP server (no host: nothing is
        # sent, and the host copies each link as before), how to secure it (starttls, tls,
        # none), its account, and the From address.
        "SMTP_HOST": _env("SMTP_HOST", ""),
        "SMTP_PORT": _env_int("SMTP_PORT", 587),
        "SMTP_SECURITY": _env_choice("SMTP_SECURITY", "starttls", ("starttls", "tls", "none")),
        "SMTP_USER": _env("SMTP_USER", ""),
        "SMTP_PASSWORD": _env("SMTP_PASSWORD", ""),
        "SMTP_FROM": _env("SMTP_FROM", "Samtale <no-reply@localhost>"),
        "SMTP_TIMEOUT_SECONDS": _env_int("SMTP_TIMEOUT_SECONDS", 30),
        # A CA bundle to check the server's certificate against instead of the system's.
        "SMTP_CA_FILE": _env("SMTP_CA_FILE", ""),
        # Reminders, in minutes before the start (empty: none); each appointment may turn
        # them off.
        "REMINDER_MINUTES": _reminder_minutes(),
        # The sender (`flask --app app notifications run`, or a thread of the web process
        # when NOTIFY_IN_WEB is on): how often it looks for due messages, how long a claim
        # holds, the first wait before trying a failed message again (doubling, at most an
        # hour), and the tries before it gives up until the host resends.
        "NOTIFY_IN_WEB": _env_bool("NOTIFY_IN_WEB", True),
        "NOTIFY_POLL_SECONDS": _env_int("NOTIFY_POLL_SECONDS", 5),
        "NOTIFY_LEASE_SECONDS": _env_int("NOTIFY_LEASE_SECONDS", 120),
        "NOTIFY_RETRY_SECONDS": _env_int("NOTIFY_RETRY_SECONDS", 60),
        "NOTIFY_MAX_ATTEMPTS": _env_int("NOTIFY_MAX_ATTEMPTS", 8),
        # Seals the invite tokens kept for later messages; default: instance/link_key (0600).
        "LINK_KEY": os.environ.get("PORTAL_LINK_KEY") or None,
        # flask-smorest: the OpenAPI document lives at /api/v1/openapi.json.
        "API_TITLE": "Samtale API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }


def redis_pool_size(config: Mapping[str, Any]) -> int:
    """Redis connections a worker may open: each server thread holds at most one at a time,
    so none waits or is refused one (redis-py's default pool of 100 refused the 101st)."""
    return int(config["SERVER_THREADS"]) + 10
