"""Notices every web worker must act on (close these sockets, check those again), passed
between workers through Redis when there are several, or handled in-process when there is one.

Socket.IO's own message queue carries emits to rooms, but nothing that runs server-side code
on the other workers, so a stopped link or a sign-out would reach only the sockets of the
worker that handled it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], None]


class Fanout:
    """send(message) runs handle(message) here at once and on every other worker soon."""

    def __init__(self, handle: Handler, url: str | None = None, channel: str = "samtale",
                 max_connections: int = 100) -> None:
        self.handle = handle
        self.max_connections = max_connections
        self.url = url
        self.channel = f"{channel}:notices"
        self.origin = uuid.uuid4().hex
        self._redis: Any = None
        self._lock = threading.Lock()
        self._listening = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.handle(message)
        if self.url:
            self._client().publish(self.channel, json.dumps({**message, "origin": self.origin}))

    def start(self) -> None:
        """Listen for the other workers' notices (once per process; no-op with one worker).
        Subscribes before returning, so no notice sent after a socket connects is missed."""
        if not self.url:
            return
        with self._lock:
            if self._listening.is_set():
                return
            self._listening.set()
        pubsub = self._subscribe()
        threading.Thread(target=self._listen, args=(pubsub,), name="samtale-fanout",
                         daemon=True).start()

    def _client(self) -> Any:
        """For publishing: a Redis that hangs must not hold up the request that publishes."""
        import redis

        with self._lock:
            if self._redis is None:
                self._redis = redis.Redis.from_url(self.url or "", socket_timeout=5,
                                                   socket_connect_timeout=5,
                                                   max_connections=self.max_connections)
            return self._redis

    def _subscribe(self) -> Any:
        import redis

        try:  # its own connection, which may wait for a message as long as it takes
            listener = redis.Redis.from_url(self.url or "", socket_connect_timeout=5,
                                            health_check_interval=30)
            pubsub = listener.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.channel)
            return pubsub
        except Exception:
            log.exception("subscribing to other workers' notices failed; retrying")
            return None

    def _listen(self, pubsub: Any) -> None:
        while True:
            if pubsub is None:
                time.sleep(1.0)
                pubsub = self._subscribe()
                continue
            try:
                for raw in pubsub.listen():
                    self._received(raw)
            except Exception:  # Redis restarted or unreachable: subscribe again
                log.exception("listening for other workers' notices failed; retrying")
                pubsub = None

    def _received(self, raw: dict[str, Any]) -> None:
        try:
            message = json.loads(raw["data"])
            if message.pop("origin", None) != self.origin:
                self.handle(message)
        except Exception:
            log.exception("handling another worker's notice failed")
