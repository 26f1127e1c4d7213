"""What needs no root: the factory, argument checks, and the disk link's I/O discipline."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from hotstandby.agent.links import SLOT_SIZE, DiskLink, SerialLink, UdpLink, build_links
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Link,
    LinkKind,
    Node,
    Timers,
    frozen_map,
)
from tests.links.linkhelp import GatedIO, Inbox, WatchedStats


def _cluster() -> Cluster:
    nodes = (Node("alpha"), Node("beta"), Node("gamma"))
    links = (
        Link(
            "lan",
            LinkKind.UDP,
            frozen_map({"alpha": "192.0.2.1", "beta": "192.0.2.2", "gamma": "192.0.2.3"}),
            port=7000,
        ),
        Link(
            "cable",
            LinkKind.SERIAL,
            frozen_map({"alpha": "/dev/ttyS0", "beta": "/dev/ttyS1"}),
            baud=19200,
        ),
        Link(
            "san",
            LinkKind.DISK,
            frozen_map({n.name: f"/dev/sd{n.name[0]}" for n in nodes}),
            offset=1 << 20,
        ),
    )
    return Cluster(
        name="c",
        secret_file="/etc/hotstandby/secret",
        nodes=nodes,
        links=links,
        resources=(),
        arbitration=Arbitration(ArbitrationMode.NONE),
        timers=Timers(interval=0.2, warn_time=0.6, dead_time=1.0),
    )


def test_build_links_follows_the_configuration() -> None:
    cluster = _cluster()
    beta = build_links(cluster, "beta")
    assert [link.name for link in beta] == ["lan", "cable", "san"]
    udp, ser, disk = beta
    assert isinstance(udp, UdpLink) and isinstance(ser, SerialLink)
    assert isinstance(disk, DiskLink)
    assert udp.local == ("192.0.2.2", 7000)
    assert udp.peers == [("192.0.2.1", 7000), ("192.0.2.3", 7000)]
    assert (ser.device, ser.baud, ser.interval) == ("/dev/ttyS1", 19200, 0.2)
    # Slots follow the node order of the file, the same on every node.
    assert (disk.device, disk.offset, disk.slot) == ("/dev/sdb", 1 << 20, 1)
    assert disk.peers == {"alpha": 0, "gamma": 2}
    assert (disk.interval, disk.io_timeout) == (0.2, 0.6)
    # gamma has no serial port: it gets no serial link.
    assert [link.name for link in build_links(cluster, "gamma")] == ["lan", "san"]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="address family"):
        UdpLink("lan", "192.0.2.11", ["2001:db8:1::12"], 694)
    with pytest.raises(socket.gaierror):
        UdpLink("lan", "node-a.example", ["192.0.2.12"], 694)
    with pytest.raises(ValueError, match="multiple of 4096"):
        DiskLink("san", "/dev/null", 512, 0, {"b": 1})
    with pytest.raises(ValueError, match="slot of its own"):
        DiskLink("san", "/dev/null", 0, 1, {"b": 1})


def _slot(message: bytes) -> bytes:
    return (struct.pack(">I", len(message)) + message).ljust(SLOT_SIZE, b"\0")


def test_disk_link_skips_io_while_a_write_hangs() -> None:
    async def scenario() -> None:
        io = GatedIO(asyncio.get_running_loop(), 2 * SLOT_SIZE)
        link = DiskLink("san", "mem", 0, 0, {"b": 1}, interval=0.01, io_timeout=0.05, io=io)
        stats = link.stats = WatchedStats()
        await link.start(Inbox())
        try:
            io.gate.clear()  # the next write hangs "in the kernel"
            link.send(b"one")
            await asyncio.to_thread(io.writes_started.acquire)
            link.send(b"two")
            assert stats.send_failed == {"io_busy": 1}
            await stats.until(lambda: stats.send_failed.get("io_timeout") == 1)
            link.send(b"three")
            assert stats.send_failed["io_busy"] == 2
            io.gate.set()
            assert link._write is not None
            await link._write  # the hung write returns; its waiter gave up long ago
            link.send(b"four")
            await link.flush()
            # The hung write landed late; the next one went through normally.
            assert io.data[:SLOT_SIZE] == _slot(b"four")
            assert stats.sent == 1
            assert stats.send_errors == 3
        finally:
            await link.close()

    asyncio.run(scenario())


def test_disk_link_delivers_changes_only_and_rejects_bad_slots() -> None:
    async def scenario() -> None:
        io = GatedIO(asyncio.get_running_loop(), 3 * SLOT_SIZE)
        io.data[SLOT_SIZE : 2 * SLOT_SIZE] = _slot(b"stale from before")
        link = DiskLink("san", "mem", 0, 0, {"b": 1, "c": 2}, interval=0.01, io=io)
        stats = link.stats = WatchedStats()
        inbox = Inbox()
        await link.start(inbox)
        try:
            io.data[2 * SLOT_SIZE : 3 * SLOT_SIZE] = _slot(b"from c")
            assert await inbox.next() == ("san", b"from c")
            io.data[SLOT_SIZE : SLOT_SIZE + 4] = struct.pack(">I", SLOT_SIZE)  # corrupt
            await stats.until(lambda: stats.dropped.get("bad_slot") == 1)
            io.data[SLOT_SIZE : 2 * SLOT_SIZE] = _slot(b"from b")
            assert await inbox.next() == ("san", b"from b")
            assert stats.dropped == {"bad_slot": 1}
        finally:
            await link.close()

    asyncio.run(scenario())


def test_disk_link_keeps_trying_a_device_that_is_not_there() -> None:
    async def scenario() -> None:
        io = GatedIO(asyncio.get_running_loop(), 2 * SLOT_SIZE)
        io.present = False
        io.data[SLOT_SIZE : 2 * SLOT_SIZE] = _slot(b"stale, from before")
        link = DiskLink("san", "/dev/later", 0, 0, {"b": 1}, interval=0.01, io=io)
        stats = link.stats = WatchedStats()
        inbox = Inbox()
        await link.start(inbox)  # does not raise: the other links must still come up
        try:
            link.send(b"lost")
            assert stats.send_failed == {"not_open": 1}
            await stats.until(lambda: stats.dropped.get("open_ENOENT", 0) >= 3)
            io.present = True
            await io.reads_done(1)  # the baseline, right after the open
            assert inbox.empty()
            io.data[SLOT_SIZE : 2 * SLOT_SIZE] = _slot(b"news")
            assert await inbox.next() == ("san", b"news")
            link.send(b"mine")
            await link.flush()
            assert io.data[:SLOT_SIZE] == _slot(b"mine")
        finally:
            await link.close()

    asyncio.run(scenario())
