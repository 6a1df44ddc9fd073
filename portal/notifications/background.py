"""The sender as a thread of the web process (the embedded default, PORTAL_NOTIFY_IN_WEB), or
as the long-running `flask --app app notifications run`."""

from __future__ import annotations

import threading

from flask import Flask

from portal.notifications import smtp
from portal.notifications.sender import Sender

_KEY = "notifications"


def start(app: Flask) -> Sender | None:
    """Start the sender thread, if e-mail is configured and the web process is to send."""
    if not (smtp.configured(app.config) and app.config["NOTIFY_IN_WEB"]):
        return None
    sender = Sender(app)
    thread = threading.Thread(target=sender.run, name="notifications", daemon=True)
    app.extensions[_KEY] = (sender, thread)
    thread.start()
    return sender


def stop(app: Flask, timeout: float = 5.0) -> None:
    """Stop the thread after the message it is sending (if any)."""
    found = app.extensions.pop(_KEY, None)
    if found is not None:
        sender, thread = found
        sender.stop.set()
        thread.join(timeout)
