"""Language and time zone of the viewer, and the route that switches language."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale
from babel.dates import get_timezone as babel_timezone
from babel.support import Translations
from flask import Blueprint, Flask, abort, current_app, has_request_context, redirect, request
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, get_translations
from flask_login import current_user
from werkzeug.datastructures import LanguageAccept

from portal.extensions import babel
from portal.links import is_local_path

bp = Blueprint("i18n", __name__)

LANG_COOKIE = "lang"
TZ_COOKIE = "tz"
#: Browsers often send the macro-language "no" (or nynorsk "nn") for Norwegian.
LANGUAGE_ALIASES = {"no": "nb", "nn": "nb"}
_ZONES = frozenset(available_timezones())


def select_locale() -> str:
    """The switch's cookie, else the browser's Accept-Language, else the default (which is
    also the language of the command line)."""
    if not has_request_context():
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
    languages: list[str] = current_app.config["LANGUAGES"]
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in languages:
        return chosen
    accepted = LanguageAccept(
        [(LANGUAGE_ALIASES.get(lang.split("-")[0].lower(), lang), q)
         for lang, q in request.accept_languages]
    )
    return accepted.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]


def valid_zone(name: str | None) -> str | None:
    """The name if it is an IANA zone this machine knows, else None."""
    if not name or name not in _ZONES:
        return None
    try:
        ZoneInfo(name)
        babel_timezone(name)  # Babel's zones (pytz's, when installed) lack e.g. "localtime"
    except (ZoneInfoNotFoundError, LookupError, ValueError):
        return None
    return name


def select_timezone() -> str:
    """The staff member's setting, else the browser's zone (set by tz.js), else the default."""
    if not has_request_context():
        return str(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    if current_user and current_user.is_authenticated and current_user.timezone:
        return str(current_user.timezone)
    zone = valid_zone(request.cookies.get(TZ_COOKIE))
    return zone or str(current_app.config["BABEL_DEFAULT_TIMEZONE"])


@bp.get("/lang/<code>")
def switch_language(code: str) -> ResponseReturnValue:
    """Remember the chosen language and go back where the viewer was."""
    if code not in current_app.config["LANGUAGES"]:
        abort(404)
    target = request.args.get("next", "/")
    if not is_local_path(target):
        target = "/"  # never redirect off-site
    response = redirect(target)
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax",
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True)
    return response


class Catalogues:
    """The catalogue of the viewer's language, for templates. Flask-Babel's own template
    gettext asks for its domain, its cache and the locale's name on every call (about 20 µs;
    the call page has 60 of them); here the locale is looked up and its catalogue kept."""

    def __init__(self) -> None:
        self._kept: dict[Locale | None, Translations] = {}

    def __call__(self) -> Translations:
        locale = get_locale()  # per call: force_locale() may change it within a request
        catalogue = self._kept.get(locale)
        if catalogue is None:
            catalogue = self._kept[locale] = get_translations()
        return catalogue


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    catalogue = Catalogues()
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: catalogue().ugettext(s),
        ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
        newstyle=True)
    app.register_blueprint(bp)
