"""Absolute links that leave the portal (invites), honouring PORTAL_BASE_URL behind a proxy,
and the check that keeps ?next= redirects on this site."""

from __future__ import annotations

from flask import current_app, has_request_context, url_for


def invite_url(token: str) -> str:
    """The link a guest opens. Outside a request (CLI) it is built from HOST and PORT."""
    config = current_app.config
    base = config["BASE_URL"]
    if not base and not has_request_context():
        base = f"http://{config['HOST']}:{config['PORT']}"
    if base:
        with current_app.test_request_context():
            return base + url_for("join.landing", token=token)
    return url_for("join.landing", token=token, _external=True)


def is_local_path(target: str | None) -> bool:
    """Whether a redirect target is a path on this site, not another site. Besides "//host",
    browsers read "/\\host" as "//host" and drop tabs and newlines ("/<tab>/host"), so
    backslashes and control characters are refused too."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    return not any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)
