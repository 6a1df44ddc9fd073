"""Each hearing lives on one Janus instance (rooms are in that instance's memory): chosen by
load when the first participant joins, stored with the appointment, kept from then on."""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import select

from portal.extensions import db
from portal.models import Appointment


def pin(appointment: Appointment, known: Collection[str], choose: Callable[[], str]) -> str:
    """The instance the hearing is pinned to; one chosen now when it has none, or one no
    longer configured (`known`: the configured instances)."""
    # The row locked (PostgreSQL; SQLite's writers wait their turn already) and read afresh:
    # two first joiners on two workers must not pick two instances.
    db.session.execute(select(Appointment.id).where(Appointment.id == appointment.id)
                       .with_for_update())
    db.session.refresh(appointment, ["janus_url"])
    if appointment.janus_url not in known:
        appointment.janus_url = choose()
    assert appointment.janus_url is not None
    return appointment.janus_url
