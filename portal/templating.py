"""Template helpers: dates in the viewer's zone, labels, and security headers on every page."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from babel.dates import get_date_format, get_time_format, get_timezone_name, parse_pattern
from flask import Flask, Response, current_app, render_template, request
from flask_babel import (
    format_date,
    format_time,
    get_locale,
    get_timezone,
    get_translations,
    to_user_timezone,
)
from markupsafe import Markup

from portal.accounts.sessions import warn_seconds
from portal.appointments.forms import role_label
from portal.appointments.services import status_label
from portal.models import Kind, ParticipantRole, RecordingPolicy, RecordingStatus, Status


def when(moment: datetime) -> str:
    """'Wednesday 25 November 2026, 10:00' in the viewer's zone and language."""
    return f"{format_date(moment, 'full')}, {format_time(moment, 'short')}"


class RowText:
    """The text of a list's rows, in the viewer's language and zone, looked up once per page:
    the same as `when`, the labels and the plurals, without asking Flask-Babel for the locale,
    the zone and the catalogue (and parsing the date pattern) again for every row."""

    def __init__(self) -> None:
        self._locale = get_locale()
        self._zone = get_timezone()
        self._translations = get_translations()
        self._date = parse_pattern(get_date_format("full", locale=self._locale))
        self._time = parse_pattern(get_time_format("short", locale=self._locale))
        self._dates: dict[date, str] = {}
        self._times: dict[tuple[time, timedelta | None], str] = {}
        self._memo: dict[Any, str] = {}

    def row(self, kind: Kind, starts_at: datetime, minutes: int, status: Status,
            guests: int) -> tuple[str, str, str, str, str]:
        """One row's text in one template call (a Jinja call costs more than the lookups)."""
        return (self.kind(kind), self.when(starts_at), self.minutes(minutes),
                self.status(status), self.guests(guests))

    def when(self, moment: datetime) -> str:
        """As the `when` filter."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = self._zone.normalize(moment.astimezone(self._zone))
        day = self._dates.get(local.date())
        if day is None:
            day = self._dates[local.date()] = self._date.apply(local.date(), self._locale)
        key = (local.time(), local.utcoffset())
        time = self._times.get(key)
        if time is None:
            time = self._times[key] = self._time.apply(local, self._locale)
        return f"{day}, {time}"

    def _once(self, key: Any, make: Any) -> str:
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = str(make())
        return text

    def status(self, status: Status) -> str:
        return self._once(status, lambda: status_label(status))

    def kind(self, kind: Kind) -> str:
        return self._once(kind, lambda: kind_label(kind))

    def minutes(self, n: int) -> str:
        return self._once(("min", n), lambda: self._translations.ugettext("%(n)d min") % {"n": n})

    def guests(self, n: int) -> str:
        return self._once(("guests", n), lambda: self._translations.ungettext(
            "%(num)d guest", "%(num)d guests", n) % {"num": n})


def zone_name(moment: datetime) -> str:
    """The viewer's zone, spelled out for this moment ('Central European Standard Time')."""
    return get_timezone_name(to_user_timezone(moment), width="long", locale=get_locale())


def role_labels() -> dict[str, str]:
    """Every participant role and its label, for the call's scripts."""
    return {role.value: str(role_label(role)) for role in ParticipantRole}


def kind_label(kind: Kind) -> str:
    from flask_babel import gettext as _

    return _("Consult") if kind is Kind.CONSULT else _("Hearing")


def policy_label(policy: RecordingPolicy) -> str:
    from flask_babel import gettext as _

    return {
        RecordingPolicy.OFF: _("Never recorded"),
        RecordingPolicy.CONSENT: _("Recorded only if everyone consents"),
        RecordingPolicy.NOTICE: _("Recorded by order of the court"),
    }[policy]


def recording_status_label(status: RecordingStatus) -> str:
    from flask_babel import gettext as _

    return {
        RecordingStatus.REQUESTED: _("asking for consent"),
        RecordingStatus.RECORDING: _("recording"),
        RecordingStatus.PAUSED: _("paused"),
        RecordingStatus.COMPLETE: _("complete"),
        RecordingStatus.INCOMPLETE: _("incomplete: the recorder stopped; what was written plays"),
        RecordingStatus.DECLINED: _("declined: nothing was recorded"),
        RecordingStatus.CANCELLED: _("cancelled: nothing was recorded"),
        RecordingStatus.DELETED: _("deleted"),
    }[status]


def recording_reason_label(reason: str) -> str:
    from flask_babel import gettext as _

    labels = {
        "stopped_by_host": _("stopped by the host"),
        "withdrawn": _("a participant withdrew consent"),
        "declined": _("a participant declined"),
        "participant_left": _("a recorded participant left"),
        "call_ended": _("the call ended"),
        "recorder_stopped": _("the recorder stopped"),
    }
    return labels.get(reason, _("connection lost") if reason.startswith("connection_")
                      else reason)


#: Camera and microphone for this origin only (no frame is allowed anyway); the other powerful
#: features the portal does not use are granted to nobody.
PERMISSIONS_POLICY = ", ".join([
    "camera=(self)", "microphone=(self)", "display-capture=()", "geolocation=()",
    "payment=()", "usb=()", "serial=()", "hid=()", "midi=()",
    "accelerometer=()", "gyroscope=()", "magnetometer=()", "screen-wake-lock=()",
    "publickey-credentials-get=()", "xr-spatial-tracking=()", "browsing-topics=()"])


def _security_headers(response: Response) -> Response:
    hsts = current_app.config["HSTS_SECONDS"]
    if hsts > 0 and request.is_secure:  # a browser ignores it over plain HTTP anyway
        response.headers.setdefault("Strict-Transport-Security", f"max-age={hsts}")
    response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Pages carry personal data and one-time secrets (passwords, invite links, API tokens):
    # no cache may keep them. Static files set their own caching first.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return response


def per_locale(template: str) -> Markup:
    """A template that depends on nothing but the language, rendered once per language and
    worker (the call page's ~80 strings for its scripts cost as much as the rest of the page)."""
    cache: dict[tuple[str, str], Markup] = current_app.extensions["per_locale"]
    key = (template, str(get_locale()))
    rendered = cache.get(key)
    if rendered is None:
        rendered = Markup(render_template(template))  # noqa: S704 - autoescaped output
        if not current_app.jinja_env.auto_reload:
            cache[key] = rendered
    return rendered


class Fragments:
    """Rendered fragments keyed by everything they depend on, the newest `size` kept (LRU)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, Markup] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], Markup]) -> Markup:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                return kept
        made = render()  # outside the lock: two threads may both render a new key, harmlessly
        with self._lock:
            self._kept[key] = made
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return made


def rows_html(template: str, rows: Sequence[Hashable], **context: Hashable) -> Markup:
    """A list's rows, rendered once per content, language and zone in each worker: a host's
    list read again between changes costs a lookup, not 50 rows of template. The key is
    everything the fragment shows (the rows' own values, not their ids), so a change is
    never served stale."""

    def render() -> Markup:
        return Markup(render_template(template, rows=rows, **context))  # noqa: S704 - escaped

    if current_app.jinja_env.auto_reload:
        return render()
    key = (template, str(get_locale()), str(get_timezone()), tuple(rows),
           tuple(sorted(context.items())))
    fragments: Fragments = current_app.extensions["fragments"]
    return fragments.get(key, render)


def init_app(app: Flask) -> None:
    app.extensions["per_locale"] = {}
    app.extensions["fragments"] = Fragments(app.config.get("FRAGMENTS_KEPT", 256))
    app.jinja_env.filters.update(when=when, zone_name=zone_name, role_label=role_label,
                                 status_label=status_label, kind_label=kind_label,
                                 policy_label=policy_label)
    app.jinja_env.globals.update(current_timezone=lambda: str(get_timezone()),
                                 current_locale=lambda: str(get_locale()),
                                 role_labels=role_labels, row_text=RowText, per_locale=per_locale,
                                 rows_html=rows_html,
                                 recording_status_label=recording_status_label,
                                 recording_reason_label=recording_reason_label,
                                 idle_warn_seconds=warn_seconds)
    app.after_request(_security_headers)
