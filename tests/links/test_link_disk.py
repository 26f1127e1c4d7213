"""The disk link on loop devices: slots written and read, no re-delivery, cut and slow paths."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hotstandby.agent.links import SLOT_SIZE, DiskLink
from hotstandby.lab.disk import SharedDisk, set_read_only
from tests.links.linkhelp import CountingIO, Inbox, WatchedStats, slow_device

pytestmark = pytest.mark.lab

OFFSET = 8 * SLOT_SIZE  # not at 0: the heartbeat area shares the disk with other data
INTERVAL = 0.02
SLOTS = {"a": 0, "b": 1, "c": 2}


def _link(disk: SharedDisk, node: str, peers: list[str], io: CountingIO | None = None) -> DiskLink:
    return DiskLink(
        "disk",
        disk.device(node),
        OFFSET,
        SLOTS[node],
        {p: SLOTS[p] for p in peers},
        interval=INTERVAL,
        io_timeout=0.2,
        io=io,
    )


def test_a_writes_b_reads_each_new_content_once(shared_disk: SharedDisk) -> None:
    async def scenario() -> None:
        reads_b = CountingIO(asyncio.get_running_loop())
        link_a = _link(shared_disk, "a", ["b"])
        link_b = _link(shared_disk, "b", ["a"], reads_b)
        inbox_b = Inbox()
        await link_a.start(Inbox())
        await link_b.start(inbox_b)
        try:
            link_a.send(b"beat 1 from a")
            assert await inbox_b.next() == ("disk", b"beat 1 from a")
            # The slot keeps its content; reading it again must not deliver it again.
            await reads_b.reads_done(5)
            assert inbox_b.empty()
            link_a.send(b"beat 2 from a")
            assert await inbox_b.next() == ("disk", b"beat 2 from a")
            # b can see the data before a's pwrite returns (O_DSYNC still flushing).
            await link_a.flush()
            assert link_a.stats.sent == 2
            assert link_a.last_write_seconds is not None
            assert link_b.last_read_seconds is not None
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_what_a_slot_held_before_start_is_not_news(shared_disk: SharedDisk) -> None:
    async def scenario() -> None:
        link_a = _link(shared_disk, "a", ["b"])
        await link_a.start(Inbox())
        link_a.send(b"written long ago")
        await link_a.flush()
        assert link_a.stats.sent == 1
        reads_b = CountingIO(asyncio.get_running_loop())
        link_b = _link(shared_disk, "b", ["a"], reads_b)
        inbox_b = Inbox()
        await link_b.start(inbox_b)
        try:
            await reads_b.reads_done(3)
            assert inbox_b.empty()
            link_a.send(b"fresh")
            assert await inbox_b.next() == ("disk", b"fresh")
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_a_cut_path_counts_write_errors(shared_disk: SharedDisk) -> None:
    async def scenario() -> None:
        link_a = _link(shared_disk, "a", ["b"])
        stats = link_a.stats = WatchedStats()
        reads_b = CountingIO(asyncio.get_running_loop())
        link_b = _link(shared_disk, "b", ["a"], reads_b)
        inbox_b = Inbox()
        await link_a.start(Inbox())
        await link_b.start(inbox_b)
        try:
            set_read_only(shared_disk.device("a"), True)
            link_a.send(b"cannot land")
            await stats.until(lambda: stats.send_failed.get("EPERM") == 1)
            await reads_b.reads_done(3)
            assert inbox_b.empty()
            set_read_only(shared_disk.device("a"), False)
            link_a.send(b"lands again")
            assert await inbox_b.next() == ("disk", b"lands again")
        finally:
            set_read_only(shared_disk.device("a"), False)
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_a_slow_device_never_stalls_the_loop(shared_disk: SharedDisk) -> None:
    async def scenario() -> None:
        link_a = _link(shared_disk, "a", ["b", "c"])
        link_b = _link(shared_disk, "b", ["a", "c"])
        link_c = _link(shared_disk, "c", ["a", "b"])
        stats = link_a.stats = WatchedStats()
        inbox_c = Inbox()
        for link, inbox in ((link_a, Inbox()), (link_b, Inbox()), (link_c, inbox_c)):
            await link.start(inbox)
        try:
            with slow_device(shared_disk.device("a")) as lift:
                link_a.send(b"slow beat from a")
                link_a.send(b"next beat from a")  # the first is still in the kernel
                await stats.until(lambda: stats.send_failed.get("io_timeout") == 1)
                assert stats.send_failed["io_busy"] == 1
                # While a's write hangs, the loop serves the other nodes as usual.
                link_b.send(b"beat from b")
                assert await inbox_c.next() == ("disk", b"beat from b")
                assert link_a._write is not None and not link_a._write.done()
                # a's reads hang too, and the poller skips them instead of piling up.
                await stats.until(lambda: stats.dropped.get("io_busy", 0) >= 2)
                lift()
                # The held write lands when the storage recovers; the link then works again.
                assert await inbox_c.next() == ("disk", b"slow beat from a")
                # c can see the data before a's pwrite returns (O_DSYNC still flushing).
                await asyncio.wait_for(asyncio.shield(link_a._write), 5.0)
                link_a.send(b"a is back")
                assert await inbox_c.next() == ("disk", b"a is back")
        finally:
            for link in (link_a, link_b, link_c):
                await link.close()

    asyncio.run(scenario())


def test_close_releases_the_device(shared_disk: SharedDisk) -> None:
    async def scenario() -> None:
        link_a = _link(shared_disk, "a", ["b"])
        await link_a.start(Inbox())
        link_a.send(b"beat")
        assert _open_on(shared_disk.device("a"))
        await link_a.close()
        assert not _open_on(shared_disk.device("a"))
        link_a.send(b"after close")
        assert link_a.stats.send_failed.get("not_open") == 1

    asyncio.run(scenario())


def _open_on(device: str) -> bool:
    """Whether this process holds a descriptor on device."""
    fds = Path("/proc/self/fd")
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == device:
                return True
        except OSError:
            continue
    return False
