"""JSON API under /api/v1 for record and case systems, with its OpenAPI document at
/api/v1/openapi.json, generated from the schemas that validate the requests."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from portal.api.schemas import ErrorSchema


class PortalApi(Api):
    """flask-smorest's Api, minus its app-wide HTTPException handler: the portal's error pages
    (portal/errorpages.py) answer HTML outside /api/, and the API blueprint answers its own
    errors as JSON (portal/api/errors.py)."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        """Register nothing app-wide."""


def init_app(app: Flask) -> None:
    """Register the API blueprint and its OpenAPI document (one Api object per app)."""
    from portal.api import auth
    from portal.api.views import bp
    from portal.extensions import csrf

    api = PortalApi(app, spec_kwargs={
        "info": {"description": (
            "Book consults and hearings and invite their guests from another system. "
            "Every request carries a host's API token (`Authorization: Bearer smt_...`), "
            "issued by an administrator; the API then acts as that host.")},
        "security": [{auth.SECURITY_SCHEME: []}],
    })
    api.spec.components.security_scheme(auth.SECURITY_SCHEME, {
        "type": "http", "scheme": "bearer",
        "description": "A host's API token, issued and revoked by an administrator."})
    csrf.exempt(bp)  # no cookies: a bearer token cannot be sent by another site's form
    api.register_blueprint(bp)
