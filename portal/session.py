"""The database session class: a commit runs what waited for it (database.after_commit)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask_sqlalchemy.session import Session as FlaskSession

log = logging.getLogger(__name__)
AFTER_COMMIT = "after_commit"


class Session(FlaskSession):
    """Callbacks run once commit() has finished, so they may read the database and may set off
    other handlers (closing a socket runs its disconnect handler at once). A rollback drops
    them."""

    def commit(self) -> None:
        super().commit()
        callbacks: list[Callable[[], None]] = self.info.pop(AFTER_COMMIT, [])
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the change is committed; a failed notice must not undo that
                log.exception("a callback after commit failed")
            finally:
                if self.in_transaction():
                    # A read the callback began must not hold SQLite's write lock.
                    super().rollback()

    def rollback(self) -> None:
        super().rollback()
        self.info.pop(AFTER_COMMIT, None)
