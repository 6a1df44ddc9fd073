"""The namespace the WebRTC tests run in, and the check that their ICE stayed on loopback."""

from __future__ import annotations

import asyncio

import ifaddr
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from netns import JANUS_ADDRESS, Namespace, aiortc_addresses, assert_on_loopback, outside_loopback


def test_outside_loopback() -> None:
    assert outside_loopback(["127.0.0.1", "127.5.0.9", "::1", "[::1]"]) == []
    assert outside_loopback(["192.0.2.2", "fd00::2", "10.0.0.1", "abcd.local", "127.0.0.1"]) == [
        "192.0.2.2", "fd00::2", "10.0.0.1", "abcd.local"]


def test_a_peer_that_used_no_pair_or_left_loopback_fails_the_check() -> None:
    assert_on_loopback(["127.0.0.1"], ["127.0.0.1", "127.0.0.1"])
    with pytest.raises(AssertionError, match="no candidate pair"):
        assert_on_loopback(["127.0.0.1"], [])
    with pytest.raises(AssertionError, match="outside loopback: \\['192.0.2.7'\\]"):
        assert_on_loopback(["127.0.0.1", "192.0.2.7"], ["127.0.0.1", "127.0.0.1"])


def gathered() -> list[str]:
    """What an aiortc peer gathers here (no STUN server: nothing is sent anywhere)."""
    async def run() -> list[str]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            return aiortc_addresses(pc)[0]
        finally:
            await pc.close()

    return asyncio.run(run())


@pytest.mark.webrtc
def test_inside_the_namespace_only_loopback_is_gathered(media_namespace: Namespace) -> None:
    from portal.recording.endpoint import install_loopback_fallback

    install_loopback_fallback()  # aioice skips loopback; the recorder offers it when alone
    outside = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
               if outside_loopback([ip.ip if isinstance(ip.ip, str) else ip.ip[0]])]
    with media_namespace.entered():
        inside = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips]
        # aioice skips `lo` but not Janus's veth end (127.0.0.2, loopback too): see netns.py
        assert gathered() == [JANUS_ADDRESS]
    assert all(not outside_loopback([a if isinstance(a, str) else a[0]]) for a in inside), inside
    assert f"{JANUS_ADDRESS}" in inside and "127.0.0.1" in inside
    if outside:  # this machine has other addresses: outside the namespace the check catches them
        assert outside_loopback(gathered())


def test_without_root_the_message_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    why = netns.require_root()
    assert why is not None and "needs root" in why and "not webrtc" in why
