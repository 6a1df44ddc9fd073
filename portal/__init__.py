"""Samtale: video consultations for clinics, law firms and courts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from flask_babel import lazy_gettext
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Shipped inside the package (in the checkout, symlinks to the top-level folders), so a wheel
# finds them as well as a checkout does.
PACKAGE_DIR = Path(__file__).parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the portal: settings, extensions, blueprints, error pages, CLI."""
    from portal import cli, database, errorpages, i18n, logs, private, templating
    from portal.accounts import auth, sessions
    from portal.accounts.session_views import bp as session_bp
    from portal.accounts.views import bp as accounts_bp
    from portal.admin.views import bp as admin_bp
    from portal.api import init_app as init_api
    from portal.appointments.views import bp as appointments_bp
    from portal.call import init_app as init_call
    from portal.config import check_base_url, load_secret_key, settings
    from portal.extensions import csrf, db, limiter, login_manager, migrate
    from portal.inputs import IdConverter, refuse_unacceptable_input
    from portal.join import opened as opened_links
    from portal.join.views import bp as join_bp
    from portal.notifications import views as notifications
    from portal.recording import manager as recording_manager
    from portal.recording.views import bp as recordings_bp
    from portal.views import bp as home_bp

    # Whatever this process writes (database, keys, recordings, exports) is its user's alone.
    private.restrict_umask()
    app = Flask(__name__, template_folder=str(PACKAGE_DIR / "templates"),
                instance_relative_config=True)
    instance = Path(app.instance_path)
    app.config.update(settings(instance))
    if test_config:
        app.config.update(test_config)
    check_base_url(app.config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(instance)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///"):
        private.folder(instance)
        sqlite_path = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).database
        if sqlite_path and sqlite_path != ":memory:" and not sqlite_path.startswith("file:"):
            private.sqlite_files(Path(sqlite_path))

    # Request lines with /j/<token> (the development server's log, Flask's "Exception on").
    logs.redact_logger(logging.getLogger("werkzeug"))
    logs.redact_logger(app.logger)

    database.init_app(app)
    migrate.init_app(app, db, directory=str(PACKAGE_DIR / "migrations"), render_as_batch=True,
                     compare_type=True)
    sessions.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = lazy_gettext("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    csrf.init_app(app)
    limiter.init_app(app)
    i18n.init_app(app)
    templating.init_app(app)
    app.before_request(refuse_unacceptable_input)
    app.before_request(auth.enforce_password_change)

    app.url_map.converters["id"] = IdConverter
    for blueprint in (home_bp, accounts_bp, session_bp, appointments_bp, admin_bp, join_bp,
                      recordings_bp):
        app.register_blueprint(blueprint)
    init_api(app)
    notifications.init_app(app)
    opened_links.init_app(app)
    recording_manager.init_app(app)
    init_call(app)
    errorpages.init_app(app)
    cli.init_app(app)
    if app.config["PROXIES"]:
        # Outermost, around the Socket.IO middleware too: a socket's address (its rate limits)
        # is the client's, not the proxy's that every socket shares.
        hops = app.config["PROXIES"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    return app
