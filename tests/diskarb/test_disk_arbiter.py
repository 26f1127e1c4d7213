"""The disk arbiter on real loop devices: two or three nodes' paths to one shared disk."""

from __future__ import annotations

import asyncio
import itertools
import mmap
import os
import time
from collections.abc import Awaitable, Callable

import pytest

from hotstandby.agent.arbiter_cell import Cell, CellCodec
from hotstandby.agent.disk_arbiter import DiskArbiter, DiskArbiterError
from hotstandby.config.disk_layout import SLOT_SIZE, cell_offset
from hotstandby.core.messages import ArbiterAnswer, ArbiterOutcome, ArbiterRequest
from hotstandby.lab.disk import SharedDisk

from .conftest import slow_device

pytestmark = pytest.mark.lab

SECRET = b"k" * 32
NODES = ("a", "b", "c")
CLAIM, RENEW, ACK, RELEASE = (
    ArbiterRequest.CLAIM,
    ArbiterRequest.RENEW,
    ArbiterRequest.ACK,
    ArbiterRequest.RELEASE,
)
REQUESTED, RELEASED, RENEWED = (
    ArbiterOutcome.RELEASE_REQUESTED,
    ArbiterOutcome.PEER_RELEASED,
    ArbiterOutcome.RENEWED,
)


def _arbiter(disk: SharedDisk, node: str, timeout: float = 0.5) -> DiskArbiter:
    return DiskArbiter("lab", NODES, node, SECRET, disk.device(node), io_timeout=timeout)


def _seen(answers: list[ArbiterAnswer]) -> list[tuple[ArbiterOutcome, str | None, int]]:
    return [(a.outcome, a.peer, a.token) for a in answers]


def _run(disk: SharedDisk, scenario: Callable[..., Awaitable[None]], *nodes: str) -> None:
    async def main() -> None:
        arbiters = [_arbiter(disk, n) for n in nodes]
        try:
            await scenario(*arbiters)
        finally:
            for arbiter in arbiters:
                await arbiter.close()

    asyncio.run(main())


def _poke(device: str, offset: int, data: bytes) -> None:
    """Write one raw cell through the device, as a stray writer would."""
    buf = mmap.mmap(-1, SLOT_SIZE)
    buf[:] = data.ljust(SLOT_SIZE, b"\0")
    fd = os.open(device, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
    try:
        assert os.pwrite(fd, buf, offset) == SLOT_SIZE
    finally:
        os.close(fd)
        buf.close()


def test_release_or_die_and_its_acknowledgement(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter, b: DiskArbiter) -> None:
        assert _seen(await b.ask(RENEW, 1, 1.0, None)) == [(RENEWED, None, 0)]
        granted = await a.ask(CLAIM, 2, 2.0, "b", token=77)
        assert _seen(granted) == [(ArbiterOutcome.GRANTED, "b", 77)]
        assert granted[0].sent_at == 2.0
        # Posted until acknowledged: every read reports it, RENEWED last.
        for at in (3.0, 3.5):
            answers = await b.ask(RENEW, 1, at, None)
            assert _seen(answers) == [(REQUESTED, "a", 77), (RENEWED, None, 0)]
            assert {x.sent_at for x in answers} == {at}
        assert _seen(await a.ask(RENEW, 2, 4.0, None)) == [(RENEWED, None, 0)]
        assert await b.ask(ACK, 1, 5.0, "a", token=77) == []
        assert _seen(await b.ask(RENEW, 1, 6.0, None)) == [(RENEWED, None, 0)]
        assert _seen(await a.ask(RENEW, 2, 7.0, None)) == [(RELEASED, "b", 77), (RENEWED, None, 0)]
        # Reported once.
        assert _seen(await a.ask(RENEW, 2, 8.0, None)) == [(RENEWED, None, 0)]
        assert a.stats.dropped == b.stats.dropped == {}

    _run(shared_disk, scenario, "a", "b")


def test_an_old_acknowledgement_never_answers_a_new_claim(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter, b: DiskArbiter) -> None:
        await a.ask(CLAIM, 2, 1.0, "b", token=10)
        await b.ask(ACK, 1, 2.0, "a", token=10)
        await a.ask(CLAIM, 3, 3.0, "b", token=11)  # a new claim before a read the old ack
        assert _seen(await a.ask(RENEW, 3, 4.0, None)) == [(RENEWED, None, 0)]
        assert _seen(await b.ask(RENEW, 1, 5.0, None)) == [(REQUESTED, "a", 11), (RENEWED, None, 0)]
        await b.ask(ACK, 1, 6.0, "a", token=11)
        assert _seen(await a.ask(RENEW, 3, 7.0, None)) == [(RELEASED, "b", 11), (RENEWED, None, 0)]

    _run(shared_disk, scenario, "a", "b")


def test_a_withdrawn_request_is_gone_and_a_newer_one_stays(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter, b: DiskArbiter) -> None:
        await a.ask(CLAIM, 2, 1.0, "b", token=5)
        assert await a.ask(RELEASE, 2, 2.0, "b", token=4) == []  # an older claim's withdrawal
        assert _seen(await b.ask(RENEW, 1, 3.0, None)) == [(REQUESTED, "a", 5), (RENEWED, None, 0)]
        await a.ask(RELEASE, 2, 4.0, "b", token=5)
        assert _seen(await b.ask(RENEW, 1, 5.0, None)) == [(RENEWED, None, 0)]

    _run(shared_disk, scenario, "a", "b")


def test_three_nodes_each_claimant_has_its_own_cell(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter, b: DiskArbiter, c: DiskArbiter) -> None:
        await a.ask(CLAIM, 2, 1.0, "c", token=1)
        await b.ask(CLAIM, 2, 1.0, "c", token=2)  # does not overwrite a's request
        got = _seen(await c.ask(RENEW, 1, 2.0, None))
        assert got == [(REQUESTED, "a", 1), (REQUESTED, "b", 2), (RENEWED, None, 0)]
        # A claim with no peer posts to every other node.
        await c.ask(CLAIM, 3, 3.0, None, token=9)
        for node, other in ((a, "b"), (b, "a")):
            got = _seen(await node.ask(RENEW, 2, 4.0, None))
            assert got == [(REQUESTED, "c", 9), (RENEWED, None, 0)], other

    _run(shared_disk, scenario, "a", "b", "c")


def test_forged_misplaced_and_replayed_cells_are_ignored_and_counted(
    shared_disk: SharedDisk,
) -> None:
    dev = shared_disk.device("c")
    into_b_from_a = cell_offset(1, 0, 3)

    async def scenario(a: DiskArbiter, b: DiskArbiter) -> None:
        forged = CellCodec("lab", b"x" * 32).encode(Cell("a", "b", 2**62, 1, 666))
        _poke(dev, into_b_from_a, forged)
        assert _seen(await b.ask(RENEW, 1, 1.0, None)) == [(RENEWED, None, 0)]
        assert b.stats.dropped == {"bad_mac": 1}
        _poke(dev, into_b_from_a, b"HSARB garbage")
        await b.ask(RENEW, 1, 2.0, None)
        # a's genuine cell written for c, copied into b's row: signed, but not for b.
        await a.ask(CLAIM, 2, 3.0, "c", token=8)
        copy = _read(dev, cell_offset(2, 0, 3))
        _poke(dev, into_b_from_a, copy)
        assert _seen(await b.ask(RENEW, 1, 4.0, None)) == [(RENEWED, None, 0)]
        # A genuine request, then its older content written back.
        await a.ask(CLAIM, 3, 5.0, "b", token=20)
        old = _read(dev, into_b_from_a)
        await a.ask(CLAIM, 4, 6.0, "b", token=21)
        assert _seen(await b.ask(RENEW, 1, 7.0, None))[0] == (REQUESTED, "a", 21)
        _poke(dev, into_b_from_a, old)
        assert _seen(await b.ask(RENEW, 1, 8.0, None)) == [(RENEWED, None, 0)]
        assert b.stats.dropped == {"bad_mac": 1, "bad_version": 1, "misplaced": 1, "replayed": 1}

    _run(shared_disk, scenario, "a", "b")


def _read(device: str, offset: int) -> bytes:
    buf = mmap.mmap(-1, SLOT_SIZE)
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    try:
        os.preadv(fd, [buf], offset)
        return buf[:]
    finally:
        os.close(fd)
        buf.close()


def test_a_device_refusing_writes_fails_the_claim(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter) -> None:
        shared_disk.set_cut("a", True)
        try:
            with pytest.raises(DiskArbiterError, match="Operation not permitted"):
                await a.ask(CLAIM, 2, 1.0, "b", token=3)
        finally:
            shared_disk.set_cut("a", False)
        assert a.stats.failed == {"errno_1": 1}
        await a.ask(CLAIM, 2, 2.0, "b", token=3)  # the path is back

    _run(shared_disk, scenario, "a")


def test_a_slow_device_fails_within_the_timeout_and_never_stalls_the_loop(
    shared_disk: SharedDisk,
) -> None:
    async def scenario() -> None:
        a = _arbiter(shared_disk, "a", timeout=0.3)
        b = _arbiter(shared_disk, "b", timeout=0.3)
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        beat = asyncio.create_task(ticker())
        try:
            with slow_device(shared_disk.device("a")) as lift:
                began = time.monotonic()
                with pytest.raises(DiskArbiterError, match=r"no answer in 0\.3s"):
                    await a.ask(CLAIM, 2, 1.0, "b", token=4)
                took = time.monotonic() - began
                assert 0.3 <= took < 0.6
                # The stuck write still holds the worker: the next request fails at once.
                began = time.monotonic()
                with pytest.raises(DiskArbiterError, match="still stuck"):
                    await a.ask(RENEW, 2, 2.0, None)
                assert time.monotonic() - began < 0.1
                # Meanwhile the event loop ran on, and another node's path works.
                gaps = [y - x for x, y in itertools.pairwise(ticks)]
                assert gaps and max(gaps) < 0.2
                assert _seen(await b.ask(RENEW, 1, 3.0, None))[-1][0] is RENEWED
                lift()
            # The late write lands after the limit is lifted; then a works again.
            deadline = time.monotonic() + 10
            while True:
                try:
                    await a.ask(RENEW, 2, 4.0, None)
                    break
                except DiskArbiterError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert a.stats.failed["io_timeout"] == 1
            assert a.stats.failed["io_busy"] >= 1
        finally:
            beat.cancel()
            await a.close()
            await b.close()

    asyncio.run(scenario())


def test_a_restart_with_the_clock_stepped_back_is_not_taken_for_a_replay(
    shared_disk: SharedDisk,
) -> None:
    async def scenario(b: DiskArbiter) -> None:
        before = DiskArbiter("lab", NODES, "a", SECRET, shared_disk.device("a"), first_seq=10**12)
        await before.ask(CLAIM, 2, 1.0, "b", token=30)
        await before.close()
        assert _seen(await b.ask(RENEW, 1, 2.0, None))[0] == (REQUESTED, "a", 30)
        # The next boot's clock reads earlier: its numbers go on from what the disk holds.
        after = DiskArbiter("lab", NODES, "a", SECRET, shared_disk.device("a"), first_seq=5)
        try:
            await after.ask(CLAIM, 3, 3.0, "b", token=31)
        finally:
            await after.close()
        assert _seen(await b.ask(RENEW, 1, 4.0, None))[0] == (REQUESTED, "a", 31)
        assert b.stats.dropped == {}

    _run(shared_disk, scenario, "b")


def test_an_acknowledgement_that_failed_leaves_the_request_news(shared_disk: SharedDisk) -> None:
    async def scenario(a: DiskArbiter, b: DiskArbiter) -> None:
        await a.ask(CLAIM, 2, 1.0, "b", token=40)
        shared_disk.set_cut("b", True)
        try:
            with pytest.raises(DiskArbiterError):
                await b.ask(ACK, 1, 2.0, "a", token=40)
            # Reads still work on a path that refuses writes: the request is still there.
            assert _seen(await b.ask(RENEW, 1, 3.0, None))[0] == (REQUESTED, "a", 40)
        finally:
            shared_disk.set_cut("b", False)
        await b.ask(ACK, 1, 4.0, "a", token=40)
        assert _seen(await b.ask(RENEW, 1, 5.0, None)) == [(RENEWED, None, 0)]
        assert _seen(await a.ask(RENEW, 2, 6.0, None))[0] == (RELEASED, "b", 40)

    _run(shared_disk, scenario, "a", "b")
