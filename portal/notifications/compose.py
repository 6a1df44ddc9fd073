"""Writing one queued message from the rows as they are now: in the guest's language, the time
in the guest's zone (and saying which), a neutral subject (no case, health or party details),
plain text and HTML, and the calendar file. A message whose reason has gone (the link stopped,
the appointment is over) is not written: `Skip` says why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from portal import outbox
from portal.appointments import services
from portal.extensions import db
from portal.links import invite_url
from portal.models import (
    MessageKind,
    MessageStatus,
    OutboxMessage,
    Participant,
    RecordingPolicy,
    Status,
)
from portal.notifications import ics


@dataclass(frozen=True)
class Skip:
    reason: str


def _subject(kind: MessageKind) -> str:
    if kind is MessageKind.INVITATION:
        return _("Invitation to a video appointment")
    if kind is MessageKind.UPDATE:
        return _("New time for your video appointment")
    if kind is MessageKind.REMINDER:
        return _("Reminder: your video appointment")
    return _("Cancelled: your video appointment")


def _recording(policy: RecordingPolicy) -> str:
    if policy is RecordingPolicy.OFF:
        return _("The appointment is not recorded.")
    if policy is RecordingPolicy.CONSENT:
        return _("It is recorded only if everyone in it agrees: you will be asked, and you "
                 "may say no.")
    return _("The hearing is recorded by order of the court; you will be told so before "
             "you join.")


def when(moment: datetime, zone: str, language: str) -> str:
    """The date and time in the guest's zone, naming the zone."""
    local = moment.astimezone(ZoneInfo(zone))
    return (f"{format_date(local, 'full', locale=language)} "
            f"{format_time(local, 'HH:mm', locale=language)} ({zone})")


def _why_not(message: OutboxMessage, guest: Participant, now: datetime) -> str | None:
    appointment = guest.appointment
    if not guest.email:
        return "no e-mail address"
    if message.kind is MessageKind.CANCELLATION:
        told = db.session.scalar(select(OutboxMessage.id).where(
            OutboxMessage.participant_id == guest.id,
            OutboxMessage.kind != MessageKind.CANCELLATION,
            OutboxMessage.status == MessageStatus.SENT).limit(1))
        return None if told is not None else "the guest was sent nothing to withdraw"
    if guest.invite_revoked:
        return "the link was stopped"
    if appointment.status in (Status.CANCELLED, Status.ENDED):
        return f"the appointment is {appointment.status.value}"
    if message.kind is MessageKind.REMINDER:
        if not appointment.reminders:
            return "reminders are off for this appointment"
        if now >= appointment.starts_at:
            return "the appointment has started"
    if now >= services.invite_window(appointment)[1]:
        return "the link's window has closed"
    return None


def compose(message: OutboxMessage, now: datetime) -> EmailMessage | Skip:
    """The e-mail for this message, or why it is no longer sent."""
    guest = message.participant
    reason = _why_not(message, guest, now)
    if reason is not None:
        return Skip(reason)
    link = None
    if message.kind is not MessageKind.CANCELLATION:
        token = outbox.reveal_link(guest)
        if token is None:
            return Skip("the link is no longer kept")
        link = invite_url(token)
    language = guest.message_language or str(current_app.config["BABEL_DEFAULT_LOCALE"])
    zone = guest.timezone or str(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    with current_app.test_request_context(), force_locale(language):
        return _write(message, guest, link, language, zone, now)


def _write(message: OutboxMessage, guest: Participant, link: str | None, language: str,
           zone: str, now: datetime) -> EmailMessage:
    config = current_app.config
    appointment = guest.appointment
    sender = config["SMTP_FROM"]
    domain = urlsplit(link or invite_url("x")).hostname or "samtale.invalid"
    context = {
        "kind": message.kind.value, "guest": guest, "host_name": appointment.host.name,
        "starts": when(appointment.starts_at, zone, language),
        "ends": when(appointment.ends_at, zone, language),
        "opens": when(services.invite_window(appointment)[0], zone, language),
        "hearing": appointment.kind.value == "hearing",
        "recording": _recording(appointment.recording_policy), "link": link,
    }
    text = render_template("notifications/message.txt", **context)
    html = render_template("notifications/message.html", **context)
    subject = _subject(message.kind)
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = sender
    mail["To"] = guest.email
    mail["Date"] = formatdate(now.timestamp(), usegmt=True)
    # One id per queued message: a copy sent twice (a crash after the server took it) is
    # the same message to the guest's mail program.
    mail["Message-ID"] = f"<samtale-message-{message.id}@{domain}>"
    mail["X-Samtale-Message"] = str(message.id)
    mail["X-Samtale-Attempt"] = message.attempt_id or ""
    mail.set_content(text)
    mail.add_alternative(html, subtype="html")
    method = "CANCEL" if message.kind is MessageKind.CANCELLATION else "REQUEST"
    calendar = ics.calendar(
        method=method, uid=ics.uid(guest.id, domain), sequence=message.sequence, stamp=now,
        starts_at=appointment.starts_at, ends_at=appointment.ends_at,
        summary=_("Video appointment with %(name)s", name=appointment.host.name),
        description=text, url=link, organizer=_address(sender),
        organizer_name=appointment.host.name, attendee=guest.email or "")
    mail.add_attachment(calendar, maintype="text", subtype="calendar",
                        filename="invite.ics", params={"method": method})
    mail["Content-Language"] = language  # after the parts: set_content drops Content-* headers
    return mail


def _address(sender: str) -> str:
    return parseaddr(sender)[1] or sender
