"""Guests' e-mail: how fast one sender empties the outbox into a real SMTP server.

A fresh SQLite database (migrated) with one host and one appointment; `--messages` guests with
an address are added through the service (each queues an invitation in its own transaction),
then one Sender pass sends them all to aiosmtpd on 127.0.0.1 (one SMTP connection per message,
as the portal sends). Reports queueing per guest (ms), sending messages/s and ms per message
(writing, the calendar file, SMTP, the two commits), and that the server got each message once.

Run: .venv/bin/python bench/notifications.py [--messages 200]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from flask_migrate import upgrade  # noqa: E402 - after the path is set

from portal import create_app  # noqa: E402
from portal.accounts import services as accounts  # noqa: E402
from portal.appointments import services  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Kind, ParticipantRole, RecordingPolicy, Role  # noqa: E402
from portal.notifications.sender import Sender  # noqa: E402


class Counting:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        for line in content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                with self.lock:
                    self.ids[line.decode()] += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    n = parser.parse_args().messages
    handler = Counting()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    with tempfile.TemporaryDirectory() as folder:
        files = Path(folder)
        app = create_app({
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{files / 'bench.sqlite3'}",
            "SECRET_KEY": "bench", "MFA_KEY": "bench", "LINK_KEY": "bench",
            "RECORDINGS_DIR": str(files / "rec"), "RECORDING_KEYS_DIR": str(files),
            "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8, "ARGON2_PARALLELISM": 1,
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_SECURITY": "none",
            "SMTP_FROM": "no-reply@bench.test", "MAX_GUESTS": n})
        with app.app_context():
            upgrade()
            host, _ = accounts.create_user("host@bench.test", "Bench Host", Role.HOST,
                                           "a long enough bench passphrase")
            appointment = services.book(
                host, kind=Kind.CONSULT, title="Bench", duration_minutes=30,
                starts_at=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1),
                recording_policy=RecordingPolicy.CONSENT)
            db.session.commit()
            started = time.perf_counter()
            for i in range(n):
                services.add_guest(appointment, display_name=f"Guest {i}",
                                   role=ParticipantRole.PATIENT, email=f"g{i}@bench.test",
                                   message_language="nb" if i % 2 else "en",
                                   timezone="Europe/Oslo")
                db.session.commit()
            queued = time.perf_counter() - started
        started = time.perf_counter()
        sent = Sender(app).run_once(limit=n + 10)
        sending = time.perf_counter() - started
        with app.app_context():
            db.engine.dispose()
    controller.stop()
    once = all(count == 1 for count in handler.ids.values())
    print(f"queued {n} invitations: {queued / n * 1000:.1f} ms per guest (add + commit)")
    print(f"sent {sent}: {sent / sending:.0f} messages/s, {sending / sent * 1000:.1f} ms each; "
          f"server got {len(handler.ids)} distinct, each once: {once}")


if __name__ == "__main__":
    main()
