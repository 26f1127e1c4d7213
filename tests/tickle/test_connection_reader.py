"""The connection reader walks /proc/net/tcp again only when the kernel's TCP counters move."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hotstandby.agent.tickle import ConnectionReader, TcpCounterFile, TcpCounters, parse_snmp_tcp
from hotstandby.lab import skip_reason
from hotstandby.wire.connlist import Connection, IPAddress

VIP = IPv4Address("192.0.2.10")
CLIENT = IPv4Address("192.0.2.100")

SNMP = """\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1234
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs
Tcp: 1 200 120000 -1 17 42 0 3 5 999
Udp: InDatagrams NoPorts
Udp: 10 0
"""  # noqa: E501


def test_snmp_text_gives_the_tcp_counters() -> None:
    assert parse_snmp_tcp(SNMP) == TcpCounters(active_opens=17, passive_opens=42, current=5)
    # The Tcp lines first, and the last line without its newline: the same counters.
    first = "Tcp: ActiveOpens CurrEstab PassiveOpens\nTcp: 7 1 9"
    assert parse_snmp_tcp(first) == TcpCounters(active_opens=7, passive_opens=9, current=1)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Tcp: ActiveOpens PassiveOpens CurrEstab\n",  # no value line
        "Tcp: ActiveOpens PassiveOpens CurrEstab",  # nor the header's end
        "Tcp: ActiveOpens PassiveOpens CurrEstab\nTcp: 1 2\n",  # a value missing
        "Tcp: ActiveOpens PassiveOpens\nTcp: 1 2\n",  # no CurrEstab
        "Tcp: ActiveOpens PassiveOpens CurrEstab\nTcp: 1 x 3\n",  # not a number
    ],
)
def test_an_unreadable_snmp_text_gives_no_counters(text: str) -> None:
    assert parse_snmp_tcp(text) is None


def test_the_counter_file_reads_the_text_anew_each_time(tmp_path: Path) -> None:
    snmp = tmp_path / "snmp"
    counters = TcpCounterFile(str(snmp))
    assert counters() is None  # not there (yet): unknown, and no descriptor kept
    snmp.write_text(SNMP)
    assert counters() == TcpCounters(17, 42, 5)
    # Rewritten in place, as the kernel renders it anew: the kept descriptor sees it.
    with snmp.open("r+") as f:
        f.write(SNMP.replace("-1 17 42 0 3 5", "-1 18 42 0 3 6"))
    assert counters() == TcpCounters(18, 42, 6)
    counters.close()
    counters.close()  # twice is harmless
    assert counters() == TcpCounters(18, 42, 6)  # opened again
    snmp.write_text("Tcp: nothing useful\n")
    assert counters() is None
    counters.close()


class FakeKernel:
    """Counters and a walk a test sets; counts the walks."""

    def __init__(self) -> None:
        self.counters: TcpCounters | None = TcpCounters(1, 1, 1)
        self.connections: tuple[Connection, ...] = (Connection(VIP, 5432, CLIENT, 40000),)
        self.walked: list[tuple[IPAddress, ...]] = []

    def walk(self, addresses: Sequence[IPAddress]) -> tuple[Connection, ...]:
        self.walked.append(tuple(addresses))
        return tuple(c for c in self.connections if c.local in addresses)


def read(reader: ConnectionReader, addresses: Sequence[IPAddress]) -> tuple[Connection, ...]:
    return asyncio.run(reader.read(addresses))


def test_counters_standing_still_spare_the_walk() -> None:
    kernel = FakeKernel()
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    first = read(reader, [VIP])
    assert first == kernel.connections
    assert read(reader, [VIP]) == first
    assert len(kernel.walked) == reader.walks == 1


@pytest.mark.parametrize(
    "moved",
    [TcpCounters(2, 1, 1), TcpCounters(1, 2, 1), TcpCounters(1, 1, 2)],
    ids=["active open", "passive open", "one closed"],
)
def test_any_counter_moving_walks_again(moved: TcpCounters) -> None:
    kernel = FakeKernel()
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    read(reader, [VIP])
    kernel.counters = moved
    kernel.connections += (Connection(VIP, 5432, CLIENT, 40001),)
    assert read(reader, [VIP]) == kernel.connections
    assert len(kernel.walked) == 2


def test_other_addresses_walk_again() -> None:
    kernel = FakeKernel()
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    read(reader, [VIP])
    other = IPv4Address("192.0.2.11")
    assert read(reader, [VIP, other]) == kernel.connections
    assert kernel.walked[-1] == (VIP, other)


def test_no_open_connection_in_the_namespace_needs_no_walk() -> None:
    kernel = FakeKernel()
    kernel.counters = TcpCounters(5, 5, 0)
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    assert read(reader, [VIP]) == ()
    assert kernel.walked == []


def test_unknown_counters_walk_every_time() -> None:
    kernel = FakeKernel()
    kernel.counters = None
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    read(reader, [VIP])
    read(reader, [VIP])
    assert len(kernel.walked) == 2


def test_no_address_gives_nothing() -> None:
    kernel = FakeKernel()
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    assert read(reader, []) == ()
    assert kernel.walked == []


def test_stale_says_when_a_read_would_walk() -> None:
    kernel = FakeKernel()
    reader = ConnectionReader(lambda: kernel.counters, kernel.walk)
    assert not reader.stale([])  # nothing looked for yet, nothing wanted
    assert reader.stale([VIP])  # never read
    read(reader, [VIP])
    assert not reader.stale([VIP])
    assert reader.stale([VIP, IPv4Address("192.0.2.11")])  # other addresses
    assert reader.stale([])  # no longer wanted: an empty list is news
    kernel.counters = TcpCounters(1, 2, 2)
    assert reader.stale([VIP])
    read(reader, [VIP])
    assert not reader.stale([VIP])
    kernel.counters = None
    assert reader.stale([VIP])  # unknown counters: always worth a look
    assert len(kernel.walked) == 2  # stale() itself never walks


# The real kernel, in a network namespace of the test's own (so no other program's
# connections move its counters): the reader's answers and its walks, as JSON.
IN_NAMESPACE = """
import asyncio, json, socket
from ipaddress import IPv4Address
from hotstandby.agent.tickle import ConnectionReader

LO = IPv4Address("127.0.0.1")
reader = ConnectionReader()
steps = []

def look(label):
    found = asyncio.run(reader.read([LO]))
    ports = sorted(c.remote_port for c in found if c.local_port == port)
    steps.append([label, reader.walks, ports])

server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
look("listening only")
client = socket.create_connection(("127.0.0.1", port))
accepted, _ = server.accept()
keeper = socket.create_connection(("127.0.0.1", port))
keeper_port = keeper.getsockname()[1]
kept, _ = server.accept()
stale_when_new = reader.stale([LO])
look("connected")
look("nothing changed")
stale_when_unchanged = reader.stale([LO])
client.shutdown(socket.SHUT_WR)
while accepted.recv(1):
    pass
look("client half-closed")
accepted.close()
client_port = client.getsockname()[1]
client.close()
look("closed")
kept.close()
keeper.close()
look("all closed")
print(json.dumps({"steps": steps, "client_port": client_port,
                  "stale": [stale_when_new, stale_when_unchanged],
                  "keeper_port": keeper_port}))
"""


def test_the_real_kernels_counters_gate_the_walk() -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    netns = f"htk-reader-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        done = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", IN_NAMESPACE],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    port, keeper = result["client_port"], result["keeper_port"]
    both = sorted([port, keeper])
    steps = {label: (walks, ports) for label, walks, ports in result["steps"]}
    # A listener alone is no open connection: no walk at all.
    assert steps["listening only"] == (0, [])
    # The new connections move the counters: walked, and found.
    assert steps["connected"] == (1, both)
    # Nothing moved: no walk, the same answer.
    assert steps["nothing changed"] == (1, both)
    assert result["stale"] == [True, False]
    # The client's half is closed, the server's side waits in CLOSE_WAIT: still listed.
    half_walks, half_ports = steps["client half-closed"]
    assert half_ports == both
    # One closed: the counter fell, walked again, only the other is left.
    walks, ports = steps["closed"]
    assert walks > half_walks and ports == [keeper]
    # None open: known from the counter alone, no walk.
    assert steps["all closed"] == (walks, [])
