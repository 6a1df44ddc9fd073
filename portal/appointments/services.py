"""Appointment operations. Each one that changes state writes its audit event."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from portal import outbox, presence, signals
from portal.audit import services as audit
from portal.audit.services import Actor
from portal.errors import Conflict, DomainError, NotFound
from portal.extensions import db
from portal.i18n import valid_zone
from portal.models import (
    GUEST_ROLES,
    STAFF_ROLES,
    Appointment,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    RetiredInvite,
    Status,
    User,
    utcnow,
)
from portal.signals import announce
from portal.tokens import hash_token, new_token

MIN_DURATION = 5
MAX_DURATION = 12 * 60
#: How far in the past a start may lie when booking (a consult booked as it begins).
PAST_TOLERANCE = timedelta(minutes=15)
#: How far ahead a start may lie (and what keeps end times inside the calendar).
MAX_AHEAD = timedelta(days=5 * 366)


def _validate(kind: Kind, title: str, starts_at: datetime, duration: int,
              policy: RecordingPolicy) -> str:
    title = title.strip()
    if not title:
        raise DomainError(_("A title is required."), field="title")
    if len(title) > 200:
        raise DomainError(_("The title is too long (200 characters at most)."), field="title")
    if starts_at.tzinfo is None:
        raise DomainError(_("The start time needs a time zone."), field="starts_at")
    if starts_at > utcnow() + MAX_AHEAD:
        raise DomainError(_("The start time is too far ahead."), field="starts_at")
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise DomainError(
            _("The duration must be between %(lo)d and %(hi)d minutes.",
              lo=MIN_DURATION, hi=MAX_DURATION),
            field="duration_minutes",
        )
    if policy is RecordingPolicy.NOTICE and kind is not Kind.HEARING:
        raise DomainError(
            _("Recording by notice is for hearings; a consult records only with consent."),
            field="recording_policy",
        )
    return title


def _not_in_past(starts_at: datetime) -> None:
    if starts_at < utcnow() - PAST_TOLERANCE:
        raise DomainError(_("The start time lies in the past."), field="starts_at")


def book(host: User, *, kind: Kind, title: str, starts_at: datetime, duration_minutes: int,
         recording_policy: RecordingPolicy) -> Appointment:
    """Book an appointment for this host; the host becomes its first participant."""
    title = _validate(kind, title, starts_at, duration_minutes, recording_policy)
    _not_in_past(starts_at)
    appointment = Appointment(
        kind=kind, title=title, host_id=host.id, starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=duration_minutes),
        recording_policy=recording_policy, status=Status.SCHEDULED,
    )
    appointment.participants.append(Participant(
        display_name=host.name, role=ParticipantRole.HOST, user_id=host.id,
        lobby_state=LobbyState.ADMITTED,
    ))
    db.session.add(appointment)
    db.session.flush()
    audit.record("appointment.created", object_type="appointment", object_id=appointment.id,
                 details={"kind": kind.value, "starts_at": starts_at.isoformat(),
                          "duration_minutes": duration_minutes,
                          "recording_policy": recording_policy.value})
    return appointment


def update(appointment: Appointment, *, kind: Kind | None = None, title: str | None = None,
           starts_at: datetime | None = None, duration_minutes: int | None = None,
           recording_policy: RecordingPolicy | None = None) -> Appointment:
    """Edit or reschedule a scheduled appointment. Invite links follow the new times."""
    _require_status(appointment, Status.SCHEDULED)
    new_kind = kind or appointment.kind
    new_start = starts_at or appointment.starts_at
    new_duration = duration_minutes or appointment.duration_minutes
    new_policy = recording_policy or appointment.recording_policy
    new_title = _validate(new_kind, title if title is not None else appointment.title,
                          new_start, new_duration, new_policy)
    if starts_at is not None and starts_at != appointment.starts_at:
        _not_in_past(starts_at)
    before = _snapshot(appointment)
    appointment.kind, appointment.title = new_kind, new_title
    appointment.starts_at = new_start
    appointment.ends_at = new_start + timedelta(minutes=new_duration)
    appointment.recording_policy = new_policy
    after = _snapshot(appointment)
    changed = {k: after[k] for k in after if after[k] != before[k]}
    if changed:
        moved = bool({"starts_at", "duration_minutes"} & changed.keys())
        action = "appointment.rescheduled" if moved else "appointment.updated"
        if moved:  # links now open and close at other times: the sockets are checked again
            announce(signals.appointment_rescheduled, appointment_id=appointment.id)
            outbox.rescheduled(appointment)
        audit.record(action, object_type="appointment", object_id=appointment.id,
                     details={"changed": sorted(changed), **{
                         k: v for k, v in changed.items() if k != "title"}})
    return appointment


def _snapshot(a: Appointment) -> dict[str, str | int]:
    return {"kind": a.kind.value, "title": a.title, "starts_at": a.starts_at.isoformat(),
            "duration_minutes": a.duration_minutes, "recording_policy": a.recording_policy.value}


def cancel(appointment: Appointment) -> None:
    """Cancel a scheduled appointment; every invite link then answers 410."""
    _require_status(appointment, Status.SCHEDULED)
    appointment.status = Status.CANCELLED
    outbox.cancelled(appointment)
    announce(signals.appointment_closed, appointment_id=appointment.id)
    audit.record("appointment.cancelled", object_type="appointment", object_id=appointment.id)


def go_live(appointment: Appointment, actor: Actor) -> None:
    """The first person joined the call."""
    if appointment.status is Status.SCHEDULED:
        appointment.status = Status.LIVE
        audit.record("appointment.live", object_type="appointment", object_id=appointment.id,
                     actor=actor)


def end(appointment: Appointment, actor: Actor) -> None:
    """The host ended the call: over for everyone, and every invite link stops working."""
    require_open_for_call(appointment)
    appointment.status = Status.ENDED
    for p in appointment.participants:
        presence.leave(p)
    outbox.ended(appointment)
    announce(signals.appointment_closed, appointment_id=appointment.id)
    audit.record("appointment.ended", object_type="appointment", object_id=appointment.id,
                 actor=actor)


def require_scheduled(appointment: Appointment) -> None:
    """Refuse (409) to change an appointment that is live, over or cancelled."""
    _require_status(appointment, Status.SCHEDULED)


def require_open_for_call(appointment: Appointment) -> None:
    """Refuse (409) to start or join a call that is over or cancelled."""
    if appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("This appointment is %(s)s; its call cannot be joined.",
                         s=status_label(appointment.status)))


def _require_status(appointment: Appointment, status: Status) -> None:
    if appointment.status is not status:
        raise Conflict(_("Only a scheduled appointment can be changed; this one is %(s)s.",
                         s=status_label(appointment.status)))


def status_label(status: Status) -> str:
    # One translation looked up, not four: a list of 50 appointments calls this 50 times.
    if status is Status.SCHEDULED:
        return _("scheduled")
    if status is Status.LIVE:
        return _("live")
    if status is Status.ENDED:
        return _("ended")
    return _("cancelled")


def for_host(host: User, *, include_past: bool = True) -> list[Appointment]:
    """The host's own appointments (and hearings they sit in), soonest first, with their
    participants (the list counts the guests: one query for all, not one per appointment)."""
    query = (select(Appointment).where(_sits_in(host))
             .options(selectinload(Appointment.participants)))
    if not include_past:
        query = query.where(Appointment.ends_at >= utcnow())
    return list(db.session.scalars(query.order_by(Appointment.starts_at)))


@dataclass(frozen=True)
class Listed:
    """What the host's list shows of an appointment."""

    id: int
    title: str
    kind: Kind
    status: Status
    starts_at: datetime
    ends_at: datetime
    guests: int

    @property
    def duration_minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)


def listed_for_host(host: User) -> list[Listed]:
    """The host's appointments, soonest first, each with its number of guests: one query of
    the columns shown (no ORM objects to build; the list is the host's most read page)."""
    guests = (select(func.count()).where(Participant.appointment_id == Appointment.id,
                                         Participant.role.in_(GUEST_ROLES))
              .correlate(Appointment).scalar_subquery())
    rows = db.session.execute(
        select(Appointment.id, Appointment.title, Appointment.kind, Appointment.status,
               Appointment.starts_at, Appointment.ends_at, guests)
        .where(_sits_in(host)).order_by(Appointment.starts_at))
    return [Listed(*row) for row in rows]


def _sits_in(user: User) -> ColumnElement[bool]:
    """The user's own appointments and the hearings they sit in (judge, clerk, panel)."""
    seated = select(Participant.appointment_id).where(Participant.user_id == user.id,
                                                      Participant.role.in_(STAFF_ROLES))
    return or_(Appointment.host_id == user.id, Appointment.id.in_(seated))


def get_for_host(host: User, appointment_id: int) -> Appointment:
    """The appointment if this host owns it. Anyone else's is simply not found."""
    appointment = db.session.get(Appointment, appointment_id)
    if appointment is None or appointment.host_id != host.id:
        raise NotFound(_("No such appointment."))
    return appointment


def get_guest(appointment: Appointment, participant_id: int) -> Participant:
    """A guest (who has an invite link): never the host nor a staff seat, who sign in."""
    for p in appointment.participants:
        if p.id == participant_id and p.role in GUEST_ROLES:
            return p
    raise NotFound(_("No such guest."))


def add_guest(appointment: Appointment, *, display_name: str, role: ParticipantRole,
              email: str | None = None, message_language: str | None = None,
              timezone: str | None = None) -> tuple[Participant, str]:
    """Invite a guest. Returns the participant and the invite token, shown once; a guest with
    an e-mail address is sent an invitation (portal.outbox)."""
    if appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("Guests can only be added to a scheduled appointment."))
    display_name = display_name.strip()
    if not display_name:
        raise DomainError(_("A name is required."), field="display_name")
    if len(display_name) > 120:
        raise DomainError(_("The name is too long (120 characters at most)."),
                          field="display_name")
    if role not in GUEST_ROLES:
        raise DomainError(_("That role is not one a guest can have."), field="role")
    check_room(appointment, role)
    token, digest = new_token()
    language, zone = message_settings(appointment, message_language, timezone)
    guest = Participant(display_name=display_name, role=role, email=(email or None),
                        invite_token_hash=digest, invite_issued_at=utcnow(),
                        message_language=language, timezone=zone)
    appointment.participants.append(guest)
    db.session.flush()
    audit.record("invite.created", object_type="participant", object_id=guest.id,
                 details={"appointment_id": appointment.id, "role": role.value})
    outbox.invited(guest, token)
    return guest, token


def message_settings(appointment: Appointment, language: str | None, zone: str | None,
                     *, where: str = "") -> tuple[str, str]:
    """The language and time zone of a guest's e-mail: as given, else the language the host
    works in now and the host's zone."""
    config = current_app.config
    if language:
        if language not in config["LANGUAGES"]:
            raise DomainError(_("The message language must be one of: %(l)s.",
                                l=", ".join(config["LANGUAGES"])),
                              field=where + "message_language")
    else:
        locale = get_locale()
        language = str(locale) if locale and str(locale) in config["LANGUAGES"] \
            else str(config["BABEL_DEFAULT_LOCALE"])
    if zone:
        if valid_zone(zone) is None:
            raise DomainError(_("Unknown time zone."), field=where + "timezone")
    else:
        zone = appointment.host.timezone or str(config["BABEL_DEFAULT_TIMEZONE"])
    return language, zone


def check_room(appointment: Appointment, role: ParticipantRole) -> None:
    """Room for one more: guests and staff seats up to MAX_GUESTS, observers (who send no
    media) up to MAX_OBSERVERS. The appointment's row is locked (PostgreSQL; SQLite's
    writers are serialised already) and the count made afresh, so two added at the same
    moment cannot pass the limit together."""
    db.session.execute(select(Appointment.id).where(Appointment.id == appointment.id)
                       .with_for_update())
    observer = role is ParticipantRole.OBSERVER
    query = select(func.count()).select_from(Participant).where(
        Participant.appointment_id == appointment.id, Participant.role != ParticipantRole.HOST,
        (Participant.role == ParticipantRole.OBSERVER) if observer
        else (Participant.role != ParticipantRole.OBSERVER))
    if (db.session.scalar(query) or 0) >= current_app.config[
            "MAX_OBSERVERS" if observer else "MAX_GUESTS"]:
        raise Conflict(_("This hearing has the most observers allowed.") if observer
                       else _("This appointment has the most guests allowed."))


def revoke_invite(guest: Participant) -> None:
    """The link stops working at once."""
    if guest.invite_revoked:
        return
    guest.invite_revoked_at = utcnow()
    _stop_link(guest)
    outbox.link_stopped(guest)
    audit.record("invite.revoked", object_type="participant", object_id=guest.id,
                 details={"appointment_id": guest.appointment_id})


def reissue_invite(guest: Participant) -> str:
    """A new link for the same guest; the old one stops working."""
    if guest.appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("This appointment is over or cancelled."))
    token, digest = new_token()
    if guest.invite_token_hash is not None:  # the old link then answers "replaced" (410)
        db.session.add(RetiredInvite(token_hash=guest.invite_token_hash, participant_id=guest.id))
    guest.invite_token_hash = digest
    guest.invite_issued_at = utcnow()
    guest.invite_revoked_at = None
    _stop_link(guest)
    guest.lobby_state = LobbyState.INVITED  # a new link is a new chance, even after a denial
    outbox.reissued(guest, token)
    audit.record("invite.reissued", object_type="participant", object_id=guest.id,
                 details={"appointment_id": guest.appointment_id})
    return token


def _stop_link(guest: Participant) -> None:
    """The guest's link was stopped or replaced: out of the lobby and the call, at once."""
    sid, was_in_call = guest.presence_sid, presence.in_call(guest)
    presence.leave(guest)
    announce(signals.link_stopped, participant_id=guest.id, appointment_id=guest.appointment_id,
             sid=sid, was_in_call=was_in_call)


def invite_window(appointment: Appointment) -> tuple[datetime, datetime]:
    """When an invite link for this appointment is valid: [opens, closes)."""
    config = current_app.config
    return (appointment.starts_at - timedelta(minutes=config["INVITE_OPENS_MINUTES_BEFORE"]),
            appointment.ends_at + timedelta(minutes=config["INVITE_CLOSES_MINUTES_AFTER"]))


class InviteState(enum.StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    REPLACED = "replaced"  # the host gave the guest a new link
    CANCELLED = "cancelled"
    ENDED = "ended"
    TOO_EARLY = "too_early"


@dataclass(frozen=True)
class InviteCheck:
    state: InviteState
    guest: Participant | None = None
    opens_at: datetime | None = None


def check_invite(token: str, *, now: datetime | None = None) -> InviteCheck:
    """What an invite token is worth right now. Only VALID may enter."""
    if not token or len(token) > 128:
        return InviteCheck(InviteState.UNKNOWN)
    digest = hash_token(token)
    # With the appointment and its host: the guest page shows both (one query, not three).
    guest = db.session.scalar(
        select(Participant).where(Participant.invite_token_hash == digest)
        .options(joinedload(Participant.appointment).joinedload(Appointment.host)))
    if guest is None:
        retired = db.session.get(RetiredInvite, digest)
        if retired is not None:
            return InviteCheck(InviteState.REPLACED, retired.participant)
        return InviteCheck(InviteState.UNKNOWN)
    return InviteCheck(invite_state(guest, now=now), guest, invite_window(guest.appointment)[0])


def invite_state(guest: Participant, *, now: datetime | None = None) -> InviteState:
    """What the guest's current link is worth right now."""
    appointment = guest.appointment
    opens, closes = invite_window(appointment)
    now = now or utcnow()
    if guest.invite_revoked:
        return InviteState.REVOKED
    if appointment.status is Status.CANCELLED:
        return InviteState.CANCELLED
    if appointment.status is Status.ENDED or now >= closes:
        return InviteState.ENDED
    if now < opens:
        return InviteState.TOO_EARLY
    return InviteState.VALID
