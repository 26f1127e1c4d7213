"""The disk arbiter on a real loop device answers like the simulator's DiskSlots model.

Request sequences of two nodes: claims with fresh tokens, reads of one's own slot, and
acknowledgements of the request posted to a node (as the core sends them). RELEASE (the
withdrawal of a claim) is left out: the model keeps a withdrawn request, the disk clears it
(`test_disk_arbiter.py` tests that), so that an abandoned claim cannot make a later active
node release.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotstandby.agent.disk_arbiter import DiskArbiter
from hotstandby.config.disk_layout import arbitration_area
from hotstandby.core.messages import ArbiterOutcome, ArbiterRequest
from hotstandby.lab.disk import SharedDisk
from hotstandby.sim.arbiter import DiskSlots

from .conftest import DISK_SIZE, PREFIX, require_root

pytestmark = pytest.mark.lab

NODES = ("a", "b")
OPS = st.lists(
    st.tuples(st.sampled_from(NODES), st.sampled_from(["claim", "renew", "ack"])),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedDisk]:
    """One loop device per node over one file, for the whole module."""
    require_root()
    folder = tmp_path_factory.mktemp(f"{PREFIX}-{os.getpid()}-model")
    shared = SharedDisk(folder / "shared.img", DISK_SIZE, NODES)
    try:
        shared.attach()
        yield shared
    finally:
        shared.detach()


def _wipe(device: str) -> None:
    start, end = arbitration_area(len(NODES))
    buf = mmap.mmap(-1, end - start)
    fd = os.open(device, os.O_RDWR | os.O_DIRECT | os.O_DSYNC)
    try:
        assert os.pwrite(fd, buf, start) == end - start
    finally:
        os.close(fd)
        buf.close()


Answer = tuple[ArbiterOutcome, str | None, int]


def _model_renew(answers: list[Answer]) -> list[Answer]:
    # The model lists RENEWED first; the port puts it last (it marks the read complete).
    return [a for a in answers if a[0] is not ArbiterOutcome.RENEWED] + [
        (ArbiterOutcome.RENEWED, None, 0)
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS)
def test_request_sequences_match_the_model(disk: SharedDisk, ops: list[tuple[str, str]]) -> None:
    _wipe(disk.device("a"))
    model = DiskSlots(NODES)

    async def scenario() -> None:
        arbiters = {
            n: DiskArbiter("lab", NODES, n, b"k" * 32, disk.device(n), first_seq=1) for n in NODES
        }
        token = 0
        try:
            for t, (node, op) in enumerate(ops):
                peer = "b" if node == "a" else "a"
                me = arbiters[node]
                if op == "claim":
                    token += 1
                    want = model.request(node, ArbiterRequest.CLAIM, peer, token)
                    got = await me.ask(ArbiterRequest.CLAIM, 1, t, peer, token)
                    assert [(a.outcome, a.peer, a.token) for a in got] == want
                elif op == "renew":
                    want = _model_renew(model.request(node, ArbiterRequest.RENEW, None))
                    got = await me.ask(ArbiterRequest.RENEW, 1, t, None)
                    assert [(a.outcome, a.peer, a.token) for a in got] == want, (t, ops)
                    assert {a.sent_at for a in got} == {t}
                else:
                    posted = model.requests[node]
                    if posted is None:
                        continue  # the core acknowledges only a request it read
                    assert model.request(node, ArbiterRequest.ACK, peer, posted[1]) == []
                    assert await me.ask(ArbiterRequest.ACK, 1, t, peer, posted[1]) == []
            for arbiter in arbiters.values():
                assert arbiter.stats.dropped == {}
        finally:
            for arbiter in arbiters.values():
                await arbiter.close()

    asyncio.run(scenario())


def test_the_wipe_leaves_no_cells(disk: SharedDisk) -> None:
    async def scenario() -> None:
        a = DiskArbiter("lab", NODES, "a", b"k" * 32, disk.device("a"))
        b = DiskArbiter("lab", NODES, "b", b"k" * 32, disk.device("b"))
        try:
            await a.ask(ArbiterRequest.CLAIM, 1, 0.0, "b", 5)
            _wipe(disk.device("a"))
            got = await b.ask(ArbiterRequest.RENEW, 1, 1.0, None)
            assert [x.outcome for x in got] == [ArbiterOutcome.RENEWED]
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
