"""The rtnetlink requests of the ip resource, against this machine's kernel (read-only here;
adding and removing addresses is shown by the lab tests in namespaces of their own)."""

from __future__ import annotations

import errno
import socket
import struct
from ipaddress import ip_address

import pytest

from hotstandby.agent.resources import rtnetlink
from hotstandby.agent.resources.rtnetlink import NetlinkError, _attr, _attrs


def test_loopback_is_found_up_with_its_address() -> None:
    link = rtnetlink.get_link("lo")
    assert link is not None
    assert link.index == socket.if_nametoindex("lo")
    assert link.flags & 0x1  # IFF_UP
    assert link.operstate == "UNKNOWN"  # lo has no operstate support
    found = {(a.address, a.prefix) for a in rtnetlink.get_addresses(link.index)}
    assert (ip_address("127.0.0.1"), 8) in found


def test_a_missing_interface_is_none() -> None:
    assert rtnetlink.get_link("hsnolink0") is None


def test_the_kernels_refusal_is_an_error_with_its_errno() -> None:
    unused = max(socket.if_nameindex())[0] + 1000
    with pytest.raises(NetlinkError) as caught:
        rtnetlink.delete_address(unused, ip_address("192.0.2.1"), 24)
    assert caught.value.errno in (errno.ENODEV, errno.EADDRNOTAVAIL, errno.EPERM)


def test_attributes_round_trip_with_padding() -> None:
    data = _attr(3, b"eth0\0") + _attr(16, b"\x06") + _attr(1, b"\x02\x00\x00\x00\x00\x01")
    assert len(data) % 4 == 0
    assert _attrs(data) == {3: b"eth0\0", 16: b"\x06", 1: b"\x02\x00\x00\x00\x00\x01"}


def test_a_truncated_attribute_ends_the_parse() -> None:
    good = _attr(3, b"eth0\0")
    bad = struct.pack("=HH", 200, 4) + b"xx"
    assert _attrs(good + bad) == {3: b"eth0\0"}
