"""How the loop drives the fence and arbiter adapters: answers, timeouts, errors, none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from hotstandby.agent.loop import Adapters, Agent, _Carry
from hotstandby.agent.state_store import StateStore
from hotstandby.core.messages import (
    ArbiterAnswer,
    ArbiterOutcome,
    ArbiterRequest,
    AskArbiter,
    Event,
    FenceDone,
    FencePeer,
    Reason,
    Rejected,
    Reply,
    Tick,
)

from .fakes import HANG, FakeArbiter, FakeFence
from .harness import SECRET, make_cluster

WHY = Reason("test")


def lone(
    tmp_path: Path,
    body: Callable[[Agent], Awaitable[None]],
    fence: FakeFence | None = None,
    arbiter: FakeArbiter | None = None,
) -> None:
    """One agent, never run: its commands are carried out by hand."""
    base = make_cluster()
    # Short enough for a test (the arbiter is allowed lease / 4); the loop reads
    # this, not the loader's rules. The fence's bound is the fake's total_timeout.
    cluster = replace(base, timers=replace(base.timers, lease=0.2))

    async def main() -> None:
        adapters = Adapters(links=[], resources={}, fence=fence, arbiter=arbiter)
        agent = Agent(cluster, "alpha", SECRET, adapters, StateStore(tmp_path))
        await asyncio.wait_for(body(agent), 5.0)

    asyncio.run(main())


async def answer(agent: Agent) -> Event:
    """The next event the adapters put on the agent's queue."""
    item = await asyncio.wait_for(agent.queue.get(), 2.0)
    assert not isinstance(item, _Carry)
    return item


def test_fencing(tmp_path: Path) -> None:
    fence = FakeFence(answers=[(False, "no power switch"), HANG, OSError(113, "No route")])

    async def body(agent: Agent) -> None:
        for expected in [
            FenceDone("beta", False, "no power switch"),
            FenceDone("beta", False, "timed out after 0.05s"),
            FenceDone("beta", False, "OSError: [Errno 113] No route"),
            FenceDone("beta", True, "fenced"),
        ]:
            agent._execute(FencePeer("beta", 1, WHY))
            assert await answer(agent) == expected
        assert fence.targets == ["beta"] * 4

    lone(tmp_path, body, fence=fence)


def test_fencing_without_a_method(tmp_path: Path) -> None:
    async def body(agent: Agent) -> None:
        agent._execute(FencePeer("beta", 1, WHY))
        assert await answer(agent) == FenceDone("beta", False, "no fence method configured")

    lone(tmp_path, body)


def test_the_arbiter(tmp_path: Path) -> None:
    two = [
        ArbiterAnswer(ArbiterOutcome.RENEWED, 1.0),
        ArbiterAnswer(ArbiterOutcome.RELEASE_REQUESTED, 1.0, "beta", token=9),
    ]
    arbiter = FakeArbiter(script=[two, HANG, RuntimeError("witness gone")])

    async def body(agent: Agent) -> None:
        request = AskArbiter(ArbiterRequest.RENEW, 3, WHY, peer="beta", at=1.0)
        agent._execute(request)
        assert [await answer(agent), await answer(agent)] == two
        agent._execute(request)
        assert await answer(agent) == ArbiterAnswer(
            ArbiterOutcome.UNREACHABLE, 1.0, detail="timeout"
        )
        agent._execute(request)
        assert await answer(agent) == ArbiterAnswer(
            ArbiterOutcome.UNREACHABLE, 1.0, detail="RuntimeError: witness gone"
        )
        agent._execute(replace(request, request=ArbiterRequest.CLAIM, at=2.0))
        assert await answer(agent) == ArbiterAnswer(ArbiterOutcome.GRANTED, 2.0, "beta")
        assert arbiter.asked == [(ArbiterRequest.RENEW, 3, "beta")] * 3 + [
            (ArbiterRequest.CLAIM, 3, "beta")
        ]

    lone(tmp_path, body, arbiter=arbiter)


def test_no_arbiter_is_unreachable(tmp_path: Path) -> None:
    async def body(agent: Agent) -> None:
        agent._execute(AskArbiter(ArbiterRequest.CLAIM, 1, WHY, at=5.0))
        assert await answer(agent) == ArbiterAnswer(
            ArbiterOutcome.UNREACHABLE, 5.0, detail="no arbiter configured"
        )

    lone(tmp_path, body)


def test_replies_nobody_waits_for_and_rejections_change_nothing(tmp_path: Path) -> None:
    async def body(agent: Agent) -> None:
        agent._execute(Reply("nobody.asked", True, "fine", WHY))
        agent._execute(Rejected(Tick(), WHY))
        assert agent.queue.empty() and not agent.history

    lone(tmp_path, body)
