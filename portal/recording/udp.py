"""The recorder's UDP sockets: receive buffers sized for bursts, and the kernel's drop counters.

When the recorder's loop falls behind, datagrams wait in the socket's receive buffer; once it
is full the kernel drops them and counts each drop on the socket (the `drops` column of
/proc/net/udp and /proc/net/udp6, per socket inode, in the reader's network namespace). Those
drops are media the recording never saw, so loss.py counts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024  # bytes: about 20 s of one 1.5 Mbit/s call, 1 s of 20
PROC = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


def size_receive_buffer(sock: Any, size: int = RECEIVE_BUFFER) -> int:
    """Ask for a receive buffer of `size` bytes; returns what the kernel granted.

    SO_RCVBUFFORCE passes net.core.rmem_max when the process may (CAP_NET_ADMIN); otherwise
    SO_RCVBUF gets at most rmem_max (raise it with sysctl for many recordings per process).
    """
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            log.warning("cannot size a receive buffer: %s", exc)
    # Linux reports twice what was asked (the bookkeeping share); never less than the default.
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def inode(sock: Any) -> int:
    """The socket's inode: its key in /proc/net/udp."""
    return os.fstat(sock.fileno()).st_ino


def _table() -> list[list[str]]:
    rows = []
    for path in PROC:
        try:
            lines = path.read_text().splitlines()[1:]
        except OSError:  # no /proc (or no IPv6): nothing to read, nothing counted
            continue
        # sl local rem st tx_queue:rx_queue tr:when retr uid timeout inode ref pointer drops
        rows += [fields for line in lines if len(fields := line.split()) >= 13]
    return rows


def drops_by_inode() -> dict[int, int]:
    """The kernel's drop count of every UDP socket in this network namespace, by inode."""
    return {int(fields[9]): int(fields[12]) for fields in _table()}


def unread(inodes: Iterable[int]) -> int:
    """Bytes waiting in these sockets' receive queues (not read yet by the recorder)."""
    wanted = set(inodes)
    return sum(int(fields[4].split(":")[1], 16) for fields in _table()
               if int(fields[9]) in wanted)


async def catch_up(inodes: Iterable[int], timeout: float) -> int:
    """Let the loop read what waits in these sockets (sent before a stop, by a sender the
    recorder runs behind); the bytes still unread after `timeout`."""
    wanted = list(inodes)
    deadline = time.monotonic() + timeout
    while (left := unread(wanted)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


def drops(inodes: Iterable[int]) -> int:
    """The kernel's drop count summed over these sockets."""
    counts = drops_by_inode()
    return sum(counts.get(i, 0) for i in inodes)


def peer_sockets(pc: Any) -> list[Any]:
    """The UDP sockets aioice opened for an aiortc peer connection (after its gathering)."""
    found: dict[int, Any] = {}
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport  # RTCDtlsTransport -> RTCIceTransport
        for protocol in getattr(ice._connection, "_protocols", []):
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                found[sock.fileno()] = sock
    return list(found.values())
