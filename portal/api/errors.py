"""Error answers of the API, all shaped like schemas.ErrorSchema: {code, message[, field,
errors]}. Registered on the API blueprint, so the HTML error pages elsewhere stay as they are.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from portal import errorpages
from portal.errors import DomainError
from portal.extensions import db


def _answer(status: int, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> ResponseReturnValue:
    db.session.rollback()
    return jsonify(body), status, headers or {}


def handle_http(err: HTTPException) -> ResponseReturnValue:
    """Validation failures (webargs/flask-smorest put the details in err.data) keep their field
    messages; 401 keeps its WWW-Authenticate; anything else is the portal's usual JSON answer."""
    data: dict[str, Any] = getattr(err, "data", None) or {}
    status = err.code or 500
    if not data:
        return errorpages.handle_http(err)
    errors = data.get("errors") or data.get("messages")
    if status == 422:
        body = {"code": "invalid", "message": _("Some fields are missing or not valid.")}
    elif status == 400 and errors:
        body = {"code": "bad_request", "message": _("The body is not valid JSON.")}
    else:
        body = {"code": (err.name or "error").lower().replace(" ", "_"),
                "message": err.description or ""}
    if "message" in data:
        body["message"] = data["message"]
    if errors:
        body["errors"] = errors
    return _answer(status, body, data.get("headers"))


def handle_domain(err: DomainError) -> ResponseReturnValue:
    """A rule of the domain refused the request: its status, code, message and field."""
    body: dict[str, Any] = {"code": err.code, "message": err.message, "field": err.field}
    if err.field:
        body["errors"] = {"json": {err.field: [err.message]}}
    return _answer(err.status, body)
