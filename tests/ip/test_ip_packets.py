"""The frames the floating IP sends and the answers that count as a conflict, byte by byte."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from hotstandby.agent.resources.announce import (
    ARP_FORMAT,
    ICMPV6_NA,
    ICMPV6_NS,
    gratuitous_arp,
    internet_checksum,
    ipv6_icmp_packet,
    multicast_mac,
    solicited_node,
    unsolicited_na,
)
from hotstandby.agent.resources.conflict import (
    Conflict,
    Origin,
    arp_probe,
    dad_probe,
    match_arp,
    match_nd,
)

MAC = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("020000000002")
V4 = IPv4Address("192.0.2.10")
V6 = IPv6Address("2001:db8:1::10")


def origin(mac: bytes, pkttype: int = socket.PACKET_BROADCAST) -> Origin:
    """The address tuple AF_PACKET's recvfrom gives for a frame from mac."""
    return ("lan0", 0, pkttype, 1, mac)


def unpack_arp(packet: bytes) -> tuple[int, bytes, IPv4Address, bytes, IPv4Address]:
    """(op, sha, spa, tha, tpa) of an ARP packet."""
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack(ARP_FORMAT, packet)
    assert (htype, ptype, hlen, plen) == (1, 0x0800, 6, 4)
    return op, sha, IPv4Address(spa), tha, IPv4Address(tpa)


def checksum_ok(packet: bytes) -> bool:
    """Whether an IPv6 packet's ICMPv6 checksum verifies (the sum over it all is zero)."""
    icmp = packet[40:]
    pseudo = packet[8:40] + struct.pack("!I3xB", len(icmp), 58)
    return internet_checksum(pseudo + icmp) == 0


def test_internet_checksum_matches_rfc_1071_example() -> None:
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2
    assert internet_checksum(b"\x01") == 0xFEFF  # odd length: padded with a zero byte


def test_gratuitous_arp_is_a_request_and_a_reply_for_the_address_itself() -> None:
    request, reply = (unpack_arp(p) for p in gratuitous_arp(MAC, V4))
    assert request == (1, MAC, V4, b"\x00" * 6, V4)
    assert reply == (2, MAC, V4, MAC, V4)


def test_arp_probe_claims_nothing() -> None:
    assert unpack_arp(arp_probe(MAC, V4)) == (1, MAC, IPv4Address("0.0.0.0"), b"\x00" * 6, V4)


def test_unsolicited_na() -> None:
    packet = unsolicited_na(MAC, V6)
    version, length, next_header, hop_limit, src, dst = struct.unpack_from("!IHBB16s16s", packet)
    assert version >> 28 == 6 and length == len(packet) - 40
    assert (next_header, hop_limit) == (58, 255)
    assert IPv6Address(src) == V6 and IPv6Address(dst) == IPv6Address("ff02::1")
    kind, code, _, flags = struct.unpack_from("!BBHI", packet, 40)
    assert (kind, code) == (ICMPV6_NA, 0)
    assert flags == 0x20000000  # override only: not solicited, not a router
    assert packet[48:64] == V6.packed
    assert packet[64:] == b"\x02\x01" + MAC  # target link-layer address option
    assert checksum_ok(packet)


def test_dad_probe() -> None:
    packet = dad_probe(V6)
    assert IPv6Address(packet[8:24]) == IPv6Address("::")
    assert IPv6Address(packet[24:40]) == IPv6Address("ff02::1:ff00:10")
    assert packet[40] == ICMPV6_NS and packet[48:64] == V6.packed
    assert len(packet) == 64  # no source link-layer option from the unspecified address
    assert checksum_ok(packet)


def test_solicited_node_group_and_its_mac() -> None:
    group = solicited_node(IPv6Address("2001:db8::12:3456:789a"))
    assert group == IPv6Address("ff02::1:ff56:789a")
    assert multicast_mac(group) == bytes.fromhex("3333ff56789a")


def test_arp_answer_from_another_host_is_a_conflict() -> None:
    match = match_arp(MAC, V4)
    reply = struct.pack(ARP_FORMAT, 1, 0x0800, 6, 4, 2, OTHER, V4.packed, MAC, bytes(4))
    found = match(reply, origin(OTHER, socket.PACKET_HOST))
    assert found == Conflict(V4, "02:00:00:00:00:02")
    assert str(found) == "address conflict: 192.0.2.10 answered by MAC 02:00:00:00:00:02"
    # A host announcing the address (a gratuitous ARP) is as good as an answer.
    assert match(gratuitous_arp(OTHER, V4)[0], origin(OTHER)) is not None


def test_arp_probe_from_another_host_is_a_conflict_too() -> None:
    found = match_arp(MAC, V4)(arp_probe(OTHER, V4), origin(OTHER))
    assert found == Conflict(V4, "02:00:00:00:00:02", probing=True)
    assert "probed for at the same time by MAC 02:00:00:00:00:02" in str(found)


@pytest.mark.parametrize(
    ("packet", "frm"),
    [
        (arp_probe(MAC, V4), origin(MAC)),  # our own probe, reflected
        (gratuitous_arp(OTHER, V4)[0], origin(OTHER, socket.PACKET_OUTGOING)),
        (gratuitous_arp(OTHER, IPv4Address("192.0.2.11"))[0], origin(OTHER)),  # another address
        (arp_probe(OTHER, IPv4Address("192.0.2.11")), origin(OTHER)),
        (b"\x00\x01", origin(OTHER)),  # truncated
    ],
)
def test_arp_that_is_no_conflict(packet: bytes, frm: Origin) -> None:
    assert match_arp(MAC, V4)(packet, frm) is None


def test_na_for_the_address_is_a_conflict_naming_the_target_mac() -> None:
    match = match_nd(MAC, V6)
    assert match(unsolicited_na(OTHER, V6), origin(OTHER)) == Conflict(V6, "02:00:00:00:00:02")
    # Without a target link-layer option the frame's source tells who answered.
    bare = ipv6_icmp_packet(V6, IPv6Address("ff02::1"), unsolicited_na(OTHER, V6)[40:64])
    third = bytes.fromhex("020000000003")
    assert match(bare, origin(third)) == Conflict(V6, "02:00:00:00:00:03")


def test_dad_probe_from_another_host_is_a_conflict() -> None:
    found = match_nd(MAC, V6)(dad_probe(V6), origin(OTHER))
    assert found == Conflict(V6, "02:00:00:00:00:02", probing=True)


def test_nd_that_is_no_conflict() -> None:
    match = match_nd(MAC, V6)
    assert match(dad_probe(V6), origin(MAC)) is None  # our own
    assert match(unsolicited_na(OTHER, IPv6Address("2001:db8:1::11")), origin(OTHER)) is None
    # Address resolution (from a real source address) asks, it does not claim.
    ns = dad_probe(V6)
    resolving = ipv6_icmp_packet(IPv6Address("2001:db8:1::100"), solicited_node(V6), ns[40:])
    assert match(resolving, origin(OTHER)) is None
    assert match(unsolicited_na(OTHER, V6)[:50], origin(OTHER)) is None  # truncated
