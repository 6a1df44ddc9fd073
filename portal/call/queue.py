"""The Redis message queue between web workers, with messages for one socket sent only to the
worker that holds it.

python-socketio's RedisManager publishes every emit on one channel that every worker reads
and decodes, so with N workers each relayed `signal` is decoded N times (measured: two workers
relayed less than one). Here each socket's id names its worker ("<tag>.<random>"), so an emit
to one socket is sent on the spot if the socket is here, or published on that worker's own
channel; emits to rooms, disconnects and the rest take the shared channel as before.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import socketio as python_socketio
from socketio.base_manager import ValueDuplicationError  # python-socketio's (bidict's)

_SID = re.compile(r"([0-9a-f]{8})\.[A-Za-z0-9_-]+\Z")


class DirectRedisManager(python_socketio.RedisManager):
    def __init__(self, url: str, channel: str, **kwargs: Any) -> None:
        super().__init__(url, channel=channel, **kwargs)
        self.tag = self.host_id[:8]

    def direct_channel(self, tag: str) -> str:
        return f"{self.channel}.{tag}"

    def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        # As the base class, with the socket's id prefixed by this worker's tag.
        sid = f"{self.tag}.{self.server.eio.generate_id()}"
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None  # already connected
        self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        return sid

    def emit(self, event: str, data: Any, namespace: str | None = None, room: Any = None,
             skip_sid: Any = None, callback: Any = None, to: Any = None, **kwargs: Any) -> Any:
        room = to or room
        match = _SID.match(room) if isinstance(room, str) else None
        if match is None or callback is not None or kwargs.get("ignore_queue"):
            return super().emit(event, data, namespace=namespace, room=room,
                                skip_sid=skip_sid, callback=callback, **kwargs)
        namespace = namespace or "/"
        if match.group(1) == self.tag:  # here, or gone: nobody else has it
            return python_socketio.Manager.emit(self, event, data, namespace, room=room,
                                                skip_sid=skip_sid)
        payload = list(data) if isinstance(data, tuple) else [data]
        if python_socketio.packet.Packet.data_is_binary(payload):
            return super().emit(event, data, namespace=namespace, room=room,
                                skip_sid=skip_sid, **kwargs)
        self._publish({"method": "emit", "event": event, "data": payload, "binary": False,
                       "namespace": namespace, "room": room, "skip_sid": skip_sid,
                       "callback": None, "host_id": self.host_id},
                      channel=self.direct_channel(match.group(1)))
        return None

    def _publish(self, data: Any, channel: str | None = None) -> Any:
        # As RedisManager._publish (two attempts, reconnecting between), on a chosen channel.
        for attempt in (1, 2):
            try:
                if not self.connected:  # type: ignore[has-type]
                    self._redis_connect()
                return self.redis.publish(channel or self.channel, self.json.dumps(data))
            except Exception as exc:  # noqa: BLE001 - redis-py raises many kinds
                self._get_logger().error("Cannot publish to redis (attempt %d): %s",
                                         attempt, exc)
                self.connected = False
        return None

    def _listen(self) -> Iterator[Any]:
        # As RedisManager._listen, on the shared channel and this worker's own.
        channels = {self.channel.encode(), self.direct_channel(self.tag).encode()}
        retry = 1
        subscribed = False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(*(c.decode() for c in channels))
                    subscribed, retry = True, 1
                for message in self.pubsub.listen():
                    if (message["channel"] in channels and message["type"] == "message"
                            and "data" in message):
                        yield message["data"]
            except Exception as exc:  # noqa: BLE001 - as the library: retry, slower each time
                self._get_logger().error("Cannot receive from redis, retrying in %d s: %s",
                                         retry, exc)
                subscribed = False
                time.sleep(retry)
                retry = min(retry * 2, 60)
