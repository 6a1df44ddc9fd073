"""Network namespaces for the WebRTC tests and benchmarks: media stays on loopback.

ICE gathers every interface of the machine, so a browser or aiortc peer on a machine with an
`eth0` would send media to that address. Inside a namespace this run makes itself, only `lo`
exists, plus for Janus a veth pair with 127.0.0.2/32 on one end (see ../shared/DESIGN.md).

`Namespace.entered()` moves the *calling thread* into the namespace (setns(2) is per thread).
Threads and processes started from it inherit it: the live portal (gunicorn), Playwright's
driver and its Chromium, aiortc's event-loop threads. Sockets opened before, such as a pooled
PostgreSQL connection, stay where they were made, so the rest of the suite is unaffected.

Making a namespace needs root (CI is root). Without it, `require_root()` says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
#: Janus's media address inside the namespace (its `interface` and `ice_enforce_list`), on a
#: veth end of its own: see ../shared/DESIGN.md ("Loopback").
JANUS_ADDRESS = "127.0.0.2"
JANUS_LINK = "janus0"
_libc = ctypes.CDLL(None, use_errno=True)

WHY_ROOT = (
    "The WebRTC tests (browser calls, aiortc peers, the recorder) run inside a network "
    "namespace that the test run creates, so that their media stays on loopback and never "
    "reaches this machine's other addresses. Creating one needs root (CI runs as root): run "
    "`sudo scripts/test`, or leave those tests out with "
    "`scripts/test -m \"not browser and not live and not webrtc\"`.")


def require_root() -> str | None:
    """None when namespaces can be made here, else the message to fail with."""
    if os.geteuid() != 0:
        return WHY_ROOT
    if subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0:
        return "`ip` (Debian's iproute2) is needed to make the test's network namespace."
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _sysctl(namespace: str, setting: str) -> None:
    done = subprocess.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", setting],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sysctl {setting} in {namespace}: {done.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@dataclass
class Namespace:
    name: str

    @classmethod
    def create(cls, prefix: str = "samtale-test") -> Namespace:
        """A new namespace with `lo` and the veth pair for Janus, up (and any left by a killed
        run removed)."""
        remove_orphans(prefix)
        namespace = cls(f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        _ip("netns", "add", namespace.name)
        try:
            _ip("-n", namespace.name, "link", "set", "lo", "up")
            namespace._add_janus_link()
        except Exception:
            namespace.remove()
            raise
        return namespace

    def _add_janus_link(self) -> None:
        """Janus (libnice) gathers no candidates on a loopback interface, and a `dummy` link
        does not work here: a veth pair, both ends inside, one with JANUS_ADDRESS/32, IPv6 off
        (no link-local addresses for ICE to offer)."""
        _ip("-n", self.name, "link", "add", JANUS_LINK, "type", "veth", "peer", "name",
            f"{JANUS_LINK}p")
        for link in (JANUS_LINK, f"{JANUS_LINK}p"):
            _sysctl(self.name, f"net.ipv6.conf.{link}.disable_ipv6=1")
        _ip("-n", self.name, "addr", "add", f"{JANUS_ADDRESS}/32", "dev", JANUS_LINK)
        for link in (JANUS_LINK, f"{JANUS_LINK}p"):
            _ip("-n", self.name, "link", "set", link, "up")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            _ip("netns", "del", self.name)

    @contextlib.contextmanager
    def entered(self) -> Iterator[Namespace]:
        """The calling thread (and what it starts) is inside until the block ends."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self
            finally:
                _setns(home)
        finally:
            os.close(home)


def remove_orphans(prefix: str) -> None:
    """Remove namespaces this module made in a process that is gone (killed before cleaning)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        rest = name.removeprefix(f"{prefix}-")
        pid = rest.split("-", 1)[0]
        if rest != name and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            Namespace(name).remove()


@contextlib.contextmanager
def temporary(prefix: str = "samtale-test") -> Iterator[Namespace]:
    """A namespace for the block, entered by the calling thread, removed afterwards."""
    namespace = Namespace.create(prefix)
    try:
        with namespace.entered():
            yield namespace
    finally:
        namespace.remove()


def outside_loopback(addresses: Iterable[str]) -> list[str]:
    """The addresses that are not loopback (127.0.0.0/8, ::1); mDNS names count as outside."""
    found = []
    for address in addresses:
        try:
            if ipaddress.ip_address(address.strip("[]")).is_loopback:
                continue
        except ValueError:
            pass
        found.append(address)
    return found


def aiortc_addresses(pc: object) -> tuple[list[str], list[str]]:
    """An aiortc RTCPeerConnection's (gathered local addresses, addresses of the candidate
    pairs in use). aioice does not publish the nominated pairs: this reads its `_nominated`."""
    gathered: list[str] = []
    used: list[str] = []
    seen: set[int] = set()
    for transceiver in pc.getTransceivers():  # type: ignore[attr-defined]
        dtls = transceiver.sender.transport
        if dtls is None or id(dtls.transport) in seen:
            continue  # bundled transceivers share one transport
        seen.add(id(dtls.transport))
        connection = dtls.transport._connection
        gathered += [candidate.host for candidate in connection.local_candidates]
        for pair in connection._nominated.values():
            used += [pair.local_candidate.host, pair.remote_candidate.host]
    return gathered, used


def assert_on_loopback(gathered: list[str], used: list[str], label: str = "peer") -> None:
    """Fail unless a connected peer used a pair, and gathered and used loopback only."""
    assert used, f"{label}: no candidate pair in use"
    outside = outside_loopback(gathered + used)
    assert not outside, f"{label}: ICE outside loopback: {outside} (gathered {gathered})"


def assert_aiortc_on_loopback(pc: object, label: str = "aiortc peer") -> None:
    """Fail if a connected aiortc peer gathered or uses an address outside loopback."""
    assert_on_loopback(*aiortc_addresses(pc), label=label)
