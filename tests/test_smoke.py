"""The shortest path through the portal: sign in, book, invite, open the link."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest


def test_host_books_and_guest_opens_link(browser, new_browser, people):
    browser.login(people.host_a)
    start = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    response = browser.post("/appointments/new", {
        "kind": "consult", "title": "Follow-up", "starts_at": start,
        "duration_minutes": "30", "recording_policy": "consent"})
    assert response.status_code == 302
    page = response.headers["Location"]
    response = browser.post(page + "/guests", {"display_name": "Pat", "role": "patient"},
                            follow_redirects=True)
    assert response.status_code == 200
    link = re.search(r'value="http://127.0.0.1:5000(/j/[^"]+)"', response.get_data(as_text=True))
    assert link
    guest = new_browser()
    landing = guest.get(link.group(1))
    assert landing.status_code == 200
    assert "Follow-up" in landing.get_data(as_text=True)
    assert "Hello Pat." in landing.get_data(as_text=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_audit_chain_on_both_backends(app, people, runner):
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 4 events" in result.output  # three users, the administrator's second factor


def test_demo_gives_a_working_guest_link_every_time_it_runs(runner, new_browser):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    assert "password:" in first.output
    call_page = re.search(r"open http://[^/]+(/appointments/\d+/call)", first.output).group(1)
    link_1 = re.search(r"guest link .*: http://[^/]+(/j/\S+)", first.output).group(1)
    assert new_browser().get(link_1).status_code == 200

    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert "password:" not in second.output  # shown once only
    assert call_page in second.output  # the same consult, still open
    link_2 = re.search(r"guest link .*: http://[^/]+(/j/\S+)", second.output).group(1)
    assert link_2 != link_1
    assert new_browser().get(link_2).status_code == 200
    assert new_browser().get(link_1).status_code == 410  # the old link was replaced


def test_demo_books_a_hearing_of_six_with_a_link_for_each_party(runner, new_browser):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    hearing = re.search(r"demo hearing.*opens http://[^/]+(/appointments/\d+/call)", first.output)
    assert hearing, first.output
    links = dict(re.findall(r"^  (Demo \w+): http://[^/]+(/j/\S+)$", first.output, re.M))
    assert sorted(links) == ["Demo Counsel", "Demo Interpreter", "Demo Observer", "Demo Party",
                             "Demo Witness"]
    for path in links.values():
        page = new_browser().get(path)
        assert page.status_code == 200 and "Demo hearing" in page.get_data(as_text=True)
        assert "recorded by order of the court" in page.get_data(as_text=True)

    second = runner.invoke(args=["demo"])
    assert hearing.group(1) in second.output  # the same hearing, new links
    again = dict(re.findall(r"^  (Demo \w+): http://[^/]+(/j/\S+)$", second.output, re.M))
    assert set(again) == set(links) and not set(again.values()) & set(links.values())


def test_every_page_has_an_icon(new_browser):
    """Browsers ask for /favicon.ico whatever a page links; both answer with the icon."""
    client = new_browser()
    page = client.get("/login").get_data(as_text=True)
    linked = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert linked
    for url in ("/favicon.ico", linked.group(1)):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon"), url
        assert response.get_data()[:4] == b"\x00\x00\x01\x00", url  # an ICO header
        response.close()
