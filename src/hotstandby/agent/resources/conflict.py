"""Is an address already in use on the LAN? An ARP probe (IPv4) or a DAD probe (IPv6).

IPv4 follows RFC 5227: an ARP request with sender protocol address 0.0.0.0 asks for the
address without claiming it, so no neighbour cache learns anything from the probe. A host
holding the address answers it (Linux replies to such probes unless arp_ignore forbids it).
IPv6 follows duplicate address detection (RFC 4862 section 5.4): a neighbour solicitation from
the unspecified address to the address's solicited-node group; a holder answers with an
advertisement to all nodes.

Either way, a conflict is: any frame from another MAC whose sender address is ours (an answer,
or a host announcing it), or another host probing for the same address at the same time. The
second case means two nodes are starting the address at once; failing both is the safe side.

Two probes are sent, at once and half-way through the timeout, so that one lost frame does not
turn a conflict into silence. RFC 5227 asks for three probes over one to two seconds; that is
too slow for a takeover budget of about a second, and on a LAN an answer takes well under a
millisecond, so a few hundred milliseconds is plenty.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hotstandby.agent.resources.announce import (
    ARP_FORMAT,
    ARP_REQUEST,
    ARP_SIZE,
    BROADCAST_MAC,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    ICMPV6_NA,
    ICMPV6_NS,
    IPPROTO_ICMPV6,
    IPV6_HEADER_SIZE,
    ND_OPT_TARGET_LLADDR,
    UNSPECIFIED,
    ZERO_MAC,
    IPAddress,
    arp_packet,
    format_mac,
    ipv6_icmp_packet,
    multicast_mac,
    packet_socket,
    solicited_node,
)

ANY_IPV4 = IPv4Address("0.0.0.0")
SO_ATTACH_FILTER = 26

# A classic BPF program for the IPv6 socket: keep only ICMPv6 neighbour solicitations and
# advertisements (offsets from the IPv6 header: a datagram packet socket sees no Ethernet
# header). Without it every IPv6 packet of a busy server would be queued to us while we wait.
_ND_FILTER = (
    (0x30, 0, 0, 6),  # ldb [6]: next header
    (0x15, 0, 4, IPPROTO_ICMPV6),  # not ICMPv6 (or behind extension headers): drop
    (0x30, 0, 0, IPV6_HEADER_SIZE),  # ldb [40]: ICMPv6 type
    (0x15, 1, 0, ICMPV6_NS),
    (0x15, 0, 1, ICMPV6_NA),
    (0x06, 0, 0, 0x40000),  # accept
    (0x06, 0, 0, 0),  # drop
)

# Frame source address and packet type, as AF_PACKET's recvfrom gives them.
Origin = tuple[str, int, int, int, bytes]
Matcher = Callable[[bytes, Origin], "Conflict | None"]


@dataclass(frozen=True)
class Conflict:
    """Evidence that another host holds, or is taking, the address."""

    address: IPAddress
    mac: str
    probing: bool = False  # it was probing for the address too, not holding it

    def __str__(self) -> str:
        how = "probed for at the same time by" if self.probing else "answered by"
        return f"address conflict: {self.address} {how} MAC {self.mac}"


def arp_probe(mac: bytes, address: IPv4Address) -> bytes:
    """An RFC 5227 ARP probe for address, from mac."""
    return arp_packet(ARP_REQUEST, mac, ANY_IPV4, ZERO_MAC, address)


def dad_probe(address: IPv6Address) -> bytes:
    """A duplicate address detection solicitation for address (from ::, no source option)."""
    icmp = struct.pack("!BBHI16s", ICMPV6_NS, 0, 0, 0, address.packed)
    return ipv6_icmp_packet(UNSPECIFIED, solicited_node(address), icmp)


def match_arp(own_mac: bytes, address: IPv4Address) -> Matcher:
    """A test for ARP packets that show address in use by another host."""

    def match(data: bytes, origin: Origin) -> Conflict | None:
        if len(data) < ARP_SIZE or origin[2] == socket.PACKET_OUTGOING:
            return None
        htype, ptype, hlen, plen, op, sha, spa, _, tpa = struct.unpack_from(ARP_FORMAT, data)
        # Our own frames can come back through a bridge or a bonded sibling: never a conflict.
        if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4) or sha == own_mac:
            return None
        if spa == address.packed:
            return Conflict(address, format_mac(sha))
        if op == ARP_REQUEST and spa == ANY_IPV4.packed and tpa == address.packed:
            return Conflict(address, format_mac(sha), probing=True)
        return None

    return match


def match_nd(own_mac: bytes, address: IPv6Address) -> Matcher:
    """A test for neighbour discovery packets that show address in use by another host."""

    def match(data: bytes, origin: Origin) -> Conflict | None:
        if len(data) < IPV6_HEADER_SIZE + 24 or origin[2] == socket.PACKET_OUTGOING:
            return None
        if origin[4][:6] == own_mac or data[0] >> 4 != 6 or data[6] != IPPROTO_ICMPV6:
            return None
        src = data[8:24]
        icmp = data[IPV6_HEADER_SIZE:]
        kind, target = icmp[0], icmp[8:24]
        if target != address.packed:
            return None
        if kind == ICMPV6_NA:
            return Conflict(address, format_mac(_target_lladdr(icmp[24:]) or origin[4][:6]))
        if kind == ICMPV6_NS and src == UNSPECIFIED.packed:
            return Conflict(address, format_mac(origin[4][:6]), probing=True)
        return None

    return match


def _target_lladdr(options: bytes) -> bytes | None:
    """The MAC in a target link-layer address option, if the advertisement carries one."""
    while len(options) >= 8:
        kind, units = options[0], options[1]
        if units == 0:
            return None  # malformed: a zero length would loop forever
        if kind == ND_OPT_TARGET_LLADDR:
            return options[2:8]
        options = options[units * 8 :]
    return None


def _attach_nd_filter(sock: socket.socket) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in _ND_FILTER)
    buf = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }, native layout.
    prog = struct.pack("HP", len(_ND_FILTER), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


async def find_conflict(
    ifname: str, mac: bytes, address: IPAddress, timeout: float
) -> Conflict | None:
    """Probe for address on ifname and listen for timeout seconds; the first conflict seen."""
    loop = asyncio.get_running_loop()
    with packet_socket() as sock:
        if isinstance(address, IPv4Address):
            proto, dst, probe = ETH_P_ARP, BROADCAST_MAC, arp_probe(mac, address)
            match = match_arp(mac, address)
        else:
            proto, dst = ETH_P_IPV6, multicast_mac(solicited_node(address))
            probe, match = dad_probe(address), match_nd(mac, address)
            _attach_nd_filter(sock)
        # Bound before the first probe leaves, so an answer cannot arrive unheard.
        sock.bind((ifname, proto))
        target = (ifname, proto, 0, 0, dst)
        await loop.sock_sendto(sock, probe, target)

        async def second_probe() -> None:
            await asyncio.sleep(timeout / 2)
            await loop.sock_sendto(sock, probe, target)

        second = asyncio.create_task(second_probe())
        try:
            found = await _listen(sock, loop.time() + timeout, match)
        finally:
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
    return found


async def _listen(sock: socket.socket, deadline: float, match: Matcher) -> Conflict | None:
    """Read frames until one matches or the deadline passes."""
    loop = asyncio.get_running_loop()
    while (remaining := deadline - loop.time()) > 0:
        try:
            async with asyncio.timeout(remaining):
                data, origin = await loop.sock_recvfrom(sock, 2048)
        except TimeoutError:
            break
        found = match(data, origin)
        if found is not None:
            return found
    return None
