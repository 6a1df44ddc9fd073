"""What the domain announces, once its change has committed; the call layer listens.

Domain modules never reach into the socket layer: they `announce()` one of these signals and
`portal.call.notify` turns it into socket messages. Receivers get the app as sender and plain
values (ids, JSON-ready dicts), never ORM objects: they run after the session has committed.
"""

from __future__ import annotations

from typing import Any

from blinker import NamedSignal, Namespace
from flask import current_app

from portal.database import after_commit

_signals = Namespace()

#: appointment_id: cancelled, or its call ended. Everyone connected hears it is over.
appointment_closed = _signals.signal("appointment-closed")
#: appointment_id: its times changed; every socket of it is checked again.
appointment_rescheduled = _signals.signal("appointment-rescheduled")
#: participant_id, appointment_id, sid (or None), was_in_call: a guest's link stopped working.
link_stopped = _signals.signal("link-stopped")
#: user_id: sign-in rights changed (password, disabled); the account's sockets are re-checked.
account_changed = _signals.signal("account-changed")
#: user_id, message: the account signed out; its call sockets close.
signed_out = _signals.signal("signed-out")
#: session_id, message: a sign-in ended by itself (idle, too old); its call sockets close.
session_ended = _signals.signal("session-ended")
#: appointment_id, state (JSON), publish (socket ids to start publishing), recording_id.
recording_changed = _signals.signal("recording-changed")
#: appointment_id, notice ({id, track, participant, name, total}): a recording loses media.
recording_losing = _signals.signal("recording-losing")


def announce(signal: NamedSignal, **values: Any) -> None:
    """Send signal once the current transaction commits (never if it rolls back)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def send() -> None:
        signal.send(app, **values)

    after_commit(send)
