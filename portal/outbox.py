"""Queueing guests' e-mail in the transaction of the change that causes it (a rolled-back
booking sends nothing; a crash loses nothing), and keeping each guest's invite token sealed
until the link stops. `portal.notifications` writes and sends the messages.

The token is sealed with AES-256-GCM (the participant's id as associated data) under a key of
its own, PORTAL_LINK_KEY or instance/link_key: a copy of the database alone holds no link."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import delete, select

from portal.audit import services as audit
from portal.clock import clock
from portal.config import load_secret_key
from portal.errors import Conflict
from portal.extensions import db
from portal.models import (
    Appointment,
    LinkSecret,
    MessageKind,
    MessageStatus,
    OutboxMessage,
    Participant,
    Status,
)

_SEALED = "v1."


def _key() -> bytes:
    configured = current_app.config.get("LINK_KEY") or load_secret_key(
        Path(current_app.instance_path), "link_key")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"samtale invite link v1").derive(configured.encode("utf-8"))


def _aad(participant_id: int) -> bytes:
    return f"participant:{participant_id}".encode()


def keep_link(guest: Participant, token: str) -> None:
    """Keep the guest's current token sealed (replacing an older one)."""
    if guest.id is None:
        db.session.flush()
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key()).encrypt(nonce, token.encode("ascii"), _aad(guest.id))
    text = _SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
    kept = db.session.get(LinkSecret, guest.id)
    if kept is None:
        db.session.add(LinkSecret(participant_id=guest.id, sealed=text))
    else:
        kept.sealed = text


def reveal_link(guest: Participant) -> str | None:
    """The guest's token, if it is still kept (and this key sealed it)."""
    kept = db.session.get(LinkSecret, guest.id)
    if kept is None or not kept.sealed.startswith(_SEALED):
        return None
    raw = base64.urlsafe_b64decode(kept.sealed[len(_SEALED):])
    try:
        return AESGCM(_key()).decrypt(raw[:12], raw[12:], _aad(guest.id)).decode("ascii")
    except InvalidTag:
        return None


def forget_link(guest: Participant) -> None:
    """Destroy the sealed token: no later message can carry this link."""
    db.session.execute(delete(LinkSecret).where(LinkSecret.participant_id == guest.id))


def queue(guest: Participant, kind: MessageKind, *, dedupe_key: str | None = None,
          ) -> OutboxMessage:
    """Queue one message to the guest, due now. Audited by ids only."""
    message = OutboxMessage(participant_id=guest.id, appointment_id=guest.appointment_id,
                            kind=kind, status=MessageStatus.QUEUED, sequence=guest.ics_sequence,
                            dedupe_key=dedupe_key, next_try_at=clock().now())
    db.session.add(message)
    db.session.flush()
    audit.record("message.queued", object_type="message", object_id=message.id,
                 details={"participant_id": guest.id, "appointment_id": guest.appointment_id,
                          "kind": kind.value})
    return message


def sending() -> bool:
    """Whether e-mail goes out at all (PORTAL_SMTP_HOST): else nothing is queued nor kept."""
    return bool(current_app.config.get("SMTP_HOST"))


def _mailed(guest: Participant) -> bool:
    return sending() and bool(guest.email) and guest.invite_token_hash is not None


def invited(guest: Participant, token: str) -> None:
    """A guest was added: keep the link and queue the invitation, if they gave an address."""
    if not guest.email or not sending():
        return
    db.session.flush()
    keep_link(guest, token)
    queue(guest, MessageKind.INVITATION)


def reissued(guest: Participant, token: str) -> None:
    """The guest got a new link: the calendar entry is updated with it."""
    forget_link(guest)
    if not guest.email or not sending():
        return
    keep_link(guest, token)
    guest.ics_sequence += 1
    queue(guest, MessageKind.INVITATION)


def rescheduled(appointment: Appointment) -> None:
    """The appointment moved: each guest with an address and a working link gets an update."""
    for guest in appointment.guests:
        if _mailed(guest) and not guest.invite_revoked:
            guest.ics_sequence += 1
            queue(guest, MessageKind.UPDATE)


def cancelled(appointment: Appointment) -> None:
    """The appointment was cancelled: each guest who was told of it gets METHOD:CANCEL."""
    for guest in appointment.guests:
        forget_link(guest)
        if _mailed(guest) and not guest.invite_revoked:
            guest.ics_sequence += 1
            queue(guest, MessageKind.CANCELLATION)


def link_stopped(guest: Participant) -> None:
    """The host stopped the guest's link: the calendar entry is withdrawn (no link in it)."""
    forget_link(guest)
    if _mailed(guest):
        guest.ics_sequence += 1
        queue(guest, MessageKind.CANCELLATION)


def ended(appointment: Appointment) -> None:
    """The call is over: no link is needed any more."""
    for guest in appointment.guests:
        forget_link(guest)


def messages_of(appointment: Appointment) -> list[OutboxMessage]:
    """The appointment's messages, newest first (the page's and the API's status)."""
    return list(db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.appointment_id == appointment.id)
        .order_by(OutboxMessage.id.desc())))


def get_message(appointment: Appointment, message_id: int) -> OutboxMessage | None:
    message = db.session.get(OutboxMessage, message_id)
    return message if message is not None and message.appointment_id == appointment.id \
        else None


def resend(message: OutboxMessage) -> OutboxMessage:
    """The host asks for a message again: a failed one is tried at once; any other is queued
    anew (written from the rows as they are then, so a stopped link is still left out)."""
    if message.status is MessageStatus.FAILED:
        message.status = MessageStatus.QUEUED
        message.next_try_at = clock().now()
        again = message
    else:
        again = queue(message.participant, message.kind)
    audit.record("message.resent", object_type="message", object_id=again.id,
                 details={"of": message.id, "participant_id": message.participant_id})
    return again


def set_reminders(appointment: Appointment, on: bool) -> None:
    """Reminders for this appointment on or off (on by default)."""
    if appointment.status is not Status.SCHEDULED:
        raise Conflict(_("Only a scheduled appointment can be changed."))
    if appointment.reminders != on:
        appointment.reminders = on
        audit.record("appointment.reminders", object_type="appointment",
                     object_id=appointment.id, details={"on": on})
