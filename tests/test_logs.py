"""The logs hold no invite tokens and cannot be flooded with tracebacks by one client."""

from __future__ import annotations

import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.glogging import Logger

from portal.logs import QuietMalformedPackets
from portal.serve import AccessLogger, options, redact_access_log

TOKEN = "Secret-Invite-Token_0123456789abcdefXYZ"


def _gunicorn_access(logger: Logger) -> None:
    """What gthread logs for one request to /j/<token> that came from another /j/ page."""
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"/j/{TOKEN}?x=1", "PATH_INFO": f"/j/{TOKEN}",
               "QUERY_STRING": "x=1", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.7",
               "HTTP_REFERER": f"https://consult.example.org/j/{TOKEN}",
               "HTTP_USER_AGENT": "test"}
    response = SimpleNamespace(status="200 OK", headers=[("Content-Type", "text/html")], sent=12)
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    logger.access(response, request, environ, timedelta(milliseconds=3))


@pytest.fixture
def gunicorn_logs() -> Iterator[None]:
    """gunicorn's loggers are process-wide: close the files the test opened on them."""
    yield
    for name in ("gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            handler.close()
            logger.removeHandler(handler)


def _config(tmp_path: Path) -> Config:
    config = Config()
    config.set("accesslog", str(tmp_path / "access.log"))
    config.set("access_log_format", '%(h)s "%(r)s" %(s)s %(U)s "%(f)s" %({referer}i)s')
    config.set("errorlog", str(tmp_path / "error.log"))
    return config


def test_gunicorns_access_log_shows_no_invite_token(tmp_path: Path, gunicorn_logs: None):
    """An operator turns the access log on: the token is not in it, the rest of the line is."""
    logger = AccessLogger(_config(tmp_path))
    _gunicorn_access(logger)
    logger.error("Error handling request %s", f"/j/{TOKEN}")
    for handler in logger.access_log.handlers + logger.error_log.handlers:
        handler.flush()
    access = (tmp_path / "access.log").read_text()
    assert TOKEN not in access
    assert '192.0.2.7 "GET /j/<redacted>?x=1 HTTP/1.1" 200 /j/<redacted>' in access
    error = (tmp_path / "error.log").read_text()
    assert TOKEN not in error and "/j/<redacted>" in error


def test_the_portals_worker_redacts_gunicorns_plain_logger_too(tmp_path: Path,
                                                               gunicorn_logs: None):
    """`gunicorn --worker-class portal.serve.Worker --access-logfile ...` without our logger
    class: the worker puts the redaction in."""
    logger = Logger(_config(tmp_path))
    redact_access_log(logger)
    _gunicorn_access(logger)
    for handler in logger.access_log.handlers:
        handler.flush()
    access = (tmp_path / "access.log").read_text()
    assert TOKEN not in access and "/j/<redacted>" in access


def test_the_server_uses_the_redacting_logger(app: Flask):
    assert options(app)["logger_class"] == "portal.serve.AccessLogger"
    assert options(app)["accesslog"] is None


def test_the_development_servers_request_log_shows_no_invite_token(
        app: Flask, caplog: pytest.LogCaptureFixture):
    """`flask run` logs each request line through Werkzeug's logger."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            try:
                urllib.request.urlopen(  # noqa: S310 - our own server on loopback
                    f"http://127.0.0.1:{server.port}/j/{TOKEN}", timeout=10)
            except urllib.error.HTTPError as refused:
                assert refused.code == 404
    finally:
        server.shutdown()
        thread.join(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("GET /j/<redacted> HTTP/1.1" in line for line in lines), lines
    assert not any(TOKEN in line for line in lines)


MALFORMED = ["4garbage", "4{", "49", "42[", "4" + "[" * 500, "42/x,{\"a\":", "4-1", "43a[]"]


def test_malformed_socketio_packets_do_not_flood_the_log(app: Flask,
                                                         caplog: pytest.LogCaptureFixture):
    """The attack: one Engine.IO session sends raw Socket.IO packets that do not decode; each
    used to log a full traceback. Now: one line, no traceback."""
    client = app.test_client()
    opened = client.get("/socket.io/?EIO=4&transport=polling")
    sid = json.loads(opened.data[1:])["sid"]
    with caplog.at_level(logging.INFO):
        for _ in range(10):
            for packet in MALFORMED:
                client.post(f"/socket.io/?EIO=4&transport=polling&sid={sid}", data=packet)
    records = [r for r in caplog.records if r.name in ("engineio.server", "socketio.server")]
    assert len(records) <= 1, [r.getMessage() for r in records]
    assert all(r.exc_info is None and "malformed Socket.IO packet" in r.getMessage()
               for r in records)


def test_an_error_in_our_own_code_keeps_its_traceback():
    """Only decoding failures inside the libraries are quieted; anything else stays loud."""
    quiet = QuietMalformedPackets(clock=lambda: 0.0)
    try:
        json.loads("{")  # the library path: engineio -> json
    except ValueError:
        library_like = sys.exc_info()
    try:
        raise RuntimeError("a bug in a handler")
    except RuntimeError:
        ours = sys.exc_info()
    record = logging.LogRecord("engineio.server", logging.ERROR, __file__, 1,
                               "message handler error", None, ours)
    assert quiet.filter(record) and record.exc_info is ours
    # This test module is not a library frame: also loud.
    record = logging.LogRecord("engineio.server", logging.ERROR, __file__, 1,
                               "message handler error", None, library_like)
    assert quiet.filter(record) and record.exc_info is library_like
