"""English and Norwegian bokmål, and the viewer's time zone.

The nb catalogue must cover every message a fresh extraction finds and its compiled .mo must be
the one in git; the language follows the switch's cookie, else the browser; times are typed and
shown in the viewer's zone and stored in UTC."""

from __future__ import annotations

import gettext
import io
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel import dates
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from markupsafe import escape
from support import book, get_appointment, invite, invite_path
from wtforms.i18n import get_translations as wtforms_translations

from portal.appointments import services as appointment_services
from portal.extensions import db
from portal.models import User

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "portal" / "translations"
NB_PO = TRANSLATIONS / "nb" / "LC_MESSAGES" / "messages.po"
NB_MO = TRANSLATIONS / "nb" / "LC_MESSAGES" / "messages.mo"
NB_ASKING = "Ber om tilgang til kamera og mikrofon…"

#: A printf conversion as Python's % operator reads it, named or not; "%%" included.
CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]")
HTML_TAG = re.compile(r"<html\b[^>]*>")


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh)


def conversions(text: str) -> list[str]:
    return sorted(CONVERSION.findall(text))


def babel_when(moment: datetime, zone: str, locale: str) -> tuple[str, str]:
    """What Babel (CLDR) writes for this moment in this zone and language: the date and time as
    the join page shows them, and the zone's long name. The pages must show exactly that; the
    wording itself is CLDR's and changes between Babel releases (2.19 renamed Oslo's zone)."""
    local = moment.astimezone(ZoneInfo(zone))
    shown = (f"{dates.format_date(local, 'full', locale=locale)}, "
             f"{dates.format_time(local, 'short', locale=locale)}")
    return str(escape(shown)), str(escape(dates.get_timezone_name(local, "long", locale=locale)))


#: The booking below: 10:00 in Oslo on 15 January 2030 (CET, UTC+1).
BOOKED = datetime(2030, 1, 15, 9, 0, tzinfo=UTC)


def stray_percent(text: str) -> bool:
    """A "%" that is no conversion breaks the % formatting every message goes through."""
    return "%" in CONVERSION.sub("", text)


def html_tag(response) -> str:
    match = HTML_TAG.search(response.get_data(as_text=True))
    assert match, "the page has no <html> element"
    return match.group(0)


# --- the catalogues ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """What `scripts/i18n extract` finds in the code as it is now (the committed .pot aside)."""
    out = tmp_path_factory.mktemp("i18n") / "messages.pot"
    result = subprocess.run(  # noqa: S603 (our own script, fixed arguments)
        [str(ROOT / "scripts" / "i18n"), "extract", str(out)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return read_catalog(out)


def message_ids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def test_extraction_finds_python_and_template_messages(extracted):
    ids = message_ids(extracted)
    assert "Please sign in to see this page." in ids  # lazy_gettext in portal/__init__.py
    assert "Current password" in ids  # _l in a form
    assert "No such appointment." in ids  # gettext in a service
    assert "What to expect" in ids  # _() in a template
    assert "%(num)d guest" in ids  # ngettext in a template


def test_nb_catalogue_translates_every_message(extracted):
    nb = read_catalog(NB_PO)
    assert not nb.fuzzy, "a catalogue marked fuzzy in its header is not compiled at all"
    assert nb.plural_forms == "nplurals=2; plural=(n != 1);"
    problems = []
    for message in extracted:
        if not message.id:
            continue
        name = message.id if isinstance(message.id, str) else message.id[0]
        translation = nb.get(message.id, message.context)
        if translation is None:
            problems.append(f"missing: {name!r}")
            continue
        if translation.fuzzy:
            problems.append(f"fuzzy: {name!r}")
        if isinstance(message.id, str):
            pairs = [(message.id, translation.string)]
        else:  # plural: each nb form carries what the English plural carries
            forms = list(translation.string) if isinstance(translation.string, tuple | list) \
                else [translation.string]
            if len(forms) != nb.num_plurals:
                problems.append(f"{len(forms)} plural forms, not {nb.num_plurals}: {name!r}")
            pairs = [(message.id[1], form) for form in forms]
        for source, target in pairs:
            if not isinstance(target, str) or not target.strip():
                problems.append(f"empty: {name!r}")
            elif conversions(source) != conversions(target):
                problems.append(f"placeholders differ: {source!r} -> {target!r}")
            elif stray_percent(target):
                problems.append(f"stray %: {target!r}")
    assert not problems, "\n".join(problems)


def test_catalogues_hold_no_stale_messages(extracted):
    """scripts/i18n extract and update were run: nothing removed from the code lingers."""
    fresh = message_ids(extracted)
    assert message_ids(read_catalog(NB_PO)) == fresh
    assert message_ids(read_catalog(TRANSLATIONS / "messages.pot")) == fresh


def test_committed_mo_is_compiled_from_the_po():
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(NB_PO))
    buffer.seek(0)
    fresh = gettext.GNUTranslations(buffer)
    with NB_MO.open("rb") as fh:
        committed = gettext.GNUTranslations(fh)
    # "" is the header, which names the Babel version that compiled it: not a message.
    messages = {k: v for k, v in fresh._catalog.items() if k != ""}
    assert messages, "the nb catalogue is empty"
    assert {k: v for k, v in committed._catalog.items() if k != ""} == messages
    assert [committed.plural(n) for n in range(4)] == [fresh.plural(n) for n in range(4)]


def test_flask_babel_finds_the_catalogue(app):
    """BABEL_TRANSLATION_DIRECTORIES is left at its default, relative to portal/."""
    assert app.extensions["babel"].translation_directories == [str(TRANSLATIONS)]


# --- choosing the language -------------------------------------------------------------------


NORWEGIAN = ["nb-NO", "nb", "no", "nn", "nn-NO", "no-NO,no;q=0.9", "nb-NO,nb;q=0.9,en;q=0.8",
             "de-DE,de;q=0.9,nb;q=0.5"]
ENGLISH = ["en-US", "en", "en-GB,en;q=0.9", "fr-FR", "xx", "sv-SE,sv;q=0.9", "*", ""]


@pytest.mark.parametrize("accept", NORWEGIAN)
def test_norwegian_browsers_get_norwegian_pages(app, people, new_browser, accept):
    login = new_browser().get("/login", headers={"Accept-Language": accept})
    page = login.get_data(as_text=True)
    assert 'lang="nb"' in html_tag(login)
    assert "For ansatte. Gjester blir med via lenken de har fått tilsendt" in page
    assert "<h1>Logg inn</h1>" in page and "Sign in" not in page

    _, token = invite(app, book(app, people.host_a.id), name="Pat")
    landing = new_browser().get(f"/j/{token}", headers={"Accept-Language": accept})
    page = landing.get_data(as_text=True)
    assert landing.status_code == 200
    assert 'lang="nb"' in html_tag(landing)
    assert "Hei, Pat." in page and "Slik foregår det" in page and "Konsultasjon" in page
    assert "What to expect" not in page


def test_templates_follow_a_language_forced_within_a_request(app):
    """Templates keep each language's catalogue (portal.i18n.Catalogues) but ask for the
    language at every message: a message in another language (force_locale, as a mail to a
    guest would be) is in that language, and the page's own after it in the page's."""
    from flask import render_template_string
    from flask_babel import force_locale

    template = '{{ _("What to expect") }}|{{ ngettext("%(num)d guest", "%(num)d guests", 2) }}'
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        assert render_template_string(template) == "What to expect|2 guests"
        with force_locale("nb"):
            assert render_template_string(template) == "Slik foregår det|2 gjester"
        assert render_template_string(template) == "What to expect|2 guests"


@pytest.mark.parametrize("accept", ENGLISH)
def test_other_browsers_get_english_pages(app, people, new_browser, accept):
    headers = {"Accept-Language": accept} if accept else {}
    login = new_browser().get("/login", headers=headers)
    page = login.get_data(as_text=True)
    assert 'lang="en"' in html_tag(login)
    assert "<h1>Sign in</h1>" in page and "Logg inn" not in page

    _, token = invite(app, book(app, people.host_a.id), name="Pat")
    landing = new_browser().get(f"/j/{token}", headers=headers)
    page = landing.get_data(as_text=True)
    assert "Hello Pat." in page and "What to expect" in page and "Slik foregår det" not in page


def test_the_switch_overrides_the_browser(browser, people):
    response = browser.get("/lang/nb?next=/login", headers={"Accept-Language": "en"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=nb;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie

    login = browser.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert 'lang="nb"' in html_tag(login)
    assert "<h1>Logg inn</h1>" in login.get_data(as_text=True)
    # The switch offers the other language, in its own name.
    assert 'lang="en" href="/lang/en?next=' in login.get_data(as_text=True)

    # Messages from Python (a flash) and from WTForms follow too, not only the templates.
    wrong = browser.post("/login", {"email": people.host_a.email, "password": "wrong"},
                         headers={"Accept-Language": "en"})
    assert "Feil e-postadresse eller passord" in wrong.get_data(as_text=True)
    empty = browser.post("/login", {"email": "", "password": ""},
                         headers={"Accept-Language": "en"})
    required = wtforms_translations(["nb"]).gettext("This field is required.")
    assert required != "This field is required."  # WTForms ships a Norwegian catalogue
    assert str(escape(required)) in empty.get_data(as_text=True)

    back = browser.get("/lang/en?next=/login", headers={"Accept-Language": "nb"})
    assert back.headers["Location"] == "/login"
    login = browser.get("/login", headers={"Accept-Language": "nb"})
    assert 'lang="en"' in html_tag(login)
    assert "<h1>Sign in</h1>" in login.get_data(as_text=True)


def test_signed_in_pages_and_flashes_follow_the_language(browser, people):
    browser.client.set_cookie("lang", "nb")
    browser.login(people.host_a)
    page = browser.get("/appointments/").get_data(as_text=True)
    assert "Dine avtaler" in page and "Sett opp en avtale" in page and "Logg ut" in page
    form = browser.get("/appointments/new").get_data(as_text=True)
    assert "Varighet (minutter)" in form and "Tas bare opp hvis alle samtykker" in form
    signed_out = browser.post("/logout", follow_redirects=True)
    assert "Du er logget ut." in signed_out.get_data(as_text=True)


def test_an_unknown_language_is_404(browser):
    response = browser.get("/lang/xx?next=/login")
    assert response.status_code == 404
    assert "Set-Cookie" not in response.headers or "lang=" not in response.headers["Set-Cookie"]


def test_an_unknown_language_cookie_is_ignored(browser):
    browser.client.set_cookie("lang", "xx")
    response = browser.get("/login", headers={"Accept-Language": "nb"})
    assert response.status_code == 200
    assert 'lang="nb"' in html_tag(response)


@pytest.mark.parametrize("target", [
    "//evil.example", "https://evil.example", "http://evil.example/login", "/\\evil.example",
    "\\\\evil.example", "/\t/evil.example", "javascript:alert(1)", "evil.example", ""])
def test_the_switch_never_leaves_the_site(browser, target):
    response = browser.client.get("/lang/nb", query_string={"next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_the_switch_keeps_a_local_path_and_query(browser):
    response = browser.client.get("/lang/nb", query_string={"next": "/login?next=/appointments/"})
    assert response.headers["Location"] == "/login?next=/appointments/"


# --- time zones ------------------------------------------------------------------------------


#: A fixed "now", so the invite link opened below is valid whenever the tests run.
FROZEN_NOW = datetime(2030, 1, 15, 8, 45, tzinfo=UTC)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(appointment_services, "utcnow", lambda: FROZEN_NOW)
    return FROZEN_NOW


@pytest.fixture
def oslo_booking(app, people, new_browser, frozen_clock) -> tuple[int, str]:
    """A host whose browser is in Oslo books 10:00 on 15 January 2030 and invites Pat.
    Returns the appointment id and the guest's /j/<token> path."""
    host = new_browser()
    host.client.set_cookie("tz", "Europe/Oslo")
    host.login(people.host_a)
    form = host.get("/appointments/new")
    assert 'data-tz="Europe/Oslo"' in html_tag(form)
    assert "In your time zone, Europe/Oslo." in form.get_data(as_text=True)
    response = host.post("/appointments/new", {
        "kind": "consult", "title": "Follow-up", "starts_at": "2030-01-15T10:00",
        "duration_minutes": "30", "recording_policy": "consent"})
    assert response.status_code == 302, response.get_data(as_text=True)
    appointment_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    edit = host.get(f"/appointments/{appointment_id}/edit").get_data(as_text=True)
    assert 'value="2030-01-15T10:00"' in edit  # shown back in the zone it was typed in
    added = host.post(f"/appointments/{appointment_id}/guests",
                      {"display_name": "Pat", "role": "patient"}, follow_redirects=True)
    return appointment_id, invite_path(added)


def test_a_time_typed_in_oslo_is_stored_in_utc(app, oslo_booking):
    appointment_id, _ = oslo_booking
    stored = get_appointment(app, appointment_id)
    assert stored.starts_at == datetime(2030, 1, 15, 9, 0, tzinfo=UTC)  # CET is UTC+1
    assert stored.ends_at == datetime(2030, 1, 15, 9, 30, tzinfo=UTC)


def test_a_guest_in_new_york_sees_new_york_time(new_browser, oslo_booking):
    _, path = oslo_booking
    guest = new_browser()
    guest.client.set_cookie("tz", "America/New_York")
    landing = guest.get(path)
    assert landing.status_code == 200
    page = landing.get_data(as_text=True)
    assert 'data-tz="America/New_York"' in html_tag(landing)
    shown, zone = babel_when(BOOKED, "America/New_York", "en")
    assert shown in page and "4:00" in shown  # 04:00 in New York (EST, UTC-5)
    assert zone in page and zone != babel_when(BOOKED, "UTC", "en")[1]
    assert "10:00" not in page and "9:00" not in page


def test_a_norwegian_guest_sees_oslo_time_in_norwegian(new_browser, oslo_booking):
    _, path = oslo_booking
    guest = new_browser()
    guest.client.set_cookie("tz", "Europe/Oslo")
    landing = guest.get(path, headers={"Accept-Language": "nb-NO"})
    page = landing.get_data(as_text=True)
    assert html_tag(landing) == '<html lang="nb" data-tz="Europe/Oslo">'
    shown, zone = babel_when(BOOKED, "Europe/Oslo", "nb")
    assert shown in page and "10" in shown and "tirsdag" in shown
    # The zone's name in Norwegian, as Babel spells it this release, not the English one.
    assert zone in page and zone != babel_when(BOOKED, "Europe/Oslo", "en")[1]
    assert babel_when(BOOKED, "Europe/Oslo", "en")[1] not in page
    assert "Tidspunkter vises i tidssonen Europe/Oslo." in page


def test_without_a_zone_cookie_the_default_zone_is_used(new_browser, oslo_booking):
    _, path = oslo_booking
    landing = new_browser().get(path)
    page = landing.get_data(as_text=True)
    assert html_tag(landing) == '<html lang="en" data-tz="UTC">'
    shown, zone = babel_when(BOOKED, "UTC", "en")
    assert shown in page and "9:00" in shown
    assert zone in page


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc", "../../../etc/passwd",
                                  "Europe/../Europe/Oslo", "localtime", "europe/oslo", "+01:00",
                                  "x" * 300])
def test_an_invalid_zone_cookie_is_ignored(new_browser, oslo_booking, zone):
    _, path = oslo_booking
    guest = new_browser()
    guest.client.set_cookie("tz", zone)
    landing = guest.get(path)
    assert landing.status_code == 200
    assert 'data-tz="UTC"' in html_tag(landing)
    assert "9:00" in landing.get_data(as_text=True)


def test_the_staff_members_own_zone_beats_the_cookie(app, people, browser):
    with app.app_context():
        user = db.session.get(User, people.host_a.id)
        assert user is not None
        user.timezone = "Asia/Tokyo"
        db.session.commit()
    browser.client.set_cookie("tz", "Europe/Oslo")
    browser.login(people.host_a)
    page = browser.get("/appointments/new")
    assert 'data-tz="Asia/Tokyo"' in html_tag(page)


@pytest.mark.parametrize("lang", ["en", "nb"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Oslo", "America/New_York", "Asia/Kolkata"])
def test_the_lists_row_text_is_the_same_as_the_filters_and_catalogue_give(app, lang, zone):
    """The list formats its rows once per page (RowText): it must say what the `when` filter,
    the labels and gettext say, in either language and zone, across a DST change."""
    from flask_babel import gettext, ngettext

    from portal.models import Kind, Status
    from portal.templating import RowText, kind_label, when

    moments = [datetime(2027, 3, 28, h, m, tzinfo=UTC) for h in range(24) for m in (0, 59)]
    moments += [datetime(2027, 10, 31, 0, 30), datetime(2026, 12, 31, 23, 30)]  # naive: UTC
    with app.test_request_context(headers={"Cookie": f"lang={lang}; tz={zone}"}):
        text = RowText()
        for moment in moments:
            assert text.when(moment) == when(moment)
        for status in Status:
            assert text.status(status) == appointment_services.status_label(status)
        for kind in Kind:
            assert text.kind(kind) == kind_label(kind)
        for n in (0, 1, 2, 5, 60, 90):
            assert text.minutes(n) == gettext("%(n)d min", n=n)
            assert text.guests(n) == ngettext("%(num)d guest", "%(num)d guests", n)
        if lang == "nb":
            assert text.status(Status.SCHEDULED) == "planlagt"


def call_text(page: str) -> dict[str, object]:
    start = page.index('<script type="application/json" id="call-text">') + len(
        '<script type="application/json" id="call-text">')
    return dict(json.loads(page[start:page.index("</script>", start)]))


def test_the_call_pages_script_text_is_rendered_once_per_language_and_never_mixed(
        app, people, new_browser):
    _, token = invite(app, book(app, people.host_a.id), name="Pat")
    pages = {accept: [new_browser().get(f"/j/{token}", headers={"Accept-Language": accept})
                      .get_data(as_text=True) for _ in range(2)] for accept in ("en", "nb", "fr")}
    english, norwegian = call_text(pages["en"][0]), call_text(pages["nb"][0])
    assert english["media_asking"] == "Asking for your camera and microphone…"
    assert norwegian["media_asking"] == NB_ASKING
    assert norwegian["roles"] != english["roles"]
    # The second page of a language is the first one's text, and French gets the English one.
    assert call_text(pages["en"][1]) == call_text(pages["fr"][0]) == english
    assert call_text(pages["nb"][1]) == norwegian
    assert sorted(app.extensions["per_locale"]) == [("call/_text.html", "en"),
                                                    ("call/_text.html", "nb")]
