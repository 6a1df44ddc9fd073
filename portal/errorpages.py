"""Clear error pages (or JSON under /api/) instead of stack traces."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from portal.database import is_busy, read_from_here
from portal.errors import DomainError
from portal.extensions import db

#: Seconds a client is asked to wait when the database is busy.
RETRY_AFTER = 2


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _messages() -> dict[int, str]:
    return {
        400: _("The request was not understood. Please go back and try again."),
        401: _("Please sign in."),
        403: _("You do not have access to this page."),
        404: _("There is nothing here. Check the address."),
        405: _("That is not something this page can do."),
        410: _("This is no longer available."),
        413: _("What you sent is too large."),
        429: _("Too many attempts. Wait a minute and try again."),
        500: _("Something went wrong on our side. Please try again in a moment."),
        503: _("The portal is busy. Please try again in a moment."),
    }


def _page(status: int, message: str, code: str,
          headers: dict[str, str] | None = None) -> ResponseReturnValue:
    db.session.rollback()
    if _wants_json():
        return {"code": code, "message": message}, status, headers or {}
    return render_template("error.html", status=status, message=message), status, headers or {}


def busy() -> ResponseReturnValue:
    """SQLite's write lock stayed taken past the busy timeout: ask the client to come back.
    The page itself only reads (who is signed in), so it does not wait for the lock again."""
    read_from_here()
    return _page(503, _messages()[503], "busy", {"Retry-After": str(RETRY_AFTER)})


def handle_http(err: HTTPException) -> ResponseReturnValue:
    status = err.code or 500
    if status == 500 and is_busy(getattr(err, "original_exception", None)):
        return busy()  # raised after the view (the session's save): Flask wraps it as a 500
    # abort(403, "why") says more than the generic text; werkzeug's own default says less,
    # and so does a rate limiter's "10 per 1 minute".
    custom = (err.description if err.description != type(err).description and status != 429
              else None)
    message = custom or _messages().get(status, err.description or "")
    return _page(status, message, (err.name or "error").lower().replace(" ", "_"))


def handle_csrf(err: CSRFError) -> ResponseReturnValue:
    return _page(400, _("The form expired or did not come from this site. Reload the page and "
                        "try again."), "csrf_failed")


def handle_domain(err: DomainError) -> ResponseReturnValue:
    return _page(err.status, err.message, err.code)


def handle_operational(err: OperationalError) -> ResponseReturnValue:
    if is_busy(err):
        return busy()
    raise err


def init_app(app: Flask) -> None:
    app.register_error_handler(OperationalError, handle_operational)
    app.register_error_handler(CSRFError, handle_csrf)
    app.register_error_handler(DomainError, handle_domain)
    app.register_error_handler(HTTPException, handle_http)
