"""A hearing as one web worker holds it: its room, and a seat for each participant whose
socket is on this worker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.hearing.serial import Serial


@dataclass
class Seat:
    """A participant in the hearing whose socket is on this worker, and its handles."""

    participant_id: int
    sid: str
    #: The socket's language, for what is said to it later.
    locale: str
    publisher: int | None = None
    #: The publisher handle has carried a publication: the next one needs a fresh handle.
    published: bool = False
    subscriber: int | None = None
    #: Feed -> its media in the subscription now (as Janus last described it, or as asked).
    media: dict[int, set[str]] = field(default_factory=dict)
    #: (feed, kind) -> the subscription's mid of that stream (the layer, an unsubscribe).
    mids: dict[tuple[int, str], str] = field(default_factory=dict)

    @property
    def feeds(self) -> set[int]:
        return set(self.media)

    @property
    def videos(self) -> dict[int, str]:
        """Feed -> the subscription's mid of its video (for the simulcast layer)."""
        return {feed: mid for (feed, kind), mid in self.mids.items() if kind == "video"}

    def receives(self, streams: list[dict[str, Any]]) -> None:
        """The subscription as Janus last described it."""
        self.media, self.mids = {}, {}
        for s in streams:
            self.media.setdefault(s["participant_id"], set()).add(s["kind"])
            self.mids[(s["participant_id"], s["kind"])] = s["mid"]

    def let_go(self) -> tuple[int | None, int | None]:
        """Its handles, forgotten here (detaching them is the caller's)."""
        handles = (self.publisher, self.subscriber)
        self.publisher = self.subscriber = None
        self.published = False
        self.media.clear()
        self.mids.clear()
        return handles


@dataclass
class Room:
    """A hearing with seats on this worker (or ending)."""

    appointment_id: int
    #: The Janus instance it is pinned to ("" until known, for a hearing that ends here).
    url: str
    serial: Serial
    #: The Janus client the room was made with; another one means Janus was lost meanwhile.
    client: Any = None
    seats: dict[int, Seat] = field(default_factory=dict)
    #: Feed -> its published media (kind -> the publisher's mid), from the room's events: a
    #: subscription of one medium of a feed names its mid.
    streams: dict[int, dict[str, str]] = field(default_factory=dict)
    #: A recompute is asked for and not yet done (many events, one recompute).
    due: bool = False
    #: Janus was lost; the room is made again when the instance answers.
    lost: bool = False
    retrying: bool = False

    def seat_of(self, sid: str) -> Seat | None:
        return next((s for s in self.seats.values() if s.sid == sid), None)
