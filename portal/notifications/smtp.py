"""Sending one message over SMTP (the standard library), as PORTAL_SMTP_* say."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any


def configured(config: Mapping[str, Any]) -> bool:
    """Whether invitations are sent at all."""
    return bool(config.get("SMTP_HOST"))


def send(config: Mapping[str, Any], message: EmailMessage) -> None:
    """Hand the message to the server; raises OSError or smtplib.SMTPException on failure."""
    host, port = config["SMTP_HOST"], int(config["SMTP_PORT"])
    timeout = float(config["SMTP_TIMEOUT_SECONDS"])
    security = config["SMTP_SECURITY"]
    context = ssl.create_default_context()
    server: smtplib.SMTP
    if security == "tls":
        server = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(host, port, timeout=timeout)
    with server:
        if security == "starttls":
            server.starttls(context=context)
        if config["SMTP_USER"]:
            server.login(config["SMTP_USER"], config["SMTP_PASSWORD"])
        server.send_message(message)
