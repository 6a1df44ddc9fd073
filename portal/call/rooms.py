"""Socket.IO rooms of a call: who hears what."""

from __future__ import annotations


def appointment_room(appointment_id: int) -> str:
    """Every socket of the appointment: host pages, lobby, call."""
    return f"appointment:{appointment_id}"


def hosts_room(appointment_id: int) -> str:
    return f"hosts:{appointment_id}"


def call_room(appointment_id: int) -> str:
    return f"call:{appointment_id}"


def user_room(user_id: int) -> str:
    """Every call socket of one staff account."""
    return f"user:{user_id}"
