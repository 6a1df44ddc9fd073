"""Which invite links this process has audited as opened lately.

Every view of /j/<token> used to append an `invite.opened` entry: a write, and on SQLite the
write lock, for each page view of a read-only page. Now a link's opening is recorded at its
first view, whenever its state changes (valid, ended, ...), and otherwise at most once per
PORTAL_INVITE_AUDIT_MINUTES; the entry says how many views since the last one were not
recorded one by one (`views_not_recorded`). Kept in memory per process (app.extensions): a
restart or a second worker only ever records more, never less.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from flask import Flask

#: Links remembered at most; the least recently seen is forgotten first (it is then recorded
#: again at its next view).
KEPT = 10_000


@dataclass
class _Seen:
    state: str
    at: float  # monotonic seconds of the last entry
    views: int = 0  # views since, not recorded one by one


class OpenedLinks:
    def __init__(self, every_seconds: float) -> None:
        self.every = every_seconds
        self._lock = threading.Lock()
        self._seen: OrderedDict[int, _Seen] = OrderedDict()

    def claim(self, participant_id: int, state: str, now: float) -> int | None:
        """None if this view need not be recorded; else the views since the last entry not
        recorded one by one (the caller records it now, or calls release() if it cannot)."""
        with self._lock:
            seen = self._seen.get(participant_id)
            if seen is not None and seen.state == state and now - seen.at < self.every:
                seen.views += 1
                self._seen.move_to_end(participant_id)
                return None
            self._seen[participant_id] = _Seen(state, now)
            self._seen.move_to_end(participant_id)
            while len(self._seen) > KEPT:
                self._seen.popitem(last=False)
            return seen.views if seen is not None else 0

    def release(self, participant_id: int) -> None:
        """The entry could not be written: the next view records it."""
        with self._lock:
            self._seen.pop(participant_id, None)


def init_app(app: Flask) -> None:
    app.extensions["opened_links"] = OpenedLinks(app.config["INVITE_AUDIT_MINUTES"] * 60)


def opened_links(app: Flask) -> OpenedLinks:
    found = app.extensions["opened_links"]
    assert isinstance(found, OpenedLinks)
    return found
