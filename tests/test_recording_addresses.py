"""Which addresses the recorder may contact (portal/recording/addresses.py): every internal
range is refused, however it is written, unless the deployment allows it. The attack through
aiortc itself is in test_recording_endpoint.py."""

from __future__ import annotations

import pytest
from live import LOOPBACK

from portal.recording.addresses import filter_offer, networks, permitted

INWARD = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1",
          "100.64.0.1", "169.254.169.254", "169.254.1.1", "0.0.0.0",  # noqa: S104
          "192.0.0.8",
          "198.18.0.1", "224.0.0.251", "239.1.2.3", "255.255.255.255", "240.0.0.1",
          "192.0.2.10", "::1", "::", "fe80::1", "fe80::1%eth0", "fd00::1", "fc00::5",
          "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1",
          "2002:7f00:1::1", "2001:db8::1", "host.local", "4f0e5c1e-1d2a.local",
          "metadata.google.internal", "localhost", ""]
OUTWARD = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2001:4860:4860::8888", "2a00:1450::1"]


@pytest.mark.parametrize("host", INWARD)
def test_internal_addresses_are_refused(host: str) -> None:
    assert not permitted(host)


@pytest.mark.parametrize("host", OUTWARD)
def test_public_addresses_are_contacted(host: str) -> None:
    assert permitted(host)


def test_allowed_networks_open_only_themselves() -> None:
    allowed = networks([*LOOPBACK, " 10.20.0.0/16 "])
    assert permitted("127.0.0.1", allowed) and permitted("::1", allowed)
    assert permitted("10.20.3.4", allowed)
    assert not permitted("10.21.0.1", allowed) and not permitted("169.254.169.254", allowed)
    with pytest.raises(ValueError):
        networks(["not a network"])


def test_an_offer_keeps_only_the_candidates_it_may_contact() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
             "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n"
             "a=candidate:2 1 udp 2130706431 169.254.169.254 80 typ host\r\n"
             "a=candidate:3 1 udp 2130706431 abc.local 5000 typ host\r\n"
             "a=candidate:4 1 udp 1694498815 8.8.8.8 5000 typ srflx raddr 10.0.0.2 rport 9\r\n"
             "a=candidate:garbage\r\n"
             "a=ice-ufrag:abcd\r\n")
    kept = filter_offer(offer)
    assert [line for line in kept.splitlines() if "candidate" in line] == [
        "a=candidate:4 1 udp 1694498815 8.8.8.8 5000 typ srflx raddr 10.0.0.2 rport 9"]
    assert "a=ice-ufrag:abcd\r\n" in kept and kept.startswith("v=0\r\n")
    assert "127.0.0.1 5000" in filter_offer(offer, networks(LOOPBACK))
