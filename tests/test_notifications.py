"""Guests' e-mail through a real SMTP server (aiosmtpd on 127.0.0.1): the invitation with its
calendar file and working link, the update on reschedule, the cancellation, reminders by a
clock the test moves, failures retried, a sender killed mid-batch, and no usable link in the
database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from live import free_port
from smtp_inbox import Mailbox, Received, password_check, tls_for_loopback
from sqlalchemy import select
from support import audit_events, book, get_appointment, hand_clock

from portal import PROJECT_ROOT
from portal.appointments import services
from portal.appointments.services import InviteState
from portal.extensions import db
from portal.models import (
    Appointment,
    LinkSecret,
    MessageStatus,
    OutboxMessage,
    ParticipantRole,
)
from portal.notifications.sender import Sender

LINK_RE = re.compile(r"https?://[^\s\"<>]+(/j/[A-Za-z0-9_\-]+)")


@pytest.fixture
def inbox() -> Iterator[Mailbox]:
    box = Mailbox(free_port()).start()
    yield box
    box.stop()


@pytest.fixture
def mail_app(app: Flask, inbox: Mailbox) -> Flask:
    app.config.update(inbox.config())
    return app


def add_guest(app: Flask, appointment_id: int, email: str | None = "pat@example.org",
              name: str = "Pat Guest", language: str = "en",
              zone: str = "Europe/Oslo") -> tuple[int, str]:
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        guest, token = services.add_guest(
            appointment, display_name=name, role=ParticipantRole.PATIENT, email=email,
            message_language=language, timezone=zone)
        db.session.commit()
        return guest.id, token


def change(app: Flask, appointment_id: int, action: str, **kw: Any) -> None:
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        assert appointment is not None
        getattr(services, action)(appointment, **kw)
        db.session.commit()


def messages(app: Flask) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        db.session.expunge_all()
        return rows


def link_path(mail: Received) -> str:
    found = LINK_RE.search(mail.text)
    assert found, mail.text
    assert found.group(0) in mail.html
    return found.group(1)


def event_of(mail: Received) -> Any:
    [event] = mail.calendar().walk("VEVENT")
    return event


def test_the_invitation_from_the_page_arrives_with_a_calendar_entry_and_a_working_link(
        mail_app, people, inbox, new_browser):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20),
                          title="Custody case 4411")
    host = new_browser().login(people.host_a)
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert 'id="mail-on"' in page and 'id="mail-off"' not in page
    added = host.post(f"/appointments/{appointment_id}/guests", {
        "display_name": "Pat Guest", "role": "patient", "email": "pat@example.org",
        "message_language": "en", "timezone": "America/New_York"})
    assert added.status_code in (200, 302), added.get_data(as_text=True)

    assert Sender(mail_app).run_once() == 1
    [mail] = inbox.wait_for(1)
    assert mail.envelope_to == ["pat@example.org"]
    assert mail.message["Subject"] == "Invitation to a video appointment"
    starts_at = get_appointment(mail_app, appointment_id).starts_at
    local = starts_at.astimezone(ZoneInfo("America/New_York"))
    text = mail.text
    assert "Custody case" not in str(mail.message["Subject"]) + text
    assert "with Host A." in text
    assert local.strftime("%H:%M") in text and "(America/New_York)" in text
    assert "recorded only if everyone in it agrees" in text
    guest = new_browser()
    assert guest.get(link_path(mail)).status_code == 200
    calendar = mail.calendar()
    assert str(calendar["method"]) == "REQUEST"
    event = event_of(mail)
    assert event.decoded("dtstart") == starts_at
    assert event.decoded("dtstart").utcoffset() == timedelta(0)
    assert int(event["sequence"]) == 0
    [sent] = messages(mail_app)
    assert sent.status is MessageStatus.SENT and sent.attempts == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_reschedule_updates_the_same_entry_and_a_cancel_withdraws_it(
        mail_app, people, inbox, new_browser):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    _guest, token = add_guest(mail_app, appointment_id)
    sender = Sender(mail_app)
    sender.run_once()
    [invitation] = inbox.wait_for(1)
    moved_to = get_appointment(mail_app, appointment_id).starts_at + timedelta(minutes=30)
    change(mail_app, appointment_id, "update", starts_at=moved_to)
    sender.run_once()
    update = inbox.wait_for(2)[1]
    assert update.message["Subject"] == "New time for your video appointment"
    assert str(event_of(update)["uid"]) == str(event_of(invitation)["uid"])
    assert int(event_of(update)["sequence"]) == 1
    assert event_of(update).decoded("dtstart") == moved_to
    assert link_path(update) == f"/j/{token}"

    change(mail_app, appointment_id, "cancel")
    sender.run_once()
    cancel = inbox.wait_for(3)[2]
    assert str(cancel.calendar()["method"]) == "CANCEL"
    assert str(event_of(cancel)["uid"]) == str(event_of(invitation)["uid"])
    assert int(event_of(cancel)["sequence"]) == 2
    assert token not in cancel.message.as_string() and "/j/" not in cancel.text
    assert new_browser().get(f"/j/{token}").status_code == 410
    with mail_app.app_context():  # the link is destroyed with the appointment
        assert db.session.scalars(select(LinkSecret)).all() == []


def test_a_norwegian_guest_gets_norwegian_text(mail_app, people, inbox):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    add_guest(mail_app, appointment_id, language="nb")
    add_guest(mail_app, appointment_id, email="kim@example.org", name="Kim", language="en")
    Sender(mail_app).run_once()
    by_address = {m.envelope_to[0]: m for m in inbox.wait_for(2)}
    norwegian, english = by_address["pat@example.org"], by_address["kim@example.org"]
    assert norwegian.message["Subject"] == "Invitasjon til en videotime"
    assert "Hei Pat Guest" in norwegian.text and "Hei" in norwegian.html
    assert norwegian.message["Content-Language"] == "nb"
    assert "Hello Kim" in english.text


def works(app: Flask, token: str, guest_id: int, at: datetime) -> InviteState:
    """What the link is worth at that moment (the guest pages read the system's time)."""
    with app.app_context():
        found = services.check_invite(token, now=at)
        assert found.guest is not None and found.guest.id == guest_id
        return found.state


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_reminders_come_at_their_time_with_a_working_link_and_never_after_a_cancel(
        mail_app, people, inbox, new_browser):
    clock = hand_clock(mail_app)
    kept = book(mail_app, people.host_a.id, starts_in=timedelta(hours=25))
    cancelled = book(mail_app, people.host_a.id, starts_in=timedelta(hours=25))
    guest_id, token = add_guest(mail_app, kept)
    add_guest(mail_app, cancelled, email="kim@example.org", name="Kim")
    sender = Sender(mail_app)
    sender.run_once()
    change(mail_app, cancelled, "cancel")
    sender.run_once()
    assert len(inbox.wait_for(3)) == 3  # two invitations, one cancellation
    starts_at = get_appointment(mail_app, kept).starts_at

    clock.advance((starts_at - timedelta(hours=24) - clock.now()).total_seconds() - 60)
    assert sender.run_once() == 0  # a minute early: nothing
    clock.advance(60)
    assert sender.run_once() == 1
    reminder = inbox.wait_for(4)[3]
    assert reminder.envelope_to == ["pat@example.org"]
    assert reminder.message["Subject"] == "Reminder: your video appointment"
    assert link_path(reminder) == f"/j/{token}"
    assert works(mail_app, token, guest_id, clock.now()) is InviteState.TOO_EARLY
    assert new_browser().get(link_path(reminder)).status_code == 403  # "opens at", not 404
    clock.advance(600)
    assert sender.run_once() == 0  # once per reminder

    clock.advance((starts_at - timedelta(minutes=15) - clock.now()).total_seconds())
    assert sender.run_once() == 1
    last = inbox.wait_for(5)[4]
    assert last.envelope_to == ["pat@example.org"]
    assert link_path(last) == f"/j/{token}"
    assert works(mail_app, token, guest_id, clock.now()) is InviteState.VALID
    assert all(m.envelope_to == ["pat@example.org"] for m in inbox.received[3:])

    clock.advance(3 * 3600)  # the window closed: the kept link is destroyed
    sender.run_once()
    with mail_app.app_context():
        assert db.session.scalars(select(LinkSecret)).all() == []


def test_reminders_off_for_one_appointment(mail_app, people, inbox, new_browser):
    clock = hand_clock(mail_app)
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(hours=2))
    add_guest(mail_app, appointment_id)
    host = new_browser().login(people.host_a)
    assert host.post(f"/appointments/{appointment_id}/reminders").status_code == 302
    assert get_appointment(mail_app, appointment_id).reminders is False
    sender = Sender(mail_app)
    sender.run_once()
    clock.advance(2 * 3600 - 600)
    sender.run_once()
    assert [m.message["Subject"] for m in inbox.received] == [
        "Invitation to a video appointment"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_smtp_down_fails_with_the_reason_then_is_retried_and_sent(app, people, new_browser):
    port = free_port()
    box = Mailbox(port)
    app.config.update(box.config())
    clock = hand_clock(app)
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(hours=2))
    add_guest(app, appointment_id)
    sender = Sender(app)
    sender.run_once()
    [failed] = messages(app)
    assert failed.status is MessageStatus.FAILED and failed.attempts == 1
    assert "ConnectionRefusedError" in (failed.last_error or "")
    assert failed.next_try_at is not None and failed.next_try_at > clock.now()
    host = new_browser().login(people.host_a)
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert f'data-message="{failed.id}" data-status="failed"' in page
    assert "ConnectionRefusedError" in page and "next try" in page
    sender.run_once()
    assert messages(app)[0].attempts == 1  # not before its time

    box.start()
    try:
        clock.advance(app.config["NOTIFY_RETRY_SECONDS"])
        assert sender.run_once() == 1
        [mail] = box.wait_for(1)
    finally:
        box.stop()
    [sent] = messages(app)
    assert sent.status is MessageStatus.SENT and sent.attempts == 2 and sent.last_error is None
    assert mail.message["X-Samtale-Attempt"] == sent.attempt_id
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert f'data-message="{sent.id}" data-status="sent"' in page


def test_the_host_resends_and_the_audit_names_no_address_or_link(
        mail_app, people, inbox, new_browser):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    _guest, token = add_guest(mail_app, appointment_id)
    sender = Sender(mail_app)
    sender.run_once()
    [first] = messages(mail_app)
    host = new_browser().login(people.host_a)
    resent = host.post(f"/appointments/{appointment_id}/messages/{first.id}/resend")
    assert resent.status_code == 302
    sender.run_once()
    mails = inbox.wait_for(2)
    assert link_path(mails[1]) == f"/j/{token}"
    assert [m.status for m in messages(mail_app)] == [MessageStatus.SENT] * 2
    other = new_browser().login(people.host_b)
    assert other.post(
        f"/appointments/{appointment_id}/messages/{first.id}/resend").status_code == 404
    events = [e for e in audit_events(mail_app) if e.action.startswith("message.")]
    assert {e.action for e in events} == {"message.queued", "message.sent", "message.resent"}
    for event in audit_events(mail_app):
        shown = repr(event.details)
        assert "@" not in shown and token not in shown and "/j/" not in shown


def revoke(app: Flask, appointment_id: int, guest_id: int) -> None:
    with app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        services.revoke_invite(services.get_guest(appointment, guest_id))
        db.session.commit()


def test_a_stopped_link_is_in_no_later_message(mail_app, people, inbox):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(hours=2))
    guest_id, token = add_guest(mail_app, appointment_id)
    sender = Sender(mail_app)
    sender.run_once()
    revoke(mail_app, appointment_id, guest_id)
    change(mail_app, appointment_id, "update",
           starts_at=get_appointment(mail_app, appointment_id).starts_at + timedelta(hours=1))
    sender.run_once()
    [_invitation, cancellation] = inbox.wait_for(2)
    assert str(cancellation.calendar()["method"]) == "CANCEL"
    assert token not in cancellation.message.as_string()
    assert [m.kind.value for m in messages(mail_app)] == ["invitation", "cancellation"]
    with mail_app.app_context():
        assert db.session.scalars(select(LinkSecret)).all() == []


def test_a_link_stopped_before_the_invitation_went_out_sends_nothing(mail_app, people, inbox):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    guest_id, _token = add_guest(mail_app, appointment_id)
    revoke(mail_app, appointment_id, guest_id)
    Sender(mail_app).run_once()
    assert [(m.kind.value, m.status, m.last_error) for m in messages(mail_app)] == [
        ("invitation", MessageStatus.SKIPPED, "the link was stopped"),
        ("cancellation", MessageStatus.SKIPPED, "the guest was sent nothing to withdraw")]
    assert inbox.received == []


def test_a_rolled_back_change_queues_nothing(mail_app, people):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    with mail_app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        services.add_guest(appointment, display_name="Pat", role=ParticipantRole.PATIENT,
                           email="pat@example.org")
        db.session.rollback()
    assert messages(mail_app) == []
    with mail_app.app_context():
        assert db.session.scalars(select(LinkSecret)).all() == []


def test_without_smtp_nothing_is_queued_and_the_page_says_so(app, people, new_browser):
    appointment_id = book(app, people.host_a.id, starts_in=timedelta(minutes=20))
    host = new_browser().login(people.host_a)
    page = host.get(f"/appointments/{appointment_id}").get_data(as_text=True)
    assert 'id="mail-off"' in page and 'id="mail-off-status"' in page
    added = host.post(f"/appointments/{appointment_id}/guests", {
        "display_name": "Pat", "role": "patient", "email": "pat@example.org"})
    assert added.status_code in (200, 302)
    assert messages(app) == []
    with app.app_context():
        assert db.session.scalars(select(LinkSecret)).all() == []


def test_the_api_shows_each_message_and_resends(mail_app, people, inbox):
    from portal.accounts import services as accounts
    from portal.models import User

    with mail_app.app_context():
        _token, plain = accounts.issue_api_token(db.session.get(User, people.host_a.id), "EPJ")
        db.session.commit()
    headers = {"Authorization": f"Bearer {plain}"}
    client = mail_app.test_client()
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    created = client.post(f"/api/v1/appointments/{appointment_id}/participants", headers=headers,
                          json={"display_name": "Pat", "role": "patient",
                                "email": "pat@example.org", "message_language": "nb",
                                "timezone": "Europe/Oslo"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["message_language"] == "nb"
    listed = client.get(f"/api/v1/appointments/{appointment_id}/messages", headers=headers)
    [queued] = listed.get_json()
    assert queued["status"] == "queued" and queued["kind"] == "invitation"
    Sender(mail_app).run_once()
    inbox.wait_for(1)
    [sent] = client.get(f"/api/v1/appointments/{appointment_id}/messages",
                        headers=headers).get_json()
    assert sent["status"] == "sent" and sent["sent_at"] and sent["error"] is None
    again = client.post(f"/api/v1/appointments/{appointment_id}/messages/{sent['id']}/resend",
                        headers=headers)
    assert again.status_code == 202 and again.get_json()["status"] == "queued"
    bad = client.post(f"/api/v1/appointments/{appointment_id}/participants", headers=headers,
                      json={"display_name": "Kim", "role": "patient", "message_language": "de"})
    assert bad.status_code == 422
    off = client.put(f"/api/v1/appointments/{appointment_id}/reminders", headers=headers,
                     json={"on": False})
    assert off.status_code == 200 and off.get_json()["reminders"] is False


def test_no_issued_token_is_in_the_database_in_clear(mail_app, people, tmp_path):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    tokens = [add_guest(mail_app, appointment_id, email=f"g{n}@example.org", name=f"G{n}")[1]
              for n in range(3)]
    guest_id, token = add_guest(mail_app, appointment_id, email=None, name="No address")
    tokens.append(token)
    with mail_app.app_context():
        appointment = db.session.get(Appointment, appointment_id)
        first = appointment.guests[0]
        tokens.append(services.reissue_invite(first))
        db.session.commit()
        assert len(db.session.scalars(select(LinkSecret)).all()) == 3
        db.engine.dispose()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("portal.sqlite3*"))
    assert len(stored) > 10_000
    for token in tokens:
        assert token.encode() not in stored


def _sender_env(app: Flask, inbox: Mailbox, files: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "PORTAL_SECRET_KEY": app.config["SECRET_KEY"], "PORTAL_MFA_KEY": "x",
        "PORTAL_LINK_KEY": app.config["LINK_KEY"],
        "PORTAL_RECORDINGS_DIR": str(files / "recordings"),
        "PORTAL_RECORDING_KEYS_DIR": str(files),
        "PORTAL_SMTP_HOST": "127.0.0.1", "PORTAL_SMTP_PORT": str(inbox.port),
        "PORTAL_SMTP_SECURITY": "none", "PORTAL_SMTP_FROM": "no-reply@samtale.test",
        # A claim left by the killed sender is taken over this soon.
        "PORTAL_NOTIFY_LEASE_SECONDS": "1", "PORTAL_NOTIFY_POLL_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _start_sender(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "notifications", "run"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=out)


def test_a_sender_killed_mid_batch_sends_every_message_exactly_once(
        mail_app, people, inbox, tmp_path):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    for n in range(6):
        add_guest(mail_app, appointment_id, email=f"g{n}@example.org", name=f"G{n}")
    env = _sender_env(mail_app, inbox, tmp_path)
    inbox.hold_after(2)  # the third MAIL FROM waits: two sent, the third begun
    log = tmp_path / "sender.log"
    first = _start_sender(env, log)
    try:
        inbox.wait_held(timeout=90)  # a process starting on a busy machine
        assert len(inbox.received) == 2
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    inbox.release()
    statuses = Counter(m.status for m in messages(mail_app))
    assert statuses == {MessageStatus.SENT: 2, MessageStatus.SENDING: 1,
                        MessageStatus.QUEUED: 3}
    second = _start_sender(env, log)
    try:
        inbox.wait_for(6, timeout=90)
        deadline = time.monotonic() + 30
        while any(m.status is not MessageStatus.SENT for m in messages(mail_app)):
            assert second.poll() is None, log.read_text()
            assert time.monotonic() < deadline, messages(mail_app)
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    ids = Counter(m.message_id for m in inbox.received)
    assert len(ids) == 6 and set(ids.values()) == {1}, ids
    assert sorted(m.envelope_to[0] for m in inbox.received) == [
        f"g{n}@example.org" for n in range(6)]


def test_a_message_that_cannot_be_written_fails_and_the_others_go(mail_app, people, inbox):
    appointment_id = book(mail_app, people.host_a.id, starts_in=timedelta(minutes=20))
    broken, _token = add_guest(mail_app, appointment_id)
    add_guest(mail_app, appointment_id, email="kim@example.org", name="Kim")
    with mail_app.app_context():  # a zone this machine no longer knows (tzdata changed)
        guest = services.get_guest(db.session.get(Appointment, appointment_id), broken)
        guest.timezone = "Mars/Olympus_Mons"
        db.session.commit()
    assert Sender(mail_app).run_once() == 2
    [mail] = inbox.wait_for(1)
    assert mail.envelope_to == ["kim@example.org"]
    failed = next(m for m in messages(mail_app) if m.participant_id == broken)
    assert failed.status is MessageStatus.FAILED and "ZoneInfoNotFoundError" in (
        failed.last_error or "")
    assert failed.next_try_at is not None


def test_starttls_with_a_login_and_the_certificate_checked(app, people, tmp_path):
    ca, server_tls = tls_for_loopback(tmp_path)
    box = Mailbox(free_port(), tls_context=server_tls, require_starttls=True,
                  auth_required=True, authenticator=password_check("portal", "s3cret")).start()
    try:
        app.config.update(box.config(), SMTP_SECURITY="starttls", SMTP_USER="portal",
                          SMTP_PASSWORD="s3cret", SMTP_CA_FILE=str(ca))
        appointment_id = book(app, people.host_a.id, starts_in=timedelta(minutes=20))
        add_guest(app, appointment_id)
        Sender(app).run_once()
        [mail] = box.wait_for(1)
        assert mail.envelope_to == ["pat@example.org"]

        app.config["SMTP_CA_FILE"] = ""  # the system's CAs do not know this server
        add_guest(app, appointment_id, email="kim@example.org", name="Kim")
        Sender(app).run_once()
        failed = messages(app)[-1]
        assert failed.status is MessageStatus.FAILED
        assert "CERTIFICATE_VERIFY_FAILED" in (failed.last_error or ""), failed.last_error
        assert len(box.received) == 1
    finally:
        box.stop()


def test_tls_from_the_start(app, people, tmp_path):
    ca, server_tls = tls_for_loopback(tmp_path)
    box = Mailbox(free_port(), ssl_context=server_tls).start()
    try:
        app.config.update(box.config(), SMTP_SECURITY="tls", SMTP_CA_FILE=str(ca))
        appointment_id = book(app, people.host_a.id, starts_in=timedelta(minutes=20))
        add_guest(app, appointment_id)
        Sender(app).run_once()
        assert box.wait_for(1)[0].envelope_to == ["pat@example.org"]
    finally:
        box.stop()
