"""A real portal for tests: `python app.py` in a subprocess on a copy of the migrated SQLite
template, on a free port, with data made in-process through the services.

Fixtures (in tests/e2e/conftest.py, built on `running`):

* `live_portal` — a fresh server for one test. Its reconnect grace period is 5 s unless the test
  says otherwise with `@pytest.mark.live_portal(grace_seconds=2)` (other keywords: `env`, a dict
  of extra environment variables for the server).
* `live_portal_module` — one server shared by the tests of a module (cheaper; make your own
  host and appointment in each test).
* `live_portal_factory` — `live_portal_factory(grace_seconds=..., env=...)` starts one more.

A `LivePortal` offers `base_url`, `create_host()`, `book_consult(host, guests=[...])` (an
appointment starting now, with invite tokens and URLs), `login_cookie(host)` (the session cookie
of a signed-in host, as a `Cookie:` header value), `playwright_cookies(host)` (for
`context.add_cookies`), `host_client()/guest_client()` (connected python-socketio clients
that queue everything they receive), `get_appointment()`, `stderr()`, `kill()` (SIGKILL).
`into_call(live, consult)` brings a host and an admitted guest into the call.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import engineio.packet
import pytest
import requests
import socketio
from flask import Flask
from sqlalchemy import select

from portal import PROJECT_ROOT, create_app
from portal.accounts import services as accounts
from portal.appointments import services as appointments
from portal.extensions import db
from portal.models import (
    Appointment,
    Kind,
    Participant,
    ParticipantRole,
    RecordingPolicy,
    Role,
    User,
)

LIVE_SECRET_KEY = "live-test-secret-key-0123456789abcdef"
LIVE_PASSWORD = "correct horse battery staple"
DEFAULT_GRACE_SECONDS = 5
STARTUP_TIMEOUT = 30.0
#: How long the socket helpers wait for an expected event.
WAIT = 5.0
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
#: The cheapest valid argon2id parameters: tests hash passwords by the hundred.
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8, "ARGON2_PARALLELISM": 1}
#: The networks the tests' recorder may contact (PORTAL_RECORDER_ALLOW_ADDRESSES): WebRTC in the
#: tests stays on loopback.
LOOPBACK = ("127.0.0.0/8", "::1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Host:
    id: int
    email: str
    name: str
    password: str = LIVE_PASSWORD


@dataclass
class GuestInvite:
    participant_id: int
    name: str
    role: str
    token: str
    url: str


@dataclass
class Consult:
    appointment_id: int
    host: Host
    guests: list[GuestInvite]
    #: The host's page for the call.
    call_url: str

    @property
    def guest(self) -> GuestInvite:
        return self.guests[0]


class SignalClient:
    """A python-socketio client over the websocket transport that queues every event it gets.

    `wait_for(name)` returns the payload of the next event of that name (events of other names
    stay queued for later calls); `history` keeps everything in arrival order.
    """

    def __init__(self, base_url: str, *, cookie: str | None = None,
                 auth: dict[str, Any] | None = None, label: str = "client") -> None:
        self.base_url = base_url
        self.cookie = cookie
        self.auth = auth
        self.label = label
        self.sio = socketio.Client(reconnection=False, logger=False, engineio_logger=False)
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._backlog: list[tuple[str, Any]] = []
        self.history: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        #: The first `welcome` (also left in the queue for wait_for).
        self.welcome: dict[str, Any] | None = None
        self._welcomed = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reason: Any = None

        @self.sio.on("*")
        def _any(event: str, *args: Any) -> None:
            payload = args[0] if len(args) == 1 else (list(args) if args else None)
            self.history.append((event, payload))
            if event == "welcome" and self.welcome is None:
                self.welcome = payload
                self._welcomed.set()
            self._inbox.put((event, payload))

        @self.sio.event
        def connect_error(data: Any) -> None:
            self.connect_error = data

        @self.sio.event
        def disconnect(reason: Any = None) -> None:
            self.disconnect_reason = reason
            self.disconnected.set()

    def connect(self, *, expect_refusal: bool = False) -> SignalClient:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        try:
            self.sio.connect(self.base_url, headers=headers, auth=self.auth,
                             transports=["websocket"], wait_timeout=WAIT)
        except socketio.exceptions.ConnectionError as exc:
            if not expect_refusal:
                raise AssertionError(
                    f"{self.label}: connect refused: {exc} {self.connect_error!r}") from exc
            return self
        if expect_refusal:
            raise AssertionError(f"{self.label}: connect was accepted, expected a refusal")
        return self

    @property
    def id(self) -> Any:
        """This participant's id, from `welcome` (waits for it)."""
        assert self._welcomed.wait(WAIT), f"{self.label}: no welcome; got {self.history!r}"
        assert self.welcome is not None
        return self.welcome["self"]["id"]

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected)

    def emit(self, event: str, payload: Any = None) -> None:
        if payload is None:
            self.sio.emit(event)
        else:
            self.sio.emit(event, payload)

    def wait_for(self, event: str, predicate: Callable[[Any], bool] | None = None,
                 timeout: float = WAIT) -> Any:
        """The payload of the next `event` (that satisfies predicate); fails after timeout."""
        for i, (name, payload) in enumerate(self._backlog):
            if name == event and (predicate is None or predicate(payload)):
                del self._backlog[i]
                return payload
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.label}: no {event!r} within {timeout} s; received {self.history!r}")
            try:
                name, payload = self._inbox.get(timeout=left)
            except queue.Empty:
                continue
            if name == event and (predicate is None or predicate(payload)):
                return payload
            self._backlog.append((name, payload))

    def pending(self, within: float = 0.0) -> list[tuple[str, Any]]:
        """Everything received and not yet taken by wait_for, after waiting `within` s."""
        if within:
            time.sleep(within)
        while True:
            try:
                self._backlog.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return list(self._backlog)

    def assert_none(self, event: str, within: float = 0.5) -> None:
        """Fail if an `event` arrives (or already arrived unconsumed) within this time."""
        got = [p for name, p in self.pending(within) if name == event]
        assert not got, f"{self.label}: unexpected {event!r}: {got!r}"

    def mute_pongs(self) -> threading.Event:
        """Stop answering the server's pings, as a client whose answers arrive too late does;
        the event is set when the first unanswered ping arrives."""
        pinged = threading.Event()
        eio = self.sio.eio
        send = eio._send_packet

        def send_but_pongs(pkt: Any) -> None:
            if pkt.packet_type == engineio.packet.PONG:
                pinged.set()
                return
            send(pkt)

        eio._send_packet = send_but_pongs
        return pinged

    def _disconnect_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.sio.disconnect()

    def goodbye(self) -> None:
        """Disconnect cleanly (Socket.IO disconnect packet, then the websocket closes), as a
        page that is closed or reloaded does. Returns once the client has let go.

        python-socketio's disconnect() then waits ~3 s for websocket-client's close handshake
        (its read thread swallows the server's close frame); that wait runs in a thread here.
        """
        if not self.sio.connected:
            return
        threading.Thread(target=self._disconnect_quietly, daemon=True).start()
        assert self.disconnected.wait(WAIT), f"{self.label} could not disconnect"

    def drop(self) -> None:
        """The connection breaks: the TCP connection goes away without any goodbye."""
        ws = getattr(self.sio.eio, "ws", None)
        assert ws is not None, f"{self.label} is not on the websocket transport"
        raw = getattr(ws, "sock", None)
        assert raw is not None, f"{self.label} has no socket"
        # shutdown(), unlike close(), wakes the client's reading thread; the server sees the
        # connection end without a Socket.IO or WebSocket goodbye.
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
        assert self.disconnected.wait(WAIT), f"{self.label} did not notice the drop"

    def close(self) -> None:
        if self.sio.connected:
            with contextlib.suppress(AssertionError):
                self.goodbye()
        # A connection the server closed (or drop() broke) still holds its TCP socket.
        ws = getattr(self.sio.eio, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close(timeout=0)
            raw = getattr(ws, "sock", None)
            if raw is not None:
                with contextlib.suppress(OSError):
                    raw.close()


@dataclass
class LivePortal:
    base_url: str
    database_url: str
    grace_seconds: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    app: Flask
    env: dict[str, str] = field(default_factory=dict)
    clients: list[SignalClient] = field(default_factory=list)

    @property
    def recordings_dir(self) -> Path:
        return Path(self.env["PORTAL_RECORDINGS_DIR"])

    def flask(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`flask --app app ARGS` against this portal's database, keys and recordings."""
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "flask", "--app", "app", *args], cwd=PROJECT_ROOT,
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def restart(self) -> None:
        """Start the server again on the same database and files (after stop or a kill)."""
        if self.process.poll() is None:
            self.stop()
        with self.stderr_path.open("ab") as err:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, str(PROJECT_ROOT / "app.py")], cwd=PROJECT_ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                start_new_session=True)
        _wait_until_healthy(self)

    # -- data, made in-process against the same SQLite file (WAL) ---------------------------

    def create_host(self, email: str | None = None, name: str = "Dr. Live Host",
                    password: str = LIVE_PASSWORD, role: Role = Role.HOST) -> Host:
        email = email or f"host-{uuid.uuid4().hex[:10]}@example.org"
        with self.app.app_context():
            user, _ = accounts.create_user(email, name, role, password)
            user.must_change_password = False
            db.session.commit()
            return Host(user.id, email, name, password)

    def book_consult(self, host: Host, guests: Sequence[str | tuple[str, ParticipantRole]] = (
            "Pat Guest",), *, title: str = "Live consult", minutes: int = 60,
            kind: Kind = Kind.CONSULT, starts_in: timedelta = timedelta(0),
            policy: RecordingPolicy = RecordingPolicy.CONSENT) -> Consult:
        """An appointment starting now (on the whole minute) with these guests invited."""
        with self.app.app_context():
            user = db.session.get(User, host.id)
            assert user is not None
            starts = (datetime.now(UTC) + starts_in).replace(second=0, microsecond=0)
            appointment = appointments.book(user, kind=kind, title=title, starts_at=starts,
                                            duration_minutes=minutes, recording_policy=policy)
            made: list[tuple[Participant, str]] = []
            for spec in guests:
                name, role = (spec, ParticipantRole.PATIENT) if isinstance(spec, str) else spec
                made.append(appointments.add_guest(appointment, display_name=name, role=role))
            db.session.commit()
            invites = [GuestInvite(p.id, p.display_name, p.role.value, token,
                                   f"{self.base_url}/j/{token}") for p, token in made]
            return Consult(appointment.id, host, invites,
                           f"{self.base_url}/appointments/{appointment.id}/call")

    def add_guest(self, appointment_id: int, name: str = "Another Guest",
                  role: ParticipantRole = ParticipantRole.PATIENT) -> GuestInvite:
        with self.app.app_context():
            appointment = db.session.get(Appointment, appointment_id)
            assert appointment is not None
            guest, token = appointments.add_guest(appointment, display_name=name, role=role)
            db.session.commit()
            return GuestInvite(guest.id, guest.display_name, guest.role.value, token,
                               f"{self.base_url}/j/{token}")

    def in_session(self, appointment_id: int) -> None:
        """A hearing already started, for tests of the media path (no one receives before)."""
        from portal.models import HearingStage, Place
        with self.app.app_context():
            appointment = db.session.get(Appointment, appointment_id)
            assert appointment is not None
            appointment.hearing_stage = HearingStage.IN_SESSION
            for p in appointment.participants:
                p.place = Place.HEARING
            db.session.commit()

    def get_appointment(self, appointment_id: int) -> Appointment:
        """A detached copy of the appointment as the server stored it."""
        with self.app.app_context():
            appointment = db.session.get(Appointment, appointment_id)
            assert appointment is not None
            db.session.expunge(appointment)
            db.session.rollback()
            return appointment

    def participants(self, appointment_id: int) -> list[Participant]:
        with self.app.app_context():
            rows = list(db.session.scalars(select(Participant).where(
                Participant.appointment_id == appointment_id).order_by(Participant.id)))
            db.session.expunge_all()
            db.session.rollback()
            return rows

    # -- HTTP -----------------------------------------------------------------------------

    def login_session(self, host: Host) -> requests.Session:
        """A requests session signed in as this host (GET /login, POST with the CSRF token)."""
        http = requests.Session()
        page = http.get(f"{self.base_url}/login", timeout=WAIT)
        match = CSRF_RE.search(page.text)
        assert page.status_code == 200 and match, f"no login form: {page.status_code}"
        response = http.post(f"{self.base_url}/login", timeout=WAIT, allow_redirects=False,
                             data={"csrf_token": match.group(1), "email": host.email,
                                   "password": host.password})
        assert response.status_code == 302, (response.status_code, response.text[:500])
        assert http.cookies.get("session"), "the sign-in set no session cookie"
        return http

    def login_cookies(self, host: Host) -> dict[str, str]:
        with self.login_session(host) as http:  # closed: no socket left for the GC to warn of
            return dict(http.cookies.items())

    def login_cookie(self, host: Host) -> str:
        """The signed-in host's cookies as a `Cookie:` header value."""
        return "; ".join(f"{k}={v}" for k, v in self.login_cookies(host).items())

    def playwright_cookies(self, host: Host) -> list[dict[str, Any]]:
        """For Playwright's `context.add_cookies(...)`."""
        return [{"name": k, "value": v, "url": self.base_url}
                for k, v in self.login_cookies(host).items()]

    # -- Socket.IO --------------------------------------------------------------------------

    def client(self, *, cookie: str | None = None, auth: dict[str, Any] | None = None,
               label: str = "client", connect: bool = True) -> SignalClient:
        made = SignalClient(self.base_url, cookie=cookie, auth=auth, label=label)
        self.clients.append(made)
        return made.connect() if connect else made

    def host_client(self, consult: Consult, *, cookie: str | None = None,
                    label: str = "host", connect: bool = True) -> SignalClient:
        return self.client(cookie=cookie or self.login_cookie(consult.host),
                           auth={"appointment": consult.appointment_id}, label=label,
                           connect=connect)

    def guest_client(self, invite: GuestInvite | str, *, label: str = "guest",
                     connect: bool = True) -> SignalClient:
        token = invite if isinstance(invite, str) else invite.token
        return self.client(auth={"invite": token}, label=label, connect=connect)

    # -- the process ----------------------------------------------------------------------

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def close_clients(self) -> None:
        for made in self.clients:
            made.close()
        self.clients.clear()

    def kill(self) -> None:
        """SIGKILL to the server's master and worker at once, as a crash of the machine."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as an operator's clean stop; a server that hangs is killed."""
        self.close_clients()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        # A worker the master left behind would keep the port.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with self.app.app_context():
            db.engine.dispose()


def self_id(client: SignalClient) -> Any:
    """The participant id the portal's welcome gives this client."""
    return client.wait_for("welcome")["self"]["id"]


def into_call(live: LivePortal, consult: Consult, host: SignalClient | None = None,
              guest_index: int = 0) -> tuple[SignalClient, SignalClient, Any, Any]:
    """Host (in the call) admits the guest, who joins; returns both clients and their ids."""
    if host is None:
        host = live.host_client(consult)
        host.wait_for("welcome")
        host.emit("call:join", {"resume": False, "declaration": True})
        host.wait_for("call:joined")
    host_id = host.id
    guest = live.guest_client(consult.guests[guest_index], label=f"guest{guest_index}")
    guest_id = self_id(guest)
    guest.emit("lobby:join", {})
    assert guest.wait_for("lobby:state") == {"state": "waiting"}
    host.wait_for("lobby:list", lambda p: guest_id in [w["id"] for w in p["waiting"]])
    host.emit("lobby:admit", {"participant_id": guest_id})
    assert guest.wait_for("lobby:state")["state"] == "admitted"
    guest.emit("call:join", {"resume": False, "declaration": True})
    joined = guest.wait_for("call:joined")
    assert host_id in [p["id"] for p in joined["peers"]]
    host.wait_for("call:peer-joined", lambda p: p["peer"]["id"] == guest_id)
    return host, guest, host_id, guest_id


def _server_env(database_url: str, port: int, grace_seconds: int,
                extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    env.update({
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_SECRET_KEY": LIVE_SECRET_KEY,
        "PORTAL_MFA_KEY": LIVE_SECRET_KEY,
        "PORTAL_COOKIE_SECURE": "false",
        "PORTAL_HOST": "127.0.0.1",
        "PORTAL_PORT": str(port),
        "PORTAL_RECONNECT_GRACE_SECONDS": str(grace_seconds),
        "PORTAL_RATELIMIT_STORAGE_URI": "memory://",
        # Tests sign in often, all from 127.0.0.1.
        "PORTAL_LOGIN_RATE_LIMIT": "1000 per minute",
        "PORTAL_INVITE_RATE_LIMIT": "1000 per minute",
        "PORTAL_SOCKET_CONNECT_RATE_LIMIT": "1000 per minute",
        # WebRTC runs on loopback only (tests/netns.py): the recorder may answer there.
        "PORTAL_RECORDER_ALLOW_ADDRESSES": ",".join(LOOPBACK),
        # Its media in one recorder worker process (test_recording_workers.py runs two).
        "PORTAL_RECORDER_WORKERS": "1",
        "PORTAL_DEFAULT_TIMEZONE": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **{f"PORTAL_{name}": str(value) for name, value in CHEAP_ARGON2.items()},
    })
    env.update(extra or {})
    return env


def _wait_until_healthy(live: LivePortal, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if live.process.poll() is not None:
            pytest.fail(f"the live portal exited with {live.process.returncode} before it "
                        f"answered /healthz; its stderr:\n{live.stderr()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{live.base_url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    live.stop()
    pytest.fail(f"the live portal did not answer /healthz within {timeout} s ({last}); its "
                f"stderr:\n{live.stderr()}", pytrace=False)


def start_live_portal(template: Path, workdir: Path, *,
                      grace_seconds: int = DEFAULT_GRACE_SECONDS,
                      env: dict[str, str] | None = None) -> LivePortal:
    """Copy the template database, start `python app.py` on it and wait for /healthz."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / f"live-{uuid.uuid4().hex[:8]}.sqlite3"
    shutil.copy(template, db_path)
    database_url = f"sqlite:///{db_path}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    files = workdir / f"files-{port}"
    env = _server_env(database_url, port, grace_seconds, {
        "PORTAL_RECORDINGS_DIR": str(files / "recordings"),
        "PORTAL_RECORDING_KEYS_DIR": str(files),
        "PORTAL_RECORDING_HEARTBEAT_SECONDS": "1",
        **(env or {})})
    setup_app = create_app({
        "TESTING": True, "SECRET_KEY": LIVE_SECRET_KEY, "MFA_KEY": LIVE_SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "RATELIMIT_STORAGE_URI": "memory://", "BABEL_DEFAULT_TIMEZONE": "UTC",
        "BASE_URL": base_url, "RECONNECT_GRACE_SECONDS": grace_seconds,
        "RECORDINGS_DIR": env["PORTAL_RECORDINGS_DIR"], "RECORDING_KEYS_DIR": str(files),
        "RECORDER_ALLOW_ADDRESSES": list(LOOPBACK), **CHEAP_ARGON2,
    })
    stderr_path = workdir / f"server-{port}.stderr"
    with stderr_path.open("wb") as err:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(PROJECT_ROOT / "app.py")], cwd=PROJECT_ROOT,
            env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
            start_new_session=True)  # gunicorn: a master and its worker, killed together
    live = LivePortal(base_url, database_url, grace_seconds, process, stderr_path, setup_app,
                      env)
    _wait_until_healthy(live)
    return live


@contextlib.contextmanager
def running(request: pytest.FixtureRequest, template: Path, workdir: Path,
            **options: Any) -> Iterator[LivePortal]:
    """A live portal until the block ends; its stderr is printed if a test failed meanwhile."""
    failed_before = request.session.testsfailed
    live = start_live_portal(template, workdir, **options)
    try:
        yield live
    finally:
        live.stop()
        if request.session.testsfailed > failed_before:
            sys.stderr.write(f"\n----- live portal {live.base_url} stderr -----\n"
                             f"{live.stderr()}\n----- end of live portal stderr -----\n")
