"""Sending one message over SMTP (the standard library), as PORTAL_SMTP_* say."""

from __future__ import annotations

import functools
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any


@functools.cache
def _tls() -> ssl.SSLContext:
    """The system's CAs, certificate and host name checked. Made once: loading the CAs takes
    ~50-250 ms, which per message was most of the sending time."""
    return ssl.create_default_context()


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
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls())
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if security == "starttls":
            server.starttls(context=_tls())
        if config["SMTP_USER"]:
            server.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        server.send_message(message)
