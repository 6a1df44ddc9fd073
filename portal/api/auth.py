"""Bearer-token authentication for /api/v1, and the audit of every token use.

The API never looks at the Flask-Login session: a request counts as its token's owner (a host)
or it is refused with 401. Each request ends with exactly one commit (database.commit_request,
after `finish`): the view's changes (unless the answer is an error) together with the audit
event of the token's use.
"""

from __future__ import annotations

from typing import NoReturn

from flask import g, request
from flask.wrappers import Response
from flask_babel import gettext as _
from sqlalchemy import select
from webargs.flaskparser import abort

from portal.accounts import services as accounts
from portal.audit import services as audit
from portal.database import writing
from portal.extensions import db
from portal.models import ApiToken, User, utcnow
from portal.tokens import hash_token

SCHEME = "Bearer"
#: The security scheme's name in the OpenAPI document.
SECURITY_SCHEME = "bearerAuth"
#: Longer credentials are not tokens this portal made; no need to hash them.
MAX_TOKEN_LENGTH = 200


def authenticate() -> None:
    """Before every API request: find the token, or answer 401."""
    scheme, _sep, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != SCHEME.lower() or not credential:
        _refuse(_("Send an API token: Authorization: Bearer <token>."))
    token = (accounts.api_token_by_secret(credential)
             if len(credential) <= MAX_TOKEN_LENGTH else None)
    if token is None:
        g.api_rejection = _rejection(credential)
        _refuse(_("The API token is unknown, revoked, or its account is disabled."))
    g.api_token = token
    g.api_user = token.user


def current_host() -> User:
    """The host the current API request acts for."""
    user: User = g.api_user
    return user


def finish(response: Response) -> Response:
    """After every API request: audit the token's use (an error answer keeps only that)."""
    token: ApiToken | None = g.get("api_token")
    rejection: tuple[str, int | None] | None = g.get("api_rejection")
    if token is None and rejection is None:
        return response
    if response.status_code >= 400:
        db.session.rollback()  # an error answer never leaves a half-made change behind
    writing()  # the use is written, also on a GET
    details = {"method": request.method, "endpoint": request.endpoint,
               "status": response.status_code}
    if token is not None:
        token.last_used_at = utcnow()
        audit.record("api_token.used", object_type="api_token", object_id=token.id,
                     details=details)
    elif rejection is not None:
        reason, token_id = rejection
        # Attributed to nobody: the API does not consult the browser session.
        audit.record("api_token.rejected", object_type="api_token", object_id=token_id,
                     details={**details, "reason": reason},
                     actor=audit.Actor("anonymous"))
    return response  # committed by database.commit_request, after this


def _refuse(message: str) -> NoReturn:
    abort(401, message=message, headers={"WWW-Authenticate": SCHEME})


def _rejection(credential: str) -> tuple[str, int | None]:
    """Why a presented token was refused, for the audit trail (never the token itself)."""
    if len(credential) > MAX_TOKEN_LENGTH:
        return "unknown", None
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(credential)))
    if row is None:
        return "unknown", None
    if row.is_revoked:
        return "revoked", row.id
    return "account_disabled", row.id
