"""Sign-in sessions kept on the server (Flask-Session's SQL store, schema made by Alembic)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, UTCDateTime


class StoredSession(Base):
    """One browser's session: the cookie holds only `session_id`, so deleting the row ends the
    session everywhere the cookie was copied."""

    __tablename__ = "sessions"

    #: Flask-Session's store id: its key prefix and the random id the cookie carries.
    session_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: The session's contents, serialised by Flask-Session (msgpack).
    data: Mapped[bytes] = mapped_column(LargeBinary)
    #: After this the row is dead and may be deleted (the sign-in's absolute lifetime).
    expiry: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
