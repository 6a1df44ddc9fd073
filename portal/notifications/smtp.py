"""Sending one message over SMTP (the standard library), as PORTAL_SMTP_* say."""

from __future__ import annotations

import functools
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any


@functools.cache
def _tls(ca_file: str) -> ssl.SSLContext:
    """Certificate and host name checked, against the system's CAs or PORTAL_SMTP_CA_FILE.
    Made once: loading the CAs takes ~50-250 ms, most of a message's sending time."""
    return ssl.create_default_context(cafile=ca_file or None)


def configured(config: Mapping[str, Any]) -> bool:
    """Whether invitations are sent at all."""
    return bool(config.get("SMTP_HOST"))


def send(config: Mapping[str, Any], message: EmailMessage) -> None:
    """Hand the message to the server; raises OSError or smtplib.SMTPException on failure."""
    host, port = config["SMTP_HOST"], int(config["SMTP_PORT"])
    timeout = float(config["SMTP_TIMEOUT_SECONDS"])
    security = config["SMTP_SECURITY"]
    server: smtplib.SMTP
    if security == "tls":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                  context=_tls(config["SMTP_CA_FILE"]))
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if security == "starttls":
            server.starttls(context=_tls(config["SMTP_CA_FILE"]))
        if config["SMTP_USER"]:
            server.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        server.send_message(message)
