"""Booking a hearing's people: roles, staff seats, who represents and interprets for whom,
screening, and the observer link. Each change writes its audit event (ids only: never a name,
an address or a link). docs/hearings.md says what the roles mean for a court's staff."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import delete, select
from sqlalchemy.orm import selectinload

from portal import outbox
from portal.appointments import services
from portal.appointments.services import InviteState
from portal.audit import services as audit
from portal.errors import Conflict, DomainError, Forbidden, NotFound
from portal.extensions import db
from portal.models import (
    GUEST_ROLES,
    HOST_ROLES,
    STAFF_ROLES,
    Appointment,
    Kind,
    LobbyState,
    Participant,
    ParticipantRole,
    Representation,
    Screening,
    Status,
    User,
    utcnow,
)
from portal.tokens import hash_token, new_token

#: Staff roles a booking may name (the host's own row is made by booking, never added).
SEAT_ROLES = tuple(r for r in STAFF_ROLES if r is not ParticipantRole.HOST)
#: Roles a participant may be added with.
ADDABLE_ROLES = (*SEAT_ROLES, *GUEST_ROLES)
#: Who an interpreter cannot interpret for.
NOT_INTERPRETED = (ParticipantRole.INTERPRETER, ParticipantRole.OBSERVER)

#: A short BCP 47 tag: language (2-3 letters), optional script, region, variants, e.g. "nb",
#: "en-GB", "zh-Hant-TW", "sl-rozaj". Private use and extensions are not needed here.
_LANGUAGE = re.compile(
    r"^(?P<lang>[a-z]{2,3})(?:-(?P<script>[a-z]{4}))?(?:-(?P<region>[a-z]{2}|\d{3}))?"
    r"(?P<variants>(?:-(?:[a-z\d]{5,8}|\d[a-z\d]{3}))*)\Z", re.I)
MAX_LANGUAGE = 35


def language_tag(value: str) -> str:
    """The tag in its usual case ("en-GB"), or DomainError."""
    match = _LANGUAGE.match(value.strip()) if len(value) <= MAX_LANGUAGE else None
    if match is None:
        raise DomainError(_("The language must be a short language tag such as “nb”, “en-GB” "
                            "or “pl”."), field="language")
    tag = match["lang"].lower()
    if match["script"]:
        tag += "-" + match["script"].title()
    if match["region"]:
        tag += "-" + match["region"].upper()
    return tag + match["variants"].lower()


@dataclass
class Seat:
    """One participant to add. References name participants of the same appointment: by id
    (a participant added before), or by a request-local `ref` (see book_hearing)."""

    role: ParticipantRole
    display_name: str = ""
    email: str | None = None
    #: Staff roles: the staff account's e-mail address (it joins signed in, with no link).
    staff_email: str | None = None
    represents: Sequence[int | str] = ()
    interprets_for: int | str | None = None
    language: str | None = None
    screened_from: Sequence[int | str] = ()
    #: A guest's e-mail: its language ("en", "nb") and the time zone it states.
    message_language: str | None = None
    timezone: str | None = None
    #: This seat's name for references inside one request.
    ref: str | None = None


@dataclass
class Added:
    participant: Participant
    #: The invite token, shown once; None for staff (they sign in).
    token: str | None
    ref: str | None = None


@dataclass
class Booked:
    appointment: Appointment
    added: list[Added] = field(default_factory=list)
    #: The observer link's token, shown once; None when the link is off.
    observer_token: str | None = None


def load(appointment_id: int) -> Appointment | None:
    """An appointment with its participants and their court relations, in a fixed number of
    queries whatever their number (the appointment page lists them all)."""
    people = selectinload(Appointment.participants)
    return db.session.scalar(
        select(Appointment).where(Appointment.id == appointment_id).options(
            people.selectinload(Participant.represents),
            people.selectinload(Participant.screened_from)))


# Adding people ------------------------------------------------------------------------------


def add_participant(appointment: Appointment, seat: Seat) -> Added:
    """Add one participant with its role and references to participants already there."""
    added = _add(appointment, seat, where="")
    db.session.flush()
    _relate(appointment, added.participant, seat, {}, where="")
    _relate_screening(appointment, added.participant, seat, {}, where="")
    _audit_added(appointment, added.participant)
    if added.token is not None:
        outbox.invited(added.participant, added.token)
    return added


def book_hearing(host: User, seats: Sequence[Seat], *, observer_link: bool = False,
                 **booking: object) -> Booked:
    """Book an appointment with its participants in one go (a clerk's case system does this).
    A seat's references may name other seats of the same call by `ref`. A bad reference
    raises DomainError naming the field (participants.<n>.<field>); the caller rolls back."""
    appointment = services.book(host, **booking)  # type: ignore[arg-type]
    refs: dict[str, Participant] = {}
    added: list[Added] = []
    for n, seat in enumerate(seats):
        where = f"participants.{n}."
        if seat.ref is not None and (not seat.ref.strip() or seat.ref in refs):
            raise DomainError(_("Each participant's ref must be unique and not empty."),
                              field=where + "ref")
        one = _add(appointment, seat, where=where)
        one.ref = seat.ref
        added.append(one)
        if seat.ref is not None:
            refs[seat.ref] = one.participant
    db.session.flush()
    # Screening last: it checks who interprets for whom, which any seat may say.
    for n, (seat, one) in enumerate(zip(seats, added, strict=True)):
        _relate(appointment, one.participant, seat, refs, where=f"participants.{n}.")
    for n, (seat, one) in enumerate(zip(seats, added, strict=True)):
        _relate_screening(appointment, one.participant, seat, refs, where=f"participants.{n}.")
    for one in added:
        _audit_added(appointment, one.participant)
        if one.token is not None:
            outbox.invited(one.participant, one.token)
    token = enable_observer_link(appointment) if observer_link else None
    return Booked(appointment, added, token)


def _add(appointment: Appointment, seat: Seat, *, where: str) -> Added:
    if appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("Guests can only be added to a scheduled appointment."))
    if seat.role not in ADDABLE_ROLES:
        raise DomainError(_("That role cannot be added to an appointment."), field=where + "role")
    if seat.role in SEAT_ROLES:
        return Added(_seat_staff(appointment, seat, where), None)
    if seat.staff_email:
        raise DomainError(_("Only a judge, a clerk or a panel member names a staff account."),
                          field=where + "staff_email")
    services.check_room(appointment, seat.role)
    language, zone = services.message_settings(appointment, seat.message_language,
                                               seat.timezone, where=where)
    guest = Participant(display_name=_name(seat.display_name, where), role=seat.role,
                        email=seat.email or None, invite_issued_at=utcnow(),
                        message_language=language, timezone=zone)
    token, guest.invite_token_hash = new_token()
    appointment.participants.append(guest)
    return Added(guest, token)


def _name(display_name: str, where: str) -> str:
    name = display_name.strip()
    if not name:
        raise DomainError(_("A name is required."), field=where + "display_name")
    if len(name) > 120:
        raise DomainError(_("The name is too long (120 characters at most)."),
                          field=where + "display_name")
    return name


def _seat_staff(appointment: Appointment, seat: Seat, where: str) -> Participant:
    """A judge, clerk or panel member: an active staff account, no invite link."""
    if appointment.kind is not Kind.HEARING:
        raise DomainError(_("Judges, clerks and panel members sit only in hearings."),
                          field=where + "role")
    address = (seat.staff_email or "").strip().lower()
    if not address:
        raise DomainError(_("Give the staff account's e-mail address."),
                          field=where + "staff_email")
    user = db.session.scalar(select(User).where(User.email == address))
    if user is None or user.is_disabled:
        raise DomainError(_("No active staff account has that e-mail address."),
                          field=where + "staff_email")
    if user.id == appointment.host_id or any(p.user_id == user.id
                                             for p in appointment.participants):
        raise DomainError(_("That staff member is in this hearing already."),
                          field=where + "staff_email")
    services.check_room(appointment, seat.role)
    member = Participant(display_name=_name(seat.display_name or user.name, where),
                         role=seat.role, user_id=user.id, lobby_state=LobbyState.ADMITTED)
    appointment.participants.append(member)
    return member


def _member(appointment: Appointment, ref: int | str | None, refs: dict[str, Participant],
            field_name: str) -> Participant:
    """A participant of this appointment named by id or request-local ref, or DomainError."""
    found: Participant | None = None
    if isinstance(ref, str):
        found = refs.get(ref)
    elif isinstance(ref, int):
        found = next((p for p in appointment.participants if p.id == ref), None)
    if found is None:
        raise DomainError(_("That names nobody in this appointment."), field=field_name)
    return found


def _relate(appointment: Appointment, person: Participant, seat: Seat,
            refs: dict[str, Participant], *, where: str) -> None:
    if seat.represents:
        if person.role is not ParticipantRole.COUNSEL:
            raise DomainError(_("Only counsel represent parties."), field=where + "represents")
        parties: dict[int, Participant] = {}
        for ref in seat.represents:
            party = _member(appointment, ref, refs, where + "represents")
            if party.role is not ParticipantRole.PARTY:
                raise DomainError(_("Counsel can represent only parties of this hearing."),
                                  field=where + "represents")
            parties[party.id] = party
        for party_id in sorted(parties):
            db.session.add(Representation(counsel_id=person.id, party_id=party_id))
    if seat.interprets_for is not None or seat.language:
        _interpret(appointment, person, seat, refs, where)
    db.session.flush()
    db.session.expire(person, ["represents"])


def _relate_screening(appointment: Appointment, person: Participant, seat: Seat,
                      refs: dict[str, Participant], *, where: str) -> None:
    if seat.screened_from:
        hidden = [_member(appointment, ref, refs, where + "screened_from")
                  for ref in seat.screened_from]
        _screen(person, hidden, where + "screened_from")
        db.session.flush()
        db.session.expire(person, ["screened_from"])


def _interpret(appointment: Appointment, person: Participant, seat: Seat,
               refs: dict[str, Participant], where: str) -> None:
    if person.role is not ParticipantRole.INTERPRETER:
        raise DomainError(_("Only an interpreter interprets for someone."),
                          field=where + "interprets_for")
    if seat.interprets_for is None:
        raise DomainError(_("Say whom the interpreter interprets for."),
                          field=where + "interprets_for")
    if not seat.language:
        raise DomainError(_("Give the language the interpreter interprets into."),
                          field=where + "language")
    try:
        language = language_tag(seat.language)
    except DomainError as err:
        raise DomainError(err.message, field=where + "language") from None
    principal = _member(appointment, seat.interprets_for, refs, where + "interprets_for")
    if principal is person or principal.role in NOT_INTERPRETED:
        raise DomainError(_("An interpreter interprets for a participant who is neither an "
                            "interpreter nor an observer."), field=where + "interprets_for")
    person.interprets_for_id, person.language = principal.id, language


def _screen(protected: Participant, hidden: Iterable[Participant], field_name: str) -> set[int]:
    """Check who `protected` may be screened from; add the rows; the ids."""
    ids: set[int] = set()
    for other in hidden:
        if other.appointment_id != protected.appointment_id:
            raise DomainError(_("That names nobody in this appointment."), field=field_name)
        if other.id == protected.id:
            raise DomainError(_("A participant cannot be screened from themselves."),
                              field=field_name)
        if other.role in STAFF_ROLES:
            raise DomainError(_("The bench sees everyone: nobody is screened from the judge, "
                                "the clerk or the panel."), field=field_name)
        if protected.interprets_for_id == other.id or other.interprets_for_id == protected.id:
            raise DomainError(_("An interpreter is never screened from the person they "
                                "interpret for."), field=field_name)
        ids.add(other.id)
    for hidden_id in sorted(ids):
        db.session.add(Screening(protected_id=protected.id, hidden_from_id=hidden_id))
    return ids


def _audit_added(appointment: Appointment, person: Participant) -> None:
    details: dict[str, object] = {"appointment_id": appointment.id, "role": person.role.value}
    if person.user_id is not None:
        details["user_id"] = person.user_id
    represents = sorted(r.party_id for r in db.session.scalars(
        select(Representation).where(Representation.counsel_id == person.id)))
    if represents:
        details["represents"] = represents
    if person.interprets_for_id is not None:
        details["interprets_for"] = person.interprets_for_id
        details["language"] = person.language
    screened = _screened_ids(person.id)
    if screened:
        details["screened_from"] = sorted(screened)
    action = "staff.seated" if person.user_id is not None else "invite.created"
    audit.record(action, object_type="participant", object_id=person.id, details=details)


def _screened_ids(protected_id: int) -> set[int]:
    return set(db.session.scalars(select(Screening.hidden_from_id)
                                  .where(Screening.protected_id == protected_id)))


# Screening, changed later ---------------------------------------------------------------------


def set_screening(appointment: Appointment, protected: Participant,
                  hidden_from_ids: Sequence[int]) -> Participant:
    """Whom `protected` is screened from, from now on (an empty list: nobody)."""
    if protected.appointment_id != appointment.id:
        raise NotFound(_("No such participant."))
    if appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("This appointment is over or cancelled."))
    hidden = [_member(appointment, pid, {}, "screened_from") for pid in hidden_from_ids]
    before = _screened_ids(protected.id)
    db.session.execute(delete(Screening).where(Screening.protected_id == protected.id))
    after = _screen(protected, hidden, "screened_from")
    db.session.flush()
    db.session.expire(protected, ["screened_from"])
    if after != before:
        audit.record("screening.changed", object_type="participant", object_id=protected.id,
                     details={"appointment_id": appointment.id,
                              "added": sorted(after - before), "removed": sorted(before - after)})
    return protected


# The observer link ----------------------------------------------------------------------------


def enable_observer_link(appointment: Appointment) -> str:
    """Turn the hearing's observer link on with a new token (shown once); a link given out
    before stops working."""
    if appointment.kind is not Kind.HEARING:
        raise DomainError(_("Only a hearing has an observer link."), field="observer_link")
    if appointment.status not in (Status.SCHEDULED, Status.LIVE):
        raise Conflict(_("This appointment is over or cancelled."))
    token, digest = new_token()
    replaced = appointment.observer_token_hash is not None
    appointment.observer_token_hash, appointment.observer_link_enabled = digest, True
    audit.record("observer_link.enabled", object_type="appointment", object_id=appointment.id,
                 details={"replaced": replaced})
    return token


def disable_observer_link(appointment: Appointment) -> None:
    """Turn the observer link off: it answers 410 from now on. Observers who joined keep
    their own links (stop them one by one)."""
    if not appointment.observer_link_enabled:
        return
    appointment.observer_link_enabled = False
    audit.record("observer_link.disabled", object_type="appointment", object_id=appointment.id)


class ObserverState(enum.StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    OFF = "off"  # turned off by a host
    CANCELLED = "cancelled"
    ENDED = "ended"
    TOO_EARLY = "too_early"


@dataclass(frozen=True)
class ObserverCheck:
    state: ObserverState
    appointment: Appointment | None = None
    opens_at: datetime | None = None


_FROM_INVITE = {InviteState.CANCELLED: ObserverState.CANCELLED,
                InviteState.ENDED: ObserverState.ENDED,
                InviteState.TOO_EARLY: ObserverState.TOO_EARLY}


def check_observer_link(token: str, *, now: datetime | None = None) -> ObserverCheck:
    """What an observer link is worth right now: its window is the invite links' window."""
    if not token or len(token) > 128:
        return ObserverCheck(ObserverState.UNKNOWN)
    appointment = db.session.scalar(select(Appointment).where(
        Appointment.observer_token_hash == hash_token(token)))
    if appointment is None:
        return ObserverCheck(ObserverState.UNKNOWN)
    opens, closes = services.invite_window(appointment)
    if not appointment.observer_link_enabled:
        return ObserverCheck(ObserverState.OFF, appointment)
    if appointment.status is Status.CANCELLED:
        return ObserverCheck(ObserverState.CANCELLED, appointment)
    now = now or utcnow()
    if appointment.status is Status.ENDED or now >= closes:
        return ObserverCheck(ObserverState.ENDED, appointment)
    if now < opens:
        return ObserverCheck(ObserverState.TOO_EARLY, appointment, opens)
    return ObserverCheck(ObserverState.VALID, appointment, opens)


def join_as_observer(token: str, display_name: str) -> tuple[Participant, str]:
    """Someone with the observer link gives a name: an observer with a link of their own
    (shown to them at once), who then waits to be admitted like any guest."""
    check = check_observer_link(token)
    if check.state is not ObserverState.VALID or check.appointment is None:
        raise Conflict(_("This observer link does not work now."), code=check.state.value)
    appointment = check.appointment
    services.check_room(appointment, ParticipantRole.OBSERVER)
    observer = Participant(display_name=_name(display_name, ""), role=ParticipantRole.OBSERVER,
                           invite_issued_at=utcnow())
    personal, observer.invite_token_hash = new_token()
    appointment.participants.append(observer)
    db.session.flush()
    audit.record("observer.joined", object_type="participant", object_id=observer.id,
                 details={"appointment_id": appointment.id})
    return observer, personal


# Who sits where -------------------------------------------------------------------------------


def seat_of(user: User, appointment: Appointment) -> Participant | None:
    """The user's staff seat in the appointment (the host's row, a judge's, ...), if any."""
    return next((p for p in appointment.participants
                 if p.user_id == user.id and p.role in STAFF_ROLES), None)


def may_change(user: User, appointment: Appointment) -> bool:
    """The host, and a hearing's judge and clerk, may change its booking; a panel member
    may only look."""
    if appointment.host_id == user.id:
        return True
    seat = seat_of(user, appointment)
    return seat is not None and seat.role in HOST_ROLES


def get_for_staff(user: User, appointment_id: int) -> Appointment:
    """The appointment if the user hosts it or sits in it (a hearing's judge, clerk or panel
    member), with its people loaded; anyone else's is simply not found."""
    appointment = load(appointment_id)
    if appointment is None or (appointment.host_id != user.id
                               and seat_of(user, appointment) is None):
        raise NotFound(_("No such appointment."))
    return appointment


def get_to_change(user: User, appointment_id: int) -> Appointment:
    """The appointment if the user may change its booking; a panel member gets 403."""
    appointment = get_for_staff(user, appointment_id)
    if not may_change(user, appointment):
        raise Forbidden(_("A panel member cannot change the booking."))
    return appointment
