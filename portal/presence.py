"""The call's state in the database: who waits, who is in, who may come back.

The database is the truth (several web workers may share it); sockets only carry it. Pure
queries and changes on the session: no commit, nothing sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from portal.extensions import db
from portal.models import STAFF_ROLES, Appointment, ChatMessage, LobbyState, Participant

CHAT_HISTORY = 200


def grace() -> timedelta:
    return timedelta(seconds=current_app.config["RECONNECT_GRACE_SECONDS"])


def peer(p: Participant) -> dict[str, Any]:
    return {"id": p.id, "name": p.display_name, "role": p.role.value,
            "audio": p.audio_on, "video": p.video_on}


def utc_iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def in_call(p: Participant, sid: str | None = None) -> bool:
    """In the call now (through socket sid, if given)."""
    return (p.joined_call_at is not None and p.presence_sid is not None
            and (sid is None or p.presence_sid == sid))


def members(appointment: Appointment) -> list[Participant]:
    return [p for p in appointment.participants if in_call(p)]


def waiting(appointment: Appointment) -> list[dict[str, Any]]:
    return [{**peer(p), "since": utc_iso(p.waiting_since or p.created_at)}
            for p in appointment.guests if p.lobby_state is LobbyState.WAITING]


def may_join(p: Participant) -> bool:
    return p.role in STAFF_ROLES or p.lobby_state is LobbyState.ADMITTED


def resumable(p: Participant, now: datetime) -> bool:
    """May go straight back into the call, without the lobby."""
    if p.role in STAFF_ROLES:
        return p.joined_call_at is not None
    return p.lobby_state is LobbyState.ADMITTED and not grace_over(p, now)


def grace_over(p: Participant, now: datetime) -> bool:
    return (p.presence_sid is None and p.away_since is not None
            and now - p.away_since >= grace())


def leave(p: Participant) -> None:
    """Out of the lobby and the call; a guest must be admitted again."""
    p.presence_sid = None
    p.joined_call_at = None
    p.away_since = None
    if p.role not in STAFF_ROLES and p.lobby_state in (LobbyState.WAITING,
                                                                LobbyState.ADMITTED):
        p.lobby_state = LobbyState.LEFT


def chat_history(appointment: Appointment, audience: str = "all") -> list[ChatMessage]:
    """The call's chat (or, audience "hosts", the judge's and clerk's messages)."""
    rows = db.session.scalars(
        select(ChatMessage).where(ChatMessage.appointment_id == appointment.id,
                                  ChatMessage.audience == audience)
        .order_by(ChatMessage.id.desc()).limit(CHAT_HISTORY)).all()
    return list(reversed(rows))


def chat_json(m: ChatMessage) -> dict[str, Any]:
    return {"id": m.id, "from": {"id": m.participant.id, "name": m.participant.display_name},
            "text": m.body, "sent_at": utc_iso(m.sent_at)}
