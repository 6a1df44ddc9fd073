"""Janus's configuration, written by the portal and locked down.

Janus's Debian defaults are unsafe for us (API on every interface, no `api_secret`, the
well-known admin secret, every plugin loaded). What `write_config` writes instead:
- the Janus API on WebSockets only, bound to the URL's address (loopback or private IPv4) and
  open to named addresses only (ws_acl: 127.0.0.1 by default), no secure WebSockets and no
  Admin API on any transport;
- `api_secret` on every request, a random `admin_secret` for an Admin API that is not served;
- VideoRoom alone: Janus reads plugins and transports from folders of the configuration's own
  that hold links to VideoRoom and the WebSockets transport only, so nothing installed later
  is loaded; no event handlers, no loggers;
- VideoRoom with `admin_key` (rooms are created by the portal only) and `lock_rtp_forward`;
- every folder protected from plugins that record to disk (.mjr files are plaintext);
- a media port range; `interface` and `ice_enforce_list` where the tests pin them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from portal.config import load_secret_key

PLUGIN = "libjanus_videoroom.so"
TRANSPORT = "libjanus_websockets.so"
VIDEOROOM_CONFIG = "janus.plugin.videoroom.jcfg"
#: Where Debian (and a build from source) put Janus's plugins and transports.
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu/janus", "/usr/lib/aarch64-linux-gnu/janus",
            "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus")


@dataclass(frozen=True)
class JanusSettings:
    """One Janus instance as the portal configures and reaches it."""

    api_secret: str
    admin_key: str
    url: str = "ws://127.0.0.1:8188"
    rtp_range: tuple[int, int] = (20000, 40000)
    #: Janus drops a session silent this long; the client's keepalive must come more often.
    session_timeout: int = 60
    #: The address Janus puts in its SDP and gathers on (None: Janus picks). Tests: 127.0.0.2.
    interface: str | None = None
    ice_enforce_list: str | None = None
    #: The addresses that may open the API besides nothing (Janus's ws_acl); on loopback the
    #: default is 127.0.0.1, on a private network they must be named.
    allow_from: tuple[str, ...] = ()
    debug_level: int = 4

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 8188

    def check(self) -> None:
        """ValueError unless the API stays on loopback or a private IPv4 address, over ws://,
        open to named portal addresses only."""
        parts = urlsplit(self.url)
        if parts.scheme != "ws" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"a Janus URL is ws://ADDRESS:PORT, not {self.url!r}")
        address = _ipv4(parts.hostname, "a Janus URL")
        if address.is_unspecified or address.is_multicast or address.is_link_local or not (
                address.is_loopback or address.is_private):
            raise ValueError(f"Janus's API must stay on loopback or a private network, not "
                             f"{address}")
        if not address.is_loopback and not self.allow_from:
            raise ValueError("a Janus on a private network needs the addresses allowed to use "
                             "its API (--allow-from / PORTAL_JANUS_ALLOW_FROM: the portal's "
                             "web workers and recorder)")
        for allowed in self.allow_from:
            _ipv4(allowed, "--allow-from")
        if not (self.api_secret and self.admin_key):
            raise ValueError("Janus needs an api_secret and an admin_key")
        low, high = self.rtp_range
        if not 1024 <= low < high <= 65535:
            raise ValueError(f"a media port range is LOW-HIGH within 1024-65535, not {low}-{high}")
        for value in (self.api_secret, self.admin_key, self.interface, self.ice_enforce_list):
            if value is not None and not _plain(value):
                raise ValueError("Janus settings may hold letters, digits and . , : - _ only")

    @property
    def acl(self) -> list[str]:
        """Who may open the API (Janus's ws_acl): the named addresses, else 127.0.0.1."""
        return list(self.allow_from) or ["127.0.0.1"]


def _ipv4(text: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ValueError(f"{what} names an IPv4 address, not {text!r}") from exc


def _plain(value: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in ".,:-_") for c in value)


def _string(value: str | int) -> str:
    text = str(value)
    assert _plain(text) or text.startswith("/"), text  # check() and our own paths only
    assert '"' not in text and "\\" not in text and "\n" not in text
    return f'"{text}"'


def _render(sections: dict[str, dict[str, Any]]) -> str:
    lines = ["# Written by `flask --app app janus config`: regenerate it, do not edit.", ""]
    for name, items in sections.items():
        lines.append(f"{name}: {{")
        for key, value in items.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, int):
                rendered = str(value)
            elif isinstance(value, list):
                rendered = "[" + ", ".join(_string(v) for v in value) + "]"
            else:
                rendered = _string(value)
            lines.append(f"\t{key} = {rendered}")
        lines += ["}", ""]
    return "\n".join(lines)


def find_lib_dir() -> Path:
    """Janus's library folder (holding plugins/ and transports/); FileNotFoundError if none."""
    for candidate in LIB_DIRS:
        path = Path(candidate)
        if (path / "plugins" / PLUGIN).exists() and (path / "transports" / TRANSPORT).exists():
            return path
    raise FileNotFoundError(f"Janus's {PLUGIN} was not found in {', '.join(LIB_DIRS)}: "
                            f"install Janus (Debian: apt-get install janus)")


def _only(folder: Path, source: Path | None) -> None:
    """`folder` holds a link to `source` and nothing else (an empty folder for None)."""
    folder.mkdir(mode=0o755, exist_ok=True)
    for entry in folder.iterdir():
        if source is None or entry.name != source.name:
            entry.unlink()
    if source is not None:
        link = folder / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)


def _write(path: Path, text: str) -> None:
    """Written whole (a reader never sees half), 0600: it holds secrets."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    temporary.replace(path)


def write_config(directory: Path, settings: JanusSettings, lib_dir: Path | None = None) -> None:
    """Write Janus's configuration into `directory` (made if missing): run it with
    `janus -F DIRECTORY`. Overwrites what an earlier call wrote there."""
    settings.check()
    lib = lib_dir or find_lib_dir()
    directory = directory.resolve()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _only(directory / "plugins", lib / "plugins" / PLUGIN)
    _only(directory / "transports", lib / "transports" / TRANSPORT)
    _only(directory / "events", None)
    _only(directory / "loggers", None)
    general: dict[str, Any] = {
        "configs_folder": str(directory),
        "plugins_folder": str(directory / "plugins"),
        "transports_folder": str(directory / "transports"),
        "events_folder": str(directory / "events"),
        "loggers_folder": str(directory / "loggers"),
        "debug_level": settings.debug_level,
        "debug_colors": False,
        "api_secret": settings.api_secret,
        "admin_secret": secrets.token_hex(32),  # no Admin API is served; never the default
        "session_timeout": settings.session_timeout,
        "reclaim_session_timeout": 0,  # a closed socket ends its sessions at once
        "server_name": "samtale",
        "hide_dependencies": True,
        # Plugins that check it write no file anywhere (VideoRoom 1.1.2 does not check it: the
        # portal never asks it to record, and the systemd unit gives Janus no writable folder).
        "protected_folders": ["/"],
    }
    if settings.interface:
        general["interface"] = settings.interface
    nat: dict[str, Any] = {"nice_debug": False, "ignore_mdns": True}
    if settings.ice_enforce_list:
        nat["ice_enforce_list"] = settings.ice_enforce_list
    low, high = settings.rtp_range
    _write(directory / "janus.jcfg", _render({
        "general": general,
        "certificates": {},
        "media": {"ipv6": False, "rtp_port_range": f"{low}-{high}"},
        "nat": nat,
        "plugins": {},
        "transports": {},
        "loggers": {},
        "events": {"broadcast": False},
    }))
    _write(directory / "janus.transport.websockets.jcfg", _render({
        "general": {"json": "plain", "events": False, "ws": True, "ws_port": settings.port,
                    "ws_ip": settings.host, "ws_acl": ",".join(settings.acl), "wss": False,
                    "ws_logging": "err,warn"},
        "admin": {"admin_ws": False, "admin_wss": False},
        "cors": {},
        "certificates": {},
    }))
    _write(directory / VIDEOROOM_CONFIG, _render({
        "general": {"admin_key": settings.admin_key, "lock_rtp_forward": True,
                    "events": False, "string_ids": False},
    }))



# --- from the portal's settings --------------------------------------------------------------

def urls(app: Flask) -> list[str]:
    """The Janus instances this portal uses (PORTAL_JANUS_URLS); empty: no Janus."""
    return list(app.config.get("JANUS_URLS") or [])


def api_secret(app: Flask) -> str:
    """PORTAL_JANUS_API_SECRET, else a file made once in instance/ (0600)."""
    return str(app.config.get("JANUS_API_SECRET") or
               load_secret_key(Path(app.instance_path), "janus_api_secret"))


def admin_key(app: Flask) -> str:
    """PORTAL_JANUS_ADMIN_KEY, else a file made once in instance/ (0600)."""
    return str(app.config.get("JANUS_ADMIN_KEY") or
               load_secret_key(Path(app.instance_path), "janus_admin_key"))


def settings_for(app: Flask, url: str | None = None) -> JanusSettings:
    """The settings of one instance (the first configured, else the default address)."""
    chosen = url or next(iter(urls(app)), "ws://127.0.0.1:8188")
    low, _, high = str(app.config.get("JANUS_RTP_PORTS", "20000-40000")).partition("-")
    return JanusSettings(api_secret=api_secret(app), admin_key=admin_key(app), url=chosen,
                         rtp_range=(int(low), int(high or low)),
                         allow_from=tuple(app.config.get("JANUS_ALLOW_FROM") or ()))


def room_secret(key: Flask | str, appointment_id: int) -> str:
    """The Janus room's `secret` for this appointment, derived from the portal's SECRET_KEY
    (given, or the app's): every worker knows it without storing it, nobody else can guess it."""
    secret = key if isinstance(key, str) else str(key.config["SECRET_KEY"])
    return hmac.new(secret.encode(), f"janus-room:{appointment_id}".encode(),
                    hashlib.sha256).hexdigest()
