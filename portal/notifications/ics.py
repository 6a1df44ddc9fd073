"""The calendar file sent with each message (RFC 5545/5546): one event per guest, with a
stable UID and a SEQUENCE raised on every change, so that a calendar updates the entry it has
instead of adding another."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event, vCalAddress, vText


def uid(participant_id: int, domain: str) -> str:
    """The guest's entry: the same for every message to this guest."""
    return f"samtale-guest-{participant_id}@{domain}"


def calendar(*, method: str, uid: str, sequence: int, stamp: datetime, starts_at: datetime,
             ends_at: datetime, summary: str, description: str, url: str | None,
             organizer: str, organizer_name: str, attendee: str) -> bytes:
    """A VCALENDAR with one VEVENT; method REQUEST (new or changed) or CANCEL."""
    cal = Calendar()
    cal.add("prodid", "-//Samtale//Samtale//EN")
    cal.add("version", "2.0")
    cal.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("sequence", sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", starts_at)
    event.add("dtend", ends_at)
    event.add("summary", summary)
    event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if url:
        event.add("url", url)
        event.add("location", url)
    host = vCalAddress(f"mailto:{organizer}")
    host.params["cn"] = vText(organizer_name)
    event.add("organizer", host)
    guest = vCalAddress(f"mailto:{attendee}")
    guest.params["role"] = vText("REQ-PARTICIPANT")
    guest.params["rsvp"] = vText("FALSE")
    event.add("attendee", guest)
    cal.add_component(event)
    return bytes(cal.to_ical())
