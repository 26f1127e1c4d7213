"""The udp link between two network namespaces: IPv4, IPv6, unknown sources, errors, close."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hotstandby.agent.links import CS6, UdpLink
from hotstandby.core.messages import Heartbeat, Role
from hotstandby.lab import CLIENT, Lab
from hotstandby.wire import Codec, WireError
from hotstandby.wire.codec import MAX_MESSAGE
from tests.links.linkhelp import Inbox, WatchedStats, in_netns

pytestmark = pytest.mark.lab

PORT = 694


async def _start(lab: Lab, node: str, link: UdpLink, inbox: Inbox) -> None:
    # The socket is made and bound inside start(), so it belongs to node's namespace.
    with in_netns(lab.node(node).ns):
        await link.start(inbox)


def _pair(lab: Lab, family: str) -> tuple[str, str]:
    a, b = lab.node("a"), lab.node("b")
    if family == "ipv4":
        assert a.priv_ipv4 is not None and b.priv_ipv4 is not None
        return a.priv_ipv4, b.priv_ipv4
    return a.lan_ipv6, b.lan_ipv6


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_two_nodes_exchange_heartbeats(lab: Lab, family: str) -> None:
    addr_a, addr_b = _pair(lab, family)

    async def scenario() -> None:
        link_a = UdpLink("net", addr_a, [addr_b], PORT)
        link_b = UdpLink("net", addr_b, [addr_a], PORT)
        inbox_a, inbox_b = Inbox(), Inbox()
        await _start(lab, "a", link_a, inbox_a)
        await _start(lab, "b", link_b, inbox_b)
        try:
            link_a.send(b"beat from a")
            assert await inbox_b.next() == ("net", b"beat from a")
            link_b.send(b"beat from b")
            assert await inbox_a.next() == ("net", b"beat from b")
            assert (link_a.stats.sent, link_b.stats.sent) == (1, 1)
            assert link_a.stats.send_errors == link_b.stats.send_errors == 0
            assert link_a.address[:2] == (addr_a, PORT)
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_heartbeats_are_marked_network_control(lab: Lab) -> None:
    async def scenario() -> None:
        for addr in (lab.node("a").lan_ipv4, lab.node("a").lan_ipv6):
            link = UdpLink("net", addr, [], PORT)
            await _start(lab, "a", link, Inbox())
            try:
                sock = link._sock
                assert sock is not None
                if sock.family == socket.AF_INET6:
                    tos = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
                else:
                    tos = sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
                assert tos == CS6 == 0xC0
            finally:
                await link.close()

    asyncio.run(scenario())


def test_datagram_from_unknown_source_is_dropped(lab: Lab) -> None:
    a, b, client = lab.node("a"), lab.node("b"), lab.node(CLIENT)

    async def scenario() -> None:
        link_a = UdpLink("lan", a.lan_ipv4, [b.lan_ipv4], PORT)
        link_b = UdpLink("lan", b.lan_ipv4, [a.lan_ipv4], PORT)
        stats = link_a.stats = WatchedStats()
        inbox_a = Inbox()
        await _start(lab, "a", link_a, inbox_a)
        await _start(lab, "b", link_b, Inbox())
        try:
            # The client is on the same LAN and uses the right port: address alone decides.
            with in_netns(client.ns), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((client.lan_ipv4, PORT))
                s.sendto(b"forged beat", (a.lan_ipv4, PORT))
            await stats.until(lambda: stats.dropped.get("unknown_source") == 1)
            link_b.send(b"real beat")
            assert await inbox_a.next() == ("lan", b"real beat")
            assert inbox_a.empty()
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_send_error_is_counted_not_raised(lab: Lab) -> None:
    a = lab.node("a")

    async def scenario() -> None:
        # Namespace a has no route to 203.0.113.0/24: sendto fails at once, nothing leaves.
        link = UdpLink("lan", a.lan_ipv4, ["203.0.113.9"], PORT)
        await _start(lab, "a", link, Inbox())
        try:
            link.send(b"beat")
            link.send(b"beat")
            assert link.stats.sent == 0
            assert link.stats.send_errors == 2
            assert link.stats.send_failed == {"ENETUNREACH": 2}
        finally:
            await link.close()
        link.send(b"after close")
        assert link.stats.send_failed["not_open"] == 1

    asyncio.run(scenario())


def test_close_releases_the_port(lab: Lab) -> None:
    a = lab.node("a")

    async def scenario() -> None:
        link = UdpLink("lan", a.lan_ipv6, [lab.node("b").lan_ipv6], PORT)
        await _start(lab, "a", link, Inbox())
        await link.close()
        # Without SO_REUSEADDR a second bind fails while any socket still holds the port.
        with in_netns(a.ns), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((a.lan_ipv6, PORT))

    asyncio.run(scenario())


def test_a_datagram_longer_than_any_heartbeat_still_reads_as_too_long(lab: Lab) -> None:
    a, b = lab.node("a"), lab.node("b")

    async def scenario() -> None:
        link_a = UdpLink("lan", a.lan_ipv4, [b.lan_ipv4], PORT)
        link_b = UdpLink("lan", b.lan_ipv4, [a.lan_ipv4], PORT)
        inbox_a = Inbox()
        await _start(lab, "a", link_a, inbox_a)
        await _start(lab, "b", link_b, Inbox())
        try:
            # The link reads a heartbeat-sized buffer: the rest of a long datagram is cut,
            # but what is delivered is still longer than any heartbeat, so the codec drops
            # it as oversized instead of trying to parse a stub.
            codec = Codec("c", b"k" * 32)
            beat = Heartbeat(sender="b", boot=1, seq=1, epoch=0, role=Role.STANDBY, holds=False)
            link_b.send(codec.encode(beat) + b"x" * 3 * MAX_MESSAGE)
            link_b.send(b"beat")
            name, data = await inbox_a.next()
            assert name == "lan" and len(data) > MAX_MESSAGE
            with pytest.raises(WireError) as err:
                codec.decode(data)
            assert err.value.reason == "oversized"
            assert await inbox_a.next() == ("lan", b"beat")
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())
