"""What the portal's logs must not hold, and must not be flooded with.

- Invite tokens: `/j/<token>` is a key to a consult. Any request line a server logs (gunicorn's
  access and error logs, Werkzeug's development server, Flask's "Exception on ...") shows it as
  `/j/<redacted>`.
- Malformed Socket.IO packets: python-socketio fails to decode them inside Engine.IO's message
  handler, which logs a full traceback for each, so one client could fill the disk. Those
  become one line a minute, saying how many there were.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

#: The invite path and its token, wherever it appears (a request line, a Referer, a message).
_INVITE = re.compile(r"(/j/)[^\s/?#\"'<>]+")
REDACTED = r"\1<redacted>"


def redact(text: str) -> str:
    """The text with every invite token replaced by `<redacted>`."""
    return _INVITE.sub(REDACTED, text)


def redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Takes invite tokens out of a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_value(a) for a in record.args)
        elif type(record.args) is dict:  # not a subclass (gunicorn's atoms keep their type)
            record.args = {k: redact_value(v) for k, v in record.args.items()}
        return True


def redact_logger(logger: logging.Logger) -> None:
    """Add the filter once."""
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())


#: Engine.IO's and Socket.IO's own loggers (flask-socketio passes logger=False: the defaults).
SOCKET_LOGGERS = ("engineio.server", "socketio.server")
#: Where a decoding failure may happen: the two libraries and the standard JSON decoder.
_LIBRARIES = {"engineio", "socketio", "json"}


def _raised_in_the_library(tb: TracebackType | None) -> bool:
    """Every frame is Engine.IO's or Socket.IO's own: the packet failed to decode. An error in
    the portal's handlers passes through flask_socketio and portal frames, and stays loud."""
    if tb is None:
        return False
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] not in _LIBRARIES:
            return False
        tb = tb.tb_next
    return True


class QuietMalformedPackets(logging.Filter):
    """A malformed packet's traceback becomes at most one line per `interval` seconds."""

    def __init__(self, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._next_at = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _raised_in_the_library(exc.__traceback__):
            return True
        with self._lock:
            now = self.clock()
            if now < self._next_at:
                self._dropped += 1
                return False
            dropped, self._dropped, self._next_at = self._dropped, 0, now + self.interval
        record.msg = ("malformed Socket.IO packet from a client refused (%s: %.200s); "
                      "%d more since the last such line")
        record.args = (type(exc).__name__, str(exc), dropped)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_socket_loggers() -> None:
    """Install the filter on the Socket.IO libraries' loggers, once per process."""
    for name in SOCKET_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietMalformedPackets) for f in logger.filters):
            logger.addFilter(QuietMalformedPackets())
