"""The audit trail: a hash chain that names the first altered, removed or relinked row, on
SQLite and PostgreSQL alike, and that never forks under concurrent writers."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from support import audit_events, book, invite

from portal.audit import services as audit
from portal.extensions import db
from portal.models import AuditEvent, AuditHead
from portal.models.audit import GENESIS_DIGEST

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def trail(app, people, new_browser):
    """A few real actions: sign-ins (one failed), a booking, a guest, an opened link, an
    account change. Returns the number of events."""
    host = new_browser().login(people.host_a)
    new_browser().post("/login", {"email": people.host_b.email, "password": "not it at all"})
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(minutes=5))
    _, token = invite(app, appointment_id)
    new_browser().get(f"/j/{token}")
    host.post(f"/appointments/{appointment_id}/cancel")
    admin = new_browser().login(people.admin)
    admin.post(f"/admin/users/{people.host_b.id}/disable")
    events = audit_events(app)
    assert len(events) >= 10
    return len(events)


def execute(app, sql: str, **params) -> None:
    """Tamper with the table directly, as someone with database access could."""
    with app.app_context():
        db.session.execute(text(sql), params)
        db.session.commit()


def verify(runner):
    result = runner.invoke(args=["audit", "verify"])
    return result.exit_code, result.output


@both_backends
def test_intact_chain(app, trail, runner, new_browser, people):
    code, output = verify(runner)
    assert code == 0, output
    with app.app_context():
        head = db.session.get(AuditHead, 1)
        assert head is not None and head.seq == trail
        assert output.strip() == f"OK: {trail} events, head {head.digest}"
    events = audit_events(app)
    assert [e.seq for e in events] == list(range(1, trail + 1))
    assert events[0].prev_digest == GENESIS_DIGEST
    assert all(b.prev_digest == a.digest for a, b in zip(events, events[1:], strict=False))
    assert {e.action for e in events} >= {
        "user.created", "auth.login", "auth.login_failed", "appointment.created",
        "invite.created", "invite.opened", "appointment.cancelled", "user.disabled"}

    admin = new_browser().login(people.admin)
    page = admin.get("/admin/audit/verify").get_data(as_text=True)
    assert 'id="verdict"' in page and "Intact:" in page


@both_backends
@pytest.mark.parametrize("column,value", [
    ("details", '{"reason":"bad_credentials","note":"edited"}'),
    ("action", "auth.login"),
    ("actor_id", "1"),
    ("object_id", "999"),
    ("ip", "10.9.8.7"),
    ("digest", "f" * 64),
    ("prev_digest", "0" * 64),
])
def test_an_altered_row_is_named(app, trail, runner, new_browser, people, column, value):
    target = next(e.seq for e in audit_events(app, "auth.login_failed"))
    execute(app, f"UPDATE audit_events SET {column} = :value WHERE seq = :seq",  # noqa: S608
            value=value, seq=target)
    code, output = verify(runner)
    assert code == 1
    assert f"first bad row: seq {target};" in output
    assert f"row {target}:" in output

    admin = new_browser().login(people.admin)
    page = admin.get("/admin/audit/verify").get_data(as_text=True)
    assert f"Broken at event {target}:" in page


@both_backends
def test_an_altered_time_is_named(app, trail, runner):
    with app.app_context():  # a plain UPDATE, past the services
        db.session.execute(update(AuditEvent.__table__).where(AuditEvent.__table__.c.seq == 4)
                           .values(created_at=datetime(2020, 1, 1, tzinfo=UTC)))
        db.session.commit()
    code, output = verify(runner)
    assert code == 1 and "first bad row: seq 4;" in output


@both_backends
def test_a_removed_middle_row_is_named(app, trail, runner, new_browser, people):
    execute(app, "DELETE FROM audit_events WHERE seq = 5")
    code, output = verify(runner)
    assert code == 1
    assert "rows 5..5 are missing" in output
    assert "4 rows before it are intact" in output
    admin = new_browser().login(people.admin)
    # Viewing the page appends sign-in events, which does not mend the gap.
    page = admin.get("/admin/audit/verify").get_data(as_text=True)
    assert "rows 5..5 are missing" in page


@both_backends
def test_a_removed_first_row_is_named(app, trail, runner):
    execute(app, "DELETE FROM audit_events WHERE seq = 1")
    code, output = verify(runner)
    assert code == 1 and "rows 1..1 are missing" in output


@both_backends
def test_removed_last_rows_are_detected(app, trail, runner, new_browser, people):
    execute(app, "DELETE FROM audit_events WHERE seq = :seq", seq=trail)
    code, output = verify(runner)
    assert code == 1
    assert f"chain ends at row {trail - 1} but the head says {trail}" in output
    assert f"first bad row: seq {trail};" in output

    execute(app, "DELETE FROM audit_events WHERE seq >= :seq", seq=trail - 3)
    code, output = verify(runner)
    assert code == 1
    assert f"chain ends at row {trail - 4} but the head says {trail}" in output


@both_backends
def test_a_removed_last_row_with_a_rewound_head_is_detected(app, trail, runner):
    """Rewinding the head's counter alone is not enough: its digest names the removed row."""
    execute(app, "DELETE FROM audit_events WHERE seq = :seq", seq=trail)
    execute(app, "UPDATE audit_head SET seq = :seq", seq=trail - 1)
    code, output = verify(runner)
    assert code == 1
    assert "rows at the end were removed or the head was altered" in output


@both_backends
def test_swapped_rows_are_detected(app, trail, runner):
    execute(app, "UPDATE audit_events SET seq = -1 WHERE seq = 3")
    execute(app, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
    execute(app, "UPDATE audit_events SET seq = 4 WHERE seq = -1")
    code, output = verify(runner)
    assert code == 1 and "first bad row: seq 3;" in output


@both_backends
def test_new_events_after_a_break_do_not_hide_it(app, trail, runner, new_browser, people):
    execute(app, "UPDATE audit_events SET details = '{}' WHERE seq = 2")
    new_browser().login(people.host_a)
    code, output = verify(runner)
    assert code == 1 and "first bad row: seq 2;" in output


@both_backends
def test_every_action_is_chained_in_its_own_transaction(app, people):
    """An event belongs to the change it records: a rolled-back change leaves no event and
    no gap."""
    with app.app_context():
        audit.record("test.rolled_back")
        db.session.rollback()
        audit.record("test.kept")
        db.session.commit()
        head = db.session.get(AuditHead, 1)
        assert head is not None and head.seq == 5  # three users, the admin's MFA, the kept one
        assert audit.verify().ok


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_writers_never_fork_the_chain(app, people):
    writers, each = 8, 15
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait(10)
            for i in range(each):
                with app.app_context():
                    audit.record("test.concurrent", object_type="writer", object_id=n,
                                 details={"i": i})
                    db.session.commit()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    with app.app_context():
        verdict = audit.verify()
        assert verdict.ok, verdict.reason
        rows = db.session.execute(select(AuditEvent.seq, AuditEvent.prev_digest,
                                         AuditEvent.digest).order_by(AuditEvent.seq)).all()
        head = db.session.get(AuditHead, 1)
    total = 4 + writers * each  # three users and the administrator's second factor first
    assert verdict.checked == total
    assert [r.seq for r in rows] == list(range(1, total + 1))
    assert len({r.prev_digest for r in rows}) == total  # no two rows share a parent: no fork
    assert head is not None and (head.seq, head.digest) == (total, rows[-1].digest)
    mine = audit_events(app, "test.concurrent")
    assert len(mine) == writers * each
    for n in range(writers):  # each writer's events keep their own order
        order = [int(re.search(r'"i":(\d+)', e.details).group(1))  # type: ignore[union-attr]
                 for e in mine if e.object_id == str(n)]
        assert order == list(range(each))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_verify_while_others_append(app, people):
    """A check that runs while events are being written sees one consistent chain: appends
    that land during the walk must not look like removed rows."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def append() -> None:
        try:
            while not stop.is_set():
                with app.app_context():
                    audit.record("test.busy")
                    db.session.commit()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=append) for _ in range(4)]
    for writer in writers:
        writer.start()
    try:
        verdicts = []
        for _ in range(40):
            with app.app_context():
                verdicts.append(audit.verify())
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    assert not errors, errors
    assert [v.reason for v in verdicts if not v.ok] == []
    assert verdicts[-1].checked > verdicts[0].checked  # the writers were writing meanwhile


@both_backends
def test_a_removed_head_is_detected(app, trail, runner):
    execute(app, "DELETE FROM audit_head")
    code, output = verify(runner)
    assert code == 1
    assert f"chain ends at row {trail} but the head says 0" in output
