"""Who a socket belongs to: decided once at connect, checked again only when it may have
changed (a notice marked it stale, or the guest's link reached its closing time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_login import current_user

from portal import presence
from portal.accounts import mfa, sessions
from portal.accounts.auth import load_user
from portal.appointments.services import InviteState, check_invite, invite_state, invite_window
from portal.clock import Clock
from portal.extensions import db
from portal.models import STAFF_ROLES, Appointment, Participant, Status, utcnow
from portal.tokens import hash_token

_OPEN = (Status.SCHEDULED, Status.LIVE)
#: Events a participant may send, over all its sockets: `RATE` a second on average, bursts
#: of up to `BURST`.
EVENT_RATE, EVENT_BURST = 40, 200
CHAT_RATE, CHAT_BURST = 0.5, 5
#: Events from one address, over all its participants (a clinic behind one NAT has several).
ADDRESS_RATE, ADDRESS_BURST = 4 * EVENT_RATE, 4 * EVENT_BURST


class Refused(Exception):
    """An event the server will not act on; the sender gets `error` {code, message, event}."""

    def __init__(self, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.close = code, message, close


@dataclass
class Bucket:
    """Token bucket: `rate` events a second on average, bursts up to `burst`; full at first."""

    rate: float
    burst: float
    #: Monotonic seconds: the app's clock (portal/clock.py), which tests move by hand.
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.stamp = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        with self._lock:  # several sockets of one participant share a bucket
            self._refill()
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True

    def full(self) -> bool:
        """As good as a new bucket: forgetting it changes nothing."""
        with self._lock:
            self._refill()
            return self.tokens >= self.burst


class Buckets:
    """This worker's token buckets, one per participant or address and kind, shared by all
    their sockets: a new socket does not bring a fresh allowance. Full buckets are forgotten."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, Bucket] = {}

    def get(self, key: Hashable, rate: float, burst: float,
            clock: Callable[[], float]) -> Bucket:
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = Bucket(rate=rate, burst=burst, clock=clock)
            return found

    def sweep(self, in_use: set[int]) -> None:
        """Forget the full buckets no socket holds (`in_use`: ids of the buckets held)."""
        with self._lock:
            for key, bucket in list(self._buckets.items()):
                if id(bucket) not in in_use and bucket.full():
                    del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class Identity:
    """Who a socket belongs to, fixed at connect."""

    participant_id: int
    appointment_id: int
    user_id: int | None = None  # staff (a host, judge, clerk or panel member)
    #: The participant has a host's rights (portal.models.HOST_ROLES): the hosts' room.
    host: bool = False
    session_epoch: int | None = None
    #: The host's stored session: when it ends (signed out, idle, too old) the socket closes.
    session_id: str | None = None
    token_hash: str | None = None  # guests: which link (a new link is a new identity)
    #: Guests: when the link stops working by itself; the next event after it is re-checked.
    valid_until: datetime | None = None
    #: Set by a notice (link stopped, account changed, appointment moved): check again.
    stale: bool = False
    clock: Callable[[], float] = time.monotonic  # for the rate limits
    now: Callable[[], datetime] = utcnow  # for valid_until
    #: Where the socket connected from (after the trusted proxies).
    address: str = ""
    #: The participant's and the address's buckets (shared with their other sockets, given
    #: by Sockets.bind); a socket's own until then.
    events: Bucket = field(init=False)
    chat: Bucket = field(init=False)
    address_events: Bucket = field(init=False)

    def __post_init__(self) -> None:
        self.events = Bucket(rate=EVENT_RATE, burst=EVENT_BURST, clock=self.clock)
        self.chat = Bucket(rate=CHAT_RATE, burst=CHAT_BURST, clock=self.clock)
        self.address_events = Bucket(rate=ADDRESS_RATE, burst=ADDRESS_BURST, clock=self.clock)

    def share(self, buckets: Buckets) -> None:
        """Use the participant's and the address's buckets from now on."""
        self.events = buckets.get(("events", self.participant_id), EVENT_RATE, EVENT_BURST,
                                  self.clock)
        self.chat = buckets.get(("chat", self.participant_id), CHAT_RATE, CHAT_BURST,
                                self.clock)
        self.address_events = buckets.get(("address", self.address), ADDRESS_RATE,
                                          ADDRESS_BURST, self.clock)

    def buckets(self) -> tuple[Bucket, ...]:
        return self.events, self.chat, self.address_events

    @property
    def is_host(self) -> bool:
        return self.host

    def due(self) -> bool:
        """Must be checked again before its next event."""
        return self.stale or (self.valid_until is not None and self.now() >= self.valid_until)


def identify(auth: Any, clock: Clock, address: str = "") -> Identity:
    """At connect: a guest's invite, or the session of a staff member who sits in the
    appointment (its host, or a hearing's judge, clerk or panel member: their own row)."""
    if not isinstance(auth, dict):
        auth = {}
    token = auth.get("invite")
    if token is not None:
        if not isinstance(token, str):
            raise Refused("bad_request", _("The invite is malformed."))
        check = check_invite(token)
        if check.state is not InviteState.VALID or check.guest is None:
            raise Refused("unauthorized" if check.state is InviteState.UNKNOWN else "ended",
                          _("This invite link does not work now."))
        guest = check.guest
        return Identity(guest.id, guest.appointment_id, token_hash=hash_token(token),
                        valid_until=invite_window(guest.appointment)[1],
                        clock=clock.monotonic, now=clock.now, address=address)
    appointment_id = auth.get("appointment")
    if not isinstance(appointment_id, int) or isinstance(appointment_id, bool) \
            or not 0 < appointment_id < 2**31:
        raise Refused("bad_request", _("Say which appointment to connect to."))
    if (not current_user.is_authenticated or current_user.must_change_password
            or mfa.missing(current_user)):
        raise Refused("unauthorized", _("Please sign in again."))
    appointment = db.session.get(Appointment, appointment_id)
    mine = None if appointment is None else staff_row(appointment, current_user.id)
    if appointment is None or mine is None:
        raise Refused("forbidden", _("You do not host this appointment."))
    if appointment.status not in _OPEN:
        raise Refused("ended", _("This appointment is over."))
    return Identity(mine.id, appointment.id, user_id=current_user.id, host=mine.is_host,
                    session_epoch=current_user.session_epoch,
                    session_id=sessions.current_id(), clock=clock.monotonic, now=clock.now,
                    address=address)


def staff_row(appointment: Appointment, user_id: int) -> Participant | None:
    """The staff member's own row in the appointment: the host's, or a judge's, clerk's or
    panel member's."""
    return next((p for p in appointment.participants
                 if p.user_id == user_id and p.role in STAFF_ROLES), None)


def recheck(identity: Identity) -> None:
    """The invite or staff session is still good and the call still open, or Refused (which
    closes the socket). Renews the identity's closing time."""
    if identity.token_hash is not None:
        guest = db.session.get(Participant, identity.participant_id)
        if guest is None or guest.invite_token_hash != identity.token_hash \
                or guest.invite_revoked:
            raise Refused("ended", _("This invite link was stopped by the host."), close=True)
        if invite_state(guest, now=identity.now()) is not InviteState.VALID:
            raise Refused("ended", _("This invite link does not work any more."), close=True)
        identity.valid_until = invite_window(guest.appointment)[1]
    else:
        if load_user(f"{identity.user_id}.{identity.session_epoch}") is None:
            raise Refused("unauthorized", _("Please sign in again."), close=True)
        _signed_in(identity)
        appointment = db.session.get(Appointment, identity.appointment_id)
        if appointment is None or appointment.status not in _OPEN:
            raise Refused("ended", _("This appointment is over."), close=True)
        mine = staff_row(appointment, identity.user_id or 0)
        if mine is None or mine.id != identity.participant_id:  # taken off the hearing
            raise Refused("forbidden", _("You do not host this appointment."), close=True)
    identity.stale = False


def _signed_in(identity: Identity) -> None:
    """The host's sign-in still lasts, or Refused (which closes the socket)."""
    if identity.session_id is None:
        return
    reason = sessions.why_ended_by_id(identity.session_id)
    if reason is not None:
        raise Refused("unauthorized", sessions.ended_message(reason), close=True)


def keep_signed_in(identity: Identity) -> None:
    """Now and then for each host socket: Refused (which closes it) once its sign-in has ended.
    A host in the call with someone else is busy, not idle: that counts as activity, so a
    long consult without page requests is not cut off."""
    _signed_in(identity)
    host = db.session.get(Participant, identity.participant_id)
    if identity.session_id is not None and host is not None and presence.in_call(host) \
            and len(presence.members(host.appointment)) > 1:
        sessions.touch_by_id(identity.session_id)
