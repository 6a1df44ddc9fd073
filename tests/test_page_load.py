"""Pages under load (issue 16): the host's list and appointment page cost the same number of
SQL statements at 1 and at 50 appointments (or guests); a guest's link page is not a write at
every view; reads on SQLite never wait for a writer; a busy database answers 503 with
Retry-After, never 500. The speed itself is measured by bench/pages.py, not here."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from apps import make_app
from flask import Flask
from people import Browser
from sqlalchemy import event
from support import audit_events, book, hand_clock, invite

from portal.extensions import db

WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs (BEGIN included)."""
    seen: list[str] = []

    def note(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        seen.append(sql.strip().split("\n")[0])

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    # pysqlite's BEGIN goes through exec_driver_sql too, so it is counted with the rest.
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.upper().startswith(WRITES)]


def test_the_list_and_an_appointment_page_cost_the_same_queries_at_1_and_at_50(
        app, people, new_browser):
    app.config["MAX_GUESTS"] = 60
    host = new_browser().login(people.host_a)
    first = book(app, people.host_a.id, title="First")
    invite(app, first, "Guest 0")

    def cost(url: str) -> int:
        host.get(url)  # the session's own writes (a touch) settle first
        with statements(app) as seen:
            assert host.get(url).status_code == 200
        return len(seen)

    list_at_1, page_at_1 = cost("/appointments/"), cost(f"/appointments/{first}")
    for n in range(1, 50):
        invite(app, book(app, people.host_a.id, title=f"Other {n}"), f"Guest {n}")
        invite(app, first, f"Guest 0.{n}")
    assert host.get("/appointments/").get_data(as_text=True).count('class="status-') == 50
    assert cost("/appointments/") == list_at_1
    assert cost(f"/appointments/{first}") == page_at_1


def test_a_hearings_page_costs_the_same_queries_with_1_and_with_30_people(
        app, people, new_browser):
    """Who represents, interprets for and is screened from whom is loaded with the people,
    not asked for person by person."""
    from court_booking import add_staff, book_hearing

    from portal.appointments import hearing
    from portal.appointments.hearing import Seat
    from portal.models import Appointment
    from portal.models import ParticipantRole as R

    app.config["MAX_GUESTS"] = 40
    judge = add_staff(app, "judge@example.org", "Judge")
    first, _, _ = book_hearing(app, people.host_a.id, [
        Seat(R.PARTY, "Party 0", ref="p"), Seat(R.COUNSEL, "Counsel 0", represents=["p"]),
        Seat(R.WITNESS, "Witness 0", ref="w", screened_from=["p"]),
        Seat(R.INTERPRETER, "Tolk 0", interprets_for="w", language="nb")])
    host, bench = new_browser().login(people.host_a), new_browser().login(judge)

    def cost(browser: Browser, url: str) -> int:
        browser.get(url)
        with statements(app) as seen:
            assert browser.get(url).status_code == 200
        return len(seen)

    with app.app_context():
        appointment = db.session.get(Appointment, first)
        hearing.add_participant(appointment, Seat(R.JUDGE, staff_email=judge.email))
        db.session.commit()
    page_at_1, list_at_1 = cost(host, f"/appointments/{first}"), cost(bench, "/appointments/")
    with app.app_context():
        appointment = db.session.get(Appointment, first)
        for n in range(1, 7):
            party = hearing.add_participant(appointment, Seat(R.PARTY, f"Party {n}"))
            hearing.add_participant(appointment, Seat(
                R.COUNSEL, f"Counsel {n}", represents=[party.participant.id]))
            witness = hearing.add_participant(appointment, Seat(
                R.WITNESS, f"Witness {n}", screened_from=[party.participant.id]))
            hearing.add_participant(appointment, Seat(
                R.INTERPRETER, f"Tolk {n}", interprets_for=witness.participant.id,
                language="pl"))
        db.session.commit()
    for n in range(1, 10):
        book_hearing(app, people.host_b.id, [Seat(R.JUDGE, staff_email=judge.email)],
                     title=f"Case {n}")
    assert "Tolk 6" in host.get(f"/appointments/{first}").get_data(as_text=True)
    assert bench.get("/appointments/").get_data(as_text=True).count('class="status-') == 10
    assert cost(host, f"/appointments/{first}") == page_at_1
    assert cost(bench, "/appointments/") == list_at_1


def test_viewing_a_guest_link_again_writes_nothing(app, people, new_browser):
    clock = hand_clock(app)
    appointment = book(app, people.host_a.id, starts_in=timedelta(minutes=1))
    guest, token = invite(app, appointment)
    page = new_browser()
    assert page.get(f"/j/{token}").status_code == 200  # the first view is recorded
    for _ in range(5):
        with statements(app) as seen:
            assert page.get(f"/j/{token}").status_code == 200
        assert writes(seen) == [], seen
        clock.advance(60)
    clock.advance(app.config["INVITE_AUDIT_MINUTES"] * 60)
    assert page.get(f"/j/{token}").status_code == 200
    opened = audit_events(app, "invite.opened")
    assert [e.object_id for e in opened] == [str(guest), str(guest)]
    assert '"views_not_recorded"' not in opened[0].details
    assert '"views_not_recorded":5' in opened[1].details


def test_a_change_of_state_is_audited_at_once(app, people, new_browser):
    appointment = book(app, people.host_a.id, starts_in=timedelta(minutes=1))
    _, token = invite(app, appointment)
    page = new_browser()
    page.get(f"/j/{token}")
    host = new_browser().login(people.host_a)
    host.post(f"/appointments/{appointment}/cancel")
    assert page.get(f"/j/{token}").status_code == 410
    states = [e.details for e in audit_events(app, "invite.opened")]
    assert ['"state":"valid"' in d for d in states] == [True, False]
    assert '"state":"cancelled"' in states[1]


@pytest.fixture
def busy_app(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """A second app on the same database file whose writers give up after 100 ms, with errors
    answered as in production (not raised into the test)."""
    made = make_app(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path / "busy",
                    SQLITE_BUSY_TIMEOUT_MS=100, PROPAGATE_EXCEPTIONS=False)
    yield made
    made.extensions["recording"].shutdown()
    with made.app_context():
        db.engine.dispose()


@contextmanager
def write_lock_held(app: Flask) -> Iterator[None]:
    """Another process's writer, in the middle of a long transaction."""
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


def test_reads_do_not_wait_for_a_writer(app, busy_app, people):
    appointment = book(app, people.host_a.id, starts_in=timedelta(minutes=1))
    _, token = invite(app, appointment)
    host = Browser(busy_app.test_client()).login(people.host_a)
    guest = Browser(busy_app.test_client())
    guest.get(f"/j/{token}")  # its first view is recorded; the next ones are only read
    with write_lock_held(app):
        began = time.monotonic()
        assert host.get("/appointments/").status_code == 200
        assert host.get(f"/appointments/{appointment}").status_code == 200
        assert guest.get(f"/j/{token}").status_code == 200
        assert time.monotonic() - began < 5


def test_a_busy_database_answers_503_with_retry_after_never_500(app, busy_app, people):
    appointment = book(app, people.host_a.id, starts_in=timedelta(minutes=1))
    _, token = invite(app, appointment)
    host = Browser(busy_app.test_client()).login(people.host_a)
    host.csrf()
    clock = hand_clock(busy_app)
    with write_lock_held(app):
        answers = [
            # a form that writes, in the view
            host.post(f"/appointments/{appointment}/cancel"),
            # a GET that must write (the link's first view is audited)
            Browser(busy_app.test_client()).get(f"/j/{token}"),
        ]
        clock.advance(60)  # the page's activity is stored after the view
        answers.append(host.get("/appointments/"))
    for answer in answers:
        assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
        # 2 s; on a rate-limited route (/j/) Flask-Limiter puts its window's end if later.
        assert int(answer.headers["Retry-After"]) >= 2
    # Nothing half-done: once the writer is gone, all of it works.
    assert Browser(busy_app.test_client()).get(f"/j/{token}").status_code == 200
    assert host.post(f"/appointments/{appointment}/cancel").status_code == 302


def test_the_lists_rows_are_kept_rendered_but_never_served_stale(app, people, new_browser):
    """The rows are rendered once per content, language and zone (templating.rows_html): a
    change of title or status, another language or another host's list shows at once."""
    from portal.appointments import services
    from portal.models import Appointment

    host = new_browser().login(people.host_a)
    first = book(app, people.host_a.id, title="Blood test results")
    assert "Blood test results" in host.get("/appointments/").get_data(as_text=True)
    with statements(app) as seen:
        page = host.get("/appointments/").get_data(as_text=True)
    assert "Blood test results" in page and seen, "the list is still read every time"

    with app.app_context():
        appointment = db.session.get(Appointment, first)
        assert appointment is not None
        appointment.title = "Scan results"
        services.cancel(appointment)
        db.session.commit()
    page = host.get("/appointments/").get_data(as_text=True)
    assert "Blood test results" not in page and "Scan results" in page
    assert 'class="status-cancelled"' in page

    host.get("/lang/nb?next=/appointments/")
    assert "avlyst" in host.get("/appointments/").get_data(as_text=True)

    other = new_browser().login(people.host_b)
    assert "Scan results" not in other.get("/appointments/").get_data(as_text=True)
