"""A real SMTP server for the e-mail tests: aiosmtpd on 127.0.0.1, keeping what it accepts.
`hold()` makes it wait at the next MAIL FROM (before any message data), so a test can kill the
sender at a known point between two messages."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from icalendar import Calendar


@dataclass
class Received:
    envelope_to: list[str]
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode(part.get_content_charset() or "utf-8")
        raise AssertionError(f"no {content_type} part")

    @property
    def text(self) -> str:
        return self.part("text/plain")

    @property
    def html(self) -> str:
        return self.part("text/html")

    def calendar(self) -> Calendar:
        return Calendar.from_ical(self.part("text/calendar"))


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    gate: threading.Event = field(default_factory=threading.Event)
    #: How many MAIL FROM commands wait at the gate now.
    held: int = 0
    #: Once this many messages are in, the gate closes by itself (hold_after).
    hold_at: int | None = None

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        with self.changed:
            if self.hold_at is not None and len(self.received) >= self.hold_at:
                self.hold_at = None
                self.gate.clear()
        if not self.gate.is_set():
            with self.changed:
                self.held += 1
                self.changed.notify_all()
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
            with self.changed:
                self.held -= 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.changed:
            self.received.append(Received(list(envelope.rcpt_tos), parsed))
            self.changed.notify_all()
        return "250 Message accepted for delivery"


class Mailbox:
    """The server and what it received."""

    def __init__(self, port: int, **server: Any) -> None:
        self.port = port
        self.handler = Handler()
        self.server = server  # aiosmtpd's options: tls_context, authenticator, ...
        self._controller: Controller | None = None

    def start(self) -> Mailbox:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                      ready_timeout=10, **self.server)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self.handler.gate.set()
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        with self.handler.changed:
            return list(self.handler.received)

    def config(self) -> dict[str, Any]:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": self.port, "SMTP_SECURITY": "none",
                "SMTP_FROM": "Samtale <no-reply@samtale.test>", "SMTP_TIMEOUT_SECONDS": 10}

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """Until the server holds at least `count` messages."""
        deadline = time.monotonic() + timeout
        with self.handler.changed:
            while len(self.handler.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.handler.received)} messages, not {count}"
                self.handler.changed.wait(left)
            return list(self.handler.received)

    def hold(self) -> None:
        """The next MAIL FROM waits until release()."""
        self.handler.gate.clear()

    def hold_after(self, count: int) -> None:
        """The MAIL FROM after `count` messages waits until release()."""
        with self.handler.changed:
            self.handler.hold_at = count

    def wait_held(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with self.handler.changed:
            while self.handler.held == 0:
                left = deadline - time.monotonic()
                assert left > 0, "no sender reached MAIL FROM"
                self.handler.changed.wait(left)

    def release(self) -> None:
        self.handler.gate.set()


def tls_for_loopback(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA of its own (its certificate written to folder/ca.pem, for the client to trust) and
    a server context whose certificate that CA signed for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Samtale test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
              encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return ca_path, context


def password_check(login: str, password: str) -> Any:
    """An aiosmtpd authenticator that accepts this one account."""

    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == login.encode() \
            and data.password == password.encode()
        return AuthResult(success=ok, handled=False)

    return check
