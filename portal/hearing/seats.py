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
    #: Feeds in the subscription now (as Janus last described it, or as last asked).
    feeds: set[int] = field(default_factory=set)
    #: Feed -> the subscription's mid of its video (for the simulcast layer).
    videos: dict[int, str] = field(default_factory=dict)

    def receives(self, streams: list[dict[str, Any]]) -> None:
        """The subscription as Janus last described it."""
        self.feeds = {s["participant_id"] for s in streams}
        self.videos = {s["participant_id"]: s["mid"] for s in streams if s["kind"] == "video"}

    def let_go(self) -> tuple[int | None, int | None]:
        """Its handles, forgotten here (detaching them is the caller's)."""
        handles = (self.publisher, self.subscriber)
        self.publisher = self.subscriber = None
        self.published = False
        self.feeds.clear()
        self.videos.clear()
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
    #: A recompute is asked for and not yet done (many events, one recompute).
    due: bool = False
    #: Janus was lost; the room is made again when the instance answers.
    lost: bool = False
    retrying: bool = False

    def seat_of(self, sid: str) -> Seat | None:
        return next((s for s in self.seats.values() if s.sid == sid), None)
