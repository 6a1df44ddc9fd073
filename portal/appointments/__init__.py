"""Appointments: booking, rescheduling, guests and their invite links."""
