"""Reading established connections from /proc/net/tcp and tcp6 text, and the tickle segment."""

from __future__ import annotations

import socket
import struct
import sys
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from hotstandby.agent.resources.announce import internet_checksum
from hotstandby.agent.tickle import (
    established,
    parse_proc_tcp,
    proc_hex,
    sort_key,
    tcp_in_use,
    tcp_segment,
)
from hotstandby.wire.connlist import Connection

VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8:1::10")
LITTLE = sys.byteorder == "little"

# Lines as a little-endian kernel writes them (a listener, two established connections on
# the floating address, one on the node's own address, one in TIME_WAIT).
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0A0200C0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0A0200C0:1F90 640200C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 4243 1
   2: 0A0200C0:1F90 650200C0:A000 01 00000000:00000010 01:00000014 00000000     0        0 4244 1
   3: 0B0200C0:0016 640200C0:D432 01 00000000:00000000 00:00000000 00000000     0        0 4245 1
   4: 0A0200C0:1F90 640200C0:D430 06 00000000:00000000 03:00001770 00000000     0        0 0 3
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: B80D0120000001000000000010000000:01BB B80D0120000001000000000064000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 77 1
   1: B80D0120000001000000000010000000:01BB B80D0120000001000000000065000000:C351 02 00000000:00000000 00:00000000 00000000     0        0 78 1
"""  # noqa: E501


@pytest.mark.skipif(not LITTLE, reason="the sample lines are a little-endian kernel's")
def test_ipv4_lines_give_the_established_connections_on_the_address() -> None:
    found = parse_proc_tcp(TCP, [VIP4])
    assert found == [
        Connection(VIP4, 8080, IPv4Address("192.0.2.100"), 0xD431),
        Connection(VIP4, 8080, IPv4Address("192.0.2.101"), 0xA000),
    ]


@pytest.mark.skipif(not LITTLE, reason="the sample lines are a little-endian kernel's")
def test_ipv6_lines_give_the_established_connections_on_the_address() -> None:
    found = parse_proc_tcp(TCP6, [VIP6])
    assert found == [Connection(VIP6, 443, IPv6Address("2001:db8:1::64"), 50000)]


def test_no_wanted_address_means_nothing_and_other_addresses_are_left_out() -> None:
    assert parse_proc_tcp(TCP, []) == []
    assert parse_proc_tcp(TCP, [IPv4Address("198.51.100.7")]) == []


def test_broken_lines_are_skipped() -> None:
    hexed = proc_hex(VIP4)
    text = f"header\n   0: {hexed}:1F90 ZZZZ:0000 01\n   1: short\n\n"
    assert parse_proc_tcp(text, [VIP4]) == []


def test_proc_hex_round_trips_through_the_kernels_word_order() -> None:
    for text in ("192.0.2.10", "2001:db8:1::10", "::ffff:192.0.2.1"):
        address = ip_address(text)
        hexed = proc_hex(address)
        words = [int(hexed[i : i + 8], 16) for i in range(0, len(hexed), 8)]
        raw = struct.pack(f"={len(words)}I", *words)
        assert raw == address.packed


def test_this_namespaces_own_connection_is_found() -> None:
    # A real connection over loopback: the kernel's own /proc/self/net/tcp lists it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname(), timeout=5)
        accepted, _ = server.accept()
        with client, accepted:
            port = server.getsockname()[1]
            found = established([IPv4Address("127.0.0.1")])
            mine = Connection(IPv4Address("127.0.0.1"), port, IPv4Address("127.0.0.1"),
                              client.getsockname()[1])  # fmt: skip
            assert mine in found
            # The client side is a connection too, on its own (ephemeral) local port.
            assert any(c.local_port == client.getsockname()[1] for c in found)


def test_ipv4_segment_equals_a_reset_the_kernel_wrote() -> None:
    # Captured on a veth: the kernel's RST|ACK to a SYN for a closed port (198.51.100.1:9),
    # its checksum computed in software by the kernel.
    kernel = bytes.fromhex("0009a7a4000000003799db0c50140000a1120000")
    ours = tcp_segment(IPv4Address("198.51.100.1"), IPv4Address("198.51.100.2"), 9, 0xA7A4,
                       seq=0, ack=0x3799DB0C, flags=0x14, window=0)  # fmt: skip
    assert ours == kernel


def test_tickle_segment_is_a_bare_ack_from_the_server_port() -> None:
    segment = tcp_segment(VIP4, IPv4Address("192.0.2.100"), 8080, 54321)
    sport, dport, seq, ack, offset, flags, window = struct.unpack("!HHIIBBH", segment[:16])
    assert (sport, dport, seq, ack, offset >> 4, flags, window) == (8080, 54321, 0, 0, 5, 0x10,
                                                                     1024)  # fmt: skip


@pytest.mark.parametrize(
    ("src", "dst"),
    [(VIP4, IPv4Address("192.0.2.100")), (VIP6, IPv6Address("2001:db8:1::100"))],
)
def test_checksum_verifies_over_the_pseudo_header(
    src: IPv4Address | IPv6Address, dst: IPv4Address | IPv6Address
) -> None:
    segment = tcp_segment(src, dst, 443, 40000)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 6, len(segment))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(segment), 6)
    assert internet_checksum(pseudo + segment) == 0
    # A wrong address would not verify: the pseudo-header is really in the sum.
    assert internet_checksum(dst.packed + src.packed[:-1] + b"\x01" + pseudo[len(src.packed) * 2:]
                             + segment) != 0  # fmt: skip


def test_ipv4_clients_of_a_dual_stack_server_are_found_as_ipv4() -> None:
    # Accepted on an IPv6 socket: the kernel lists it in tcp6 as ::ffff:127.0.0.1.
    with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        accepted, _ = server.accept()
        with client, accepted:
            found = established([IPv4Address("127.0.0.1"), IPv6Address("::1")])
            mine = Connection(IPv4Address("127.0.0.1"), port, IPv4Address("127.0.0.1"),
                              client.getsockname()[1])  # fmt: skip
            assert mine in found
            assert tcp_in_use(6) and tcp_in_use(4)
            assert list(found) == sorted(found, key=sort_key)
