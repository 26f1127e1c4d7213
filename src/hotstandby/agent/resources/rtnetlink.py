"""The few rtnetlink requests the floating IP needs: look at a link and its addresses, add one,
remove one.

Why not pyroute2: importing it loads every netlink family it knows (about 11 MiB resident in
an agent whose whole budget is 40 MiB, with its memory locked), while the ip resource needs
four message types whose layout the kernel's uapi headers fix for good (linux/netlink.h,
linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h). Every call is blocking and bounded by
a socket timeout; callers run it in a worker thread. One socket per call, never shared.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_OPERSTATE = 16
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_FLAGS = 8

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, port id
_IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
_RTATTR = struct.Struct("=HH")  # length, type
_ERRNO = struct.Struct("=i")

# RFC 2863 operational states, as IFLA_OPERSTATE numbers them.
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

TIMEOUT = 2.0  # seconds: the kernel answers in microseconds unless something is badly wrong


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why."""


@dataclass(frozen=True)
class Link:
    """One interface as RTM_NEWLINK describes it."""

    index: int
    flags: int
    mac: bytes
    operstate: str


@dataclass(frozen=True)
class Address:
    """One configured address as RTM_NEWADDR describes it."""

    index: int
    address: IPAddress
    prefix: int
    flags: int


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, value: bytes) -> bytes:
    length = _RTATTR.size + len(value)
    return _RTATTR.pack(length, kind) + value + b"\0" * (_align(length) - length)


def _attrs(data: bytes) -> dict[int, bytes]:
    """The route attributes in `data` (the first of each kind)."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, pos)
        if length < _RTATTR.size or pos + length > len(data):
            break
        out.setdefault(kind & 0x3FFF, data[pos + _RTATTR.size : pos + length])
        pos += _align(length)
    return out


class _Socket:
    """One NETLINK_ROUTE socket: send a request, read its answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.settimeout(TIMEOUT)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, payload: bytes) -> Iterator[tuple[int, bytes]]:
        """Send one request; yield (type, payload) of each answer; raise on an error answer."""
        self.seq += 1
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), kind, flags, self.seq, 0)
        self.sock.send(header + payload)
        while True:
            data = self.sock.recv(65536)
            pos = 0
            while pos + _NLMSGHDR.size <= len(data):
                length, mtype, mflags, seq, _ = _NLMSGHDR.unpack_from(data, pos)
                if length < _NLMSGHDR.size:
                    raise NetlinkError(errno.EPROTO, "malformed netlink answer")
                body = data[pos + _NLMSGHDR.size : pos + length]
                pos += _align(length)
                if seq != self.seq:
                    continue  # an answer to an earlier request of this socket: none here
                if mtype == NLMSG_ERROR:
                    (code,) = _ERRNO.unpack_from(body)
                    if code:
                        raise NetlinkError(-code, os.strerror(-code))
                    return  # the acknowledgement
                if mtype == NLMSG_DONE:
                    return
                yield mtype, body
                if not mflags & NLM_F_MULTI:
                    return


def get_link(ifname: str) -> Link | None:
    """The interface called `ifname` in this network namespace; None when there is none."""
    request = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(
        IFLA_IFNAME, ifname.encode() + b"\0"
    )
    with _Socket() as nl:
        try:
            for mtype, body in nl.request(RTM_GETLINK, NLM_F_REQUEST, request):
                if mtype == RTM_NEWLINK:
                    return _parse_link(body)
        except NetlinkError as err:
            if err.errno == errno.ENODEV:
                return None
            raise
    return None


def _parse_link(body: bytes) -> Link:
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(body)
    attrs = _attrs(body[_IFINFOMSG.size :])
    state = attrs.get(IFLA_OPERSTATE, b"\0")[0]
    return Link(
        index=index,
        flags=flags,
        mac=attrs.get(IFLA_ADDRESS, b""),
        operstate=OPERSTATES[state] if state < len(OPERSTATES) else f"state {state}",
    )


def get_addresses(index: int) -> list[Address]:
    """Every address configured on interface `index`."""
    request = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    found: list[Address] = []
    with _Socket() as nl:
        for mtype, body in nl.request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, request):
            if mtype != RTM_NEWADDR:
                continue
            _, prefix, flags, _, at = _IFADDRMSG.unpack_from(body)
            if at != index:
                continue  # a dump covers every interface
            attrs = _attrs(body[_IFADDRMSG.size :])
            # For IPv4, IFA_ADDRESS is the peer on point-to-point links; IFA_LOCAL is ours.
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None or len(raw) not in (4, 16):
                continue
            if IFA_FLAGS in attrs:
                (flags,) = struct.unpack("=I", attrs[IFA_FLAGS][:4])
            found.append(Address(index, ip_address(raw), prefix, flags))
    return found


def _address_message(index: int, address: IPAddress, prefix: int, flags: int) -> bytes:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    raw = address.packed
    return (
        _IFADDRMSG.pack(family, prefix, flags & 0xFF, 0, index)
        + _attr(IFA_LOCAL, raw)
        + _attr(IFA_ADDRESS, raw)
        + _attr(IFA_FLAGS, struct.pack("=I", flags))
    )


def add_address(index: int, address: IPAddress, prefix: int, flags: int = 0) -> None:
    """Add an address to interface `index`; NetlinkError (EEXIST when it is there already)."""
    message = _address_message(index, address, prefix, flags)
    with _Socket() as nl:
        for _ in nl.request(
            RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, message
        ):
            pass


def delete_address(index: int, address: IPAddress, prefix: int) -> None:
    """Remove an address; NetlinkError (EADDRNOTAVAIL when it is not there)."""
    message = _address_message(index, address, prefix, 0)
    with _Socket() as nl:
        for _ in nl.request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, message):
            pass
