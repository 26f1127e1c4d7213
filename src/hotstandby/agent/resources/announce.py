"""Telling the LAN where an address now lives: gratuitous ARP and unsolicited neighbour adverts.

Frames are built here with struct and sent on AF_PACKET sockets (SOCK_DGRAM: the kernel adds
the Ethernet header from the destination MAC we pass), so they leave the interface exactly as
written, whatever the address's state in the IP stack. No scapy, no arping: one dependency
less, and no external program per takeover.

IPv4: each round sends an ARP request and an ARP reply, both broadcast, with sender and target
protocol address set to the floating address (RFC 5227 section 3 "ARP announcement" is the
request; some older stacks and switches refresh only on replies, so both are sent, as arping
-U and -A do). Linux clients update an existing entry from either, at once and regardless of
the entry's locktime, because sender == target marks the frame as gratuitous.

IPv6: each round sends one unsolicited neighbour advertisement (RFC 4861 section 7.2.6):
ICMPv6 type 136 from the floating address to ff02::1, hop limit 255, the override flag set and
the solicited flag clear, with a target link-layer address option carrying our MAC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address

log = logging.getLogger(__name__)

IPAddress = IPv4Address | IPv6Address

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

ARP_REQUEST = 1
ARP_REPLY = 2
# htype Ethernet, ptype IPv4, hlen 6, plen 4, op, sha, spa, tha, tpa.
ARP_FORMAT = "!HHBBH6s4s6s4s"
ARP_SIZE = struct.calcsize(ARP_FORMAT)

IPPROTO_ICMPV6 = 58
ICMPV6_NS = 135
ICMPV6_NA = 136
# Neighbour discovery is only valid with hop limit 255 (RFC 4861 section 7.1.2): proof that
# the packet was not routed from off-link.
ND_HOP_LIMIT = 255
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_SOURCE_LLADDR = 1
ND_OPT_TARGET_LLADDR = 2
IPV6_HEADER = "!IHBB16s16s"
IPV6_HEADER_SIZE = struct.calcsize(IPV6_HEADER)
ALL_NODES = IPv6Address("ff02::1")
UNSPECIFIED = IPv6Address("::")


def format_mac(mac: bytes) -> str:
    """A MAC address as people write it: 02:00:5e:10:00:01."""
    return ":".join(f"{b:02x}" for b in mac)


def arp_packet(op: int, sha: bytes, spa: IPv4Address, tha: bytes, tpa: IPv4Address) -> bytes:
    """An Ethernet/IPv4 ARP packet (without the Ethernet header)."""
    return struct.pack(ARP_FORMAT, 1, ETH_P_IP, 6, 4, op, sha, spa.packed, tha, tpa.packed)


def gratuitous_arp(mac: bytes, address: IPv4Address) -> list[bytes]:
    """The ARP announcement (a request) and the gratuitous reply for address at mac."""
    return [
        arp_packet(ARP_REQUEST, mac, address, ZERO_MAC, address),
        # Linux counts a reply as gratuitous only when its target MAC is the sender's or
        # broadcast; the sender's own is what arping -A sends.
        arp_packet(ARP_REPLY, mac, address, mac, address),
    ]


def internet_checksum(data: bytes) -> int:
    """The ones' complement sum of RFC 1071."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv6_icmp_packet(src: IPv6Address, dst: IPv6Address, icmp: bytes) -> bytes:
    """An IPv6 packet (hop limit 255) carrying icmp, whose checksum field is filled in here."""
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(icmp), IPPROTO_ICMPV6)
    checksum = internet_checksum(pseudo + icmp[:2] + b"\x00\x00" + icmp[4:])
    icmp = icmp[:2] + struct.pack("!H", checksum) + icmp[4:]
    header = struct.pack(
        IPV6_HEADER, 6 << 28, len(icmp), IPPROTO_ICMPV6, ND_HOP_LIMIT, src.packed, dst.packed
    )
    return header + icmp


def unsolicited_na(mac: bytes, address: IPv6Address) -> bytes:
    """An unsolicited neighbour advertisement of address at mac, to all nodes."""
    option = struct.pack("!BB6s", ND_OPT_TARGET_LLADDR, 1, mac)
    icmp = struct.pack("!BBHI16s", ICMPV6_NA, 0, 0, NA_FLAG_OVERRIDE, address.packed) + option
    return ipv6_icmp_packet(address, ALL_NODES, icmp)


def multicast_mac(group: IPv6Address) -> bytes:
    """The Ethernet address an IPv6 multicast group maps to (RFC 2464: 33:33 + low 32 bits)."""
    return b"\x33\x33" + group.packed[-4:]


def solicited_node(address: IPv6Address) -> IPv6Address:
    """The solicited-node multicast group of address (ff02::1:ffXX:XXXX)."""
    return IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | (int(address) & 0xFFFFFF))


def frames_for(mac: bytes, address: IPAddress) -> list[tuple[int, bytes, bytes]]:
    """The (ethertype, destination MAC, payload) frames of one announcement of address."""
    if isinstance(address, IPv4Address):
        return [(ETH_P_ARP, BROADCAST_MAC, p) for p in gratuitous_arp(mac, address)]
    return [(ETH_P_IPV6, multicast_mac(ALL_NODES), unsolicited_na(mac, address))]


# Sockets being closed in worker threads, kept referenced until the close is done.
_closing: set[asyncio.Future[None]] = set()


@contextlib.contextmanager
def packet_socket() -> Iterator[socket.socket]:
    """A non-blocking AF_PACKET datagram socket that receives nothing until bound."""
    # Protocol 0: no frame is queued to it before bind() names the one wanted, so a busy
    # interface cannot fill its buffer with traffic nobody reads.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    try:
        sock.setblocking(False)
        yield sock
    finally:
        _close_later(sock)


def _close_later(sock: socket.socket) -> None:
    """Close sock in a worker thread, without waiting for it."""
    # Closing a packet socket waits for an RCU grace period (synchronize_net() in the
    # kernel's packet_release): 8 to 20 ms measured. Neither the event loop nor a start
    # (the address already works) should wait for that.
    loop = asyncio.get_running_loop()
    closing = loop.run_in_executor(None, sock.close)
    _closing.add(closing)
    closing.add_done_callback(_closed)


def _closed(closing: asyncio.Future[None]) -> None:
    _closing.discard(closing)
    if not closing.cancelled() and closing.exception() is not None:
        log.warning("closing a packet socket failed: %s", closing.exception())


async def send_frames(ifname: str, frames: Sequence[tuple[int, bytes, bytes]]) -> None:
    """Send frames out of ifname on one packet socket (OSError when that is impossible)."""
    loop = asyncio.get_running_loop()
    with packet_socket() as sock:
        for proto, dst, payload in frames:
            await loop.sock_sendto(sock, payload, (ifname, proto, 0, 0, dst))


async def announce_once(ifname: str, mac: bytes, addresses: Sequence[IPAddress]) -> None:
    """One round: announce every address at mac on ifname."""
    await send_frames(ifname, [f for a in addresses for f in frames_for(mac, a)])


async def announce_rounds(
    ifname: str,
    mac: bytes,
    addresses: Sequence[IPAddress],
    rounds: int,
    interval: float,
    first: float,
) -> None:
    """Further rounds, interval apart after the first (sent at loop time first); errors logged."""
    loop = asyncio.get_running_loop()
    for n in range(1, rounds + 1):
        # Scheduled from one origin, so the time each round takes does not add up as drift.
        await asyncio.sleep(max(0.0, first + n * interval - loop.time()))
        try:
            await announce_once(ifname, mac, addresses)
        except OSError as err:
            # The first round already reached the clients or was reported; later rounds are
            # a second chance for lost frames, so one failing must not end the others.
            log.warning("announcing %s on %s failed: %s", _names(addresses), ifname, err)


def _names(addresses: Sequence[IPAddress]) -> str:
    return ", ".join(str(a) for a in addresses)
