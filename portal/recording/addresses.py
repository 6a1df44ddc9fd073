"""Which addresses the recorder may contact: a browser's offer names the ICE candidates the
server sends connectivity checks to, so an offer could aim the server at its own network
(loopback, private ranges, the cloud metadata service). Only public unicast addresses pass,
plus the networks the deployment allows (PORTAL_RECORDER_ALLOW_ADDRESSES: a clinic's LAN, the
tests' loopback); candidates naming a host (mDNS `.local`, DNS) are dropped, as what they
resolve to cannot be checked first.

A browser behind NAT still connects through its server-reflexive or relay candidates; and,
as browsers do not end their candidates in the offer (no `a=end-of-candidates`), the recorder
also learns the address its checks come from (peer reflexive: the real source of a packet).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from aioice import Candidate

log = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Never contacted unless allowed: IANA's special-purpose ranges (RFC 6890 and successors), of
#: which Python's is_global misses some in older releases.
BLOCKED: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7",
    "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def networks(allowed: Iterable[str]) -> tuple[Network, ...]:
    """The allowed networks from their strings ("127.0.0.0/8", "::1"); ValueError if bad."""
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in allowed if n.strip())


def _embedded(address: Address) -> list[Address]:
    """The address and any IPv4 address it carries (mapped, NAT64, 6to4)."""
    found: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def permitted(host: str, allowed: tuple[Network, ...] = ()) -> bool:
    """May the recorder send to `host` (a candidate's connection address)?"""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: mDNS or DNS, resolved later to anything
    if any(address in network for network in allowed):
        return True
    return all(a.is_global and not a.is_multicast and not any(a in n for n in BLOCKED)
               for a in _embedded(address))


def candidate_permitted(line: str, allowed: tuple[Network, ...] = ()) -> bool:
    """An SDP candidate attribute ("candidate:..." with or without "a=") the recorder may use."""
    text = line.strip().removeprefix("a=").removeprefix("candidate:")
    try:
        candidate = Candidate.from_sdp(text)
    except (ValueError, IndexError):
        return False
    return permitted(candidate.host, allowed)


def filter_offer(sdp: str, allowed: tuple[Network, ...] = ()) -> str:
    """The offer without the candidates the recorder may not contact."""
    kept, dropped = [], 0
    for line in sdp.splitlines(keepends=True):
        if line.startswith("a=candidate:") and not candidate_permitted(line, allowed):
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        log.info("dropped %d ICE candidate(s) the recorder may not contact", dropped)
    return "".join(kept)
