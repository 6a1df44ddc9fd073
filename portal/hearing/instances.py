"""The Janus instances this process talks to: one client per instance, kept connected.

`clients(app)` is the app's `JanusPool` (app.extensions["janus"]). The pool connects lazily,
in the process that uses it (a forked worker starts afresh: threads do not survive a fork);
from the first connection on, a supervisor thread reconnects an instance that was lost, with
backoff (JANUS_RETRY_SECONDS, doubling up to MAX_RETRY). Listeners hear of every event Janus sends
(on the client's reader thread: be quick), of an instance lost and of one back (on the
supervisor thread): a Janus restart ends its rooms, and whoever made them makes them again.
Each hearing is pinned to one instance (Appointment.janus_url); `choose()` picks the reachable
instance with the fewest live hearings pinned to it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db
from portal.hearing import config
from portal.hearing.janus import JanusClient, JanusError, JanusGone
from portal.models import Appointment, Status

log = logging.getLogger(__name__)

MAX_RETRY = 30.0
EventListener = Callable[[str, int, dict[str, Any]], None]
UrlListener = Callable[[str], None]


@dataclass
class _Instance:
    url: str
    client: JanusClient | None = None
    lost: bool = False  # on_lost was told, on_back not yet
    failures: int = 0
    next_try: float = 0.0
    connecting: threading.Lock = field(default_factory=threading.Lock)


def live_hearings(url: str) -> int:
    """Live appointments pinned to this instance (none before Appointment.janus_url exists)."""
    column = getattr(Appointment, "janus_url", None)
    if column is None:
        return 0
    return int(db.session.scalar(select(func.count()).select_from(Appointment).where(
        column == url, Appointment.status == Status.LIVE)) or 0)


class JanusPool:
    """One JanusClient per configured instance, for this process."""

    def __init__(self, urls: list[str], api_secret: str, *, timeout: float = 10.0,
                 keepalive: float = 25.0, retry: float = 2.0, max_retry: float = MAX_RETRY,
                 clock: Callable[[], float] = time.monotonic,
                 load: Callable[[str], int] = live_hearings, supervise: bool = True) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.keepalive = keepalive
        self.retry = retry
        self.max_retry = max_retry
        self._secret = api_secret
        self._clock = clock
        self._load = load
        self._supervise = supervise
        self._lock = threading.Lock()
        self._instances = {url: _Instance(url) for url in self.urls}
        self._notices: list[tuple[str, str]] = []  # ("lost" | "back", url), for the supervisor
        self._on_event: list[EventListener] = []
        self._on_lost: list[UrlListener] = []
        self._on_back: list[UrlListener] = []
        self._wake = threading.Event()
        self._closed = False
        self._supervisor: threading.Thread | None = None
        # gunicorn makes the app, then forks the worker: the worker starts afresh.
        os.register_at_fork(after_in_child=partial(_forked, weakref.ref(self)))

    @classmethod
    def from_app(cls, app: Flask) -> JanusPool:
        urls = config.urls(app)
        return cls(urls, config.api_secret(app) if urls else "",
                   timeout=float(app.config.get("JANUS_TIMEOUT_SECONDS", 10)),
                   keepalive=float(app.config.get("JANUS_KEEPALIVE_SECONDS", 25)),
                   retry=float(app.config.get("JANUS_RETRY_SECONDS", 2)))

    # --- what callers use -------------------------------------------------------------------

    def listen(self, on_event: EventListener | None = None, on_lost: UrlListener | None = None,
               on_back: UrlListener | None = None) -> None:
        """on_event(url, handle, message): every message no request waited for (reader
        thread); on_lost(url): a connected instance went away; on_back(url): a lost instance is
        connected again (its rooms are gone). Both of these on the supervisor thread."""
        with self._lock:
            if on_event:
                self._on_event.append(on_event)
            if on_lost:
                self._on_lost.append(on_lost)
            if on_back:
                self._on_back.append(on_back)

    @property
    def configured(self) -> bool:
        return bool(self.urls)

    @property
    def available(self) -> bool:
        """Whether any instance is connected or can be connected now."""
        for url in self.urls:
            try:
                self.client(url)
            except JanusGone:
                continue
            return True
        return False

    def client(self, url: str) -> JanusClient:
        """The live client of this instance, connected now if need be. JanusGone if it is not
        one of ours, unreachable, or waiting out its backoff."""
        instance = self._instances.get(url)
        if instance is None:
            raise JanusGone(f"{url} is not one of this portal's Janus instances")
        self._start()
        found = instance.client
        if found is not None and found.alive:
            return found
        return self._connect(instance)

    def choose(self) -> str:
        """The reachable instance with the fewest live hearings pinned to it (the first listed
        on a tie). JanusGone when none is reachable."""
        reachable = []
        for url in self.urls:
            try:
                self.client(url)
            except JanusGone:
                continue
            reachable.append(url)
        if not reachable:
            raise JanusGone("no Janus instance is reachable" if self.urls
                            else "no Janus instance is configured (PORTAL_JANUS_URLS)")
        return min(reachable, key=lambda url: (self._load(url), reachable.index(url)))

    def close(self) -> None:
        """Stop the supervisor and close every client (no listener is told)."""
        with self._lock:
            self._closed = True
            clients = [i.client for i in self._instances.values() if i.client is not None]
        self._wake.set()
        for made in clients:
            made.close()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=self.timeout + 1)

    # --- connecting -------------------------------------------------------------------------

    def _connect(self, instance: _Instance) -> JanusClient:
        with instance.connecting:  # one attempt at a time per instance
            found = instance.client
            if found is not None and found.alive:
                return found
            wait = instance.next_try - self._clock()
            if wait > 0:
                raise JanusGone(f"Janus at {instance.url} is unreachable; next try in {wait:.0f} s")
            made = JanusClient(instance.url, self._secret, timeout=self.timeout,
                               keepalive=self.keepalive,
                               on_event=partial(self._event, instance.url),
                               on_close=partial(self._lost, instance.url))
            try:
                made.connect()
            except JanusError as exc:
                instance.failures += 1
                backoff = min(self.retry * 2 ** (instance.failures - 1), self.max_retry)
                instance.next_try = self._clock() + backoff
                log.warning("Janus at %s: %s; next try in %.0f s", instance.url, exc, backoff)
                raise JanusGone(f"Janus at {instance.url} is unreachable: {exc.reason}") from exc
            with self._lock:
                if self._closed:
                    made.close()
                    raise JanusGone("the pool is closed")
                instance.client, instance.failures, instance.next_try = made, 0, 0.0
                if instance.lost:
                    instance.lost = False
                    self._notices.append(("back", instance.url))
            self._wake.set()
            log.info("Janus at %s: connected (session %s)", instance.url, made.session_id)
            return made

    def _event(self, url: str, handle: int, message: dict[str, Any]) -> None:
        for listener in list(self._on_event):
            try:
                listener(url, handle, message)
            except Exception:
                log.exception("a Janus event listener failed")

    def _lost(self, url: str, reason: str) -> None:
        """A client's on_close: mark the instance lost; the supervisor tells and reconnects."""
        log.warning("Janus at %s lost: %s", url, reason)
        instance = self._instances[url]
        with self._lock:
            if self._closed:
                return
            if not instance.lost:
                instance.lost = True
                self._notices.append(("lost", url))
            instance.next_try = self._clock()  # a restart is quick: try again at once
        self._wake.set()

    # --- the supervisor ---------------------------------------------------------------------

    def tick(self) -> float | None:
        """One round: tell the listeners what happened, reconnect lost instances whose time
        has come. Seconds until the next attempt is due, None if nothing waits."""
        with self._lock:
            notices, self._notices = self._notices, []
        for kind, url in notices:
            for listener in list(self._on_lost if kind == "lost" else self._on_back):
                try:
                    listener(url)
                except Exception:
                    log.exception("a Janus %s listener failed", kind)
        due: list[float] = []
        for instance in self._instances.values():
            if not instance.lost or self._closed:
                continue
            try:
                self.client(instance.url)
            except JanusGone:
                due.append(max(instance.next_try - self._clock(), 0.0))
        with self._lock:
            if self._notices:  # a reconnect just now: tell at once
                return 0.0
        return min(due) if due else None

    def _start(self) -> None:
        if not self._supervise or self._supervisor is not None or self._closed:
            return
        with self._lock:
            if self._supervisor is not None:
                return
            self._supervisor = threading.Thread(target=self._supervise_loop,
                                                name="janus-pool supervisor", daemon=True)
        self._supervisor.start()

    def _supervise_loop(self) -> None:
        while not self._closed:
            wait = self.tick()
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def _after_fork(self) -> None:
        """In a forked child: none of the parent's clients, threads or held locks."""
        self._lock = threading.Lock()
        self._instances = {url: _Instance(url) for url in self.urls}
        self._notices = []
        self._wake = threading.Event()
        self._supervisor = None


def _forked(pool: weakref.ref[JanusPool]) -> None:
    found = pool()
    if found is not None:
        found._after_fork()


def clients(app: Flask) -> JanusPool:
    """The app's pool of Janus clients (made at first use)."""
    found = app.extensions.get("janus")
    if found is None:
        found = app.extensions.setdefault("janus", JanusPool.from_app(app))
    assert isinstance(found, JanusPool)
    return found
