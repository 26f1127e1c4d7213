"""Fakes of the agent's ports, for testing the loop that sits above them.

Links are joined in memory through the event loop, resources follow a script,
fencing and the arbiter answer as told. Each fake keeps what it was asked, so a
test can assert on the order of calls without patching anything.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from hotstandby.agent.ports import ActionResult, Deliver, LinkStats
from hotstandby.core.messages import (
    Action,
    ArbiterAnswer,
    ArbiterOutcome,
    ArbiterRequest,
    Outcome,
)

HANG: Literal["hang"] = "hang"  # a scripted step that never answers (until cancelled)

Step = ActionResult | BaseException | Literal["hang"]


class FakeLink:
    """One end of an in-memory heartbeat link: send() reaches the other end's deliver."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stats = LinkStats()
        self.other: FakeLink | None = None
        self.dropping = False  # what this end sends is lost on the way
        self.deliver: Deliver | None = None
        self.started = False
        self.closed = False
        self.sent: deque[bytes] = deque(maxlen=32)  # recent messages, for replay tests

    async def start(self, deliver: Deliver) -> None:
        """Begin delivering received messages to `deliver`."""
        self.deliver = deliver
        self.started = True

    def send(self, message: bytes) -> None:
        """Hand the message to the other end, on the next turn of the event loop."""
        self.stats.sent += 1
        self.sent.append(message)
        if self.dropping or self.other is None:
            return
        asyncio.get_running_loop().call_soon(self.other.receive, message)

    def receive(self, message: bytes) -> None:
        """A message arrives at this end (from the other end, or from a test)."""
        if self.deliver is not None and not self.closed:
            self.deliver(self.name, message)

    async def close(self) -> None:
        """Stop delivering."""
        self.closed = True


@dataclass
class LinkPair:
    """Both ends of one link: `a` on the first node, `b` on the second."""

    a: FakeLink
    b: FakeLink

    def cut(self) -> None:
        """Lose everything, both ways."""
        self.a.dropping = self.b.dropping = True

    def heal(self) -> None:
        """Undo `cut`."""
        self.a.dropping = self.b.dropping = False


def link_pair(name: str) -> LinkPair:
    """Two joined ends of the link called `name`."""
    a, b = FakeLink(name), FakeLink(name)
    a.other, b.other = b, a
    return LinkPair(a, b)


class FakeResource:
    """A resource that follows a script per action, else behaves like a healthy one.

    Without a script: start and stop answer OK (and change `running`); probe and
    monitor answer OK while running, STOPPED otherwise. A scripted step is an
    ActionResult, an exception to raise, or HANG.
    """

    def __init__(self, name: str, *, delay: float = 0.0, journal: list[str] | None = None) -> None:
        self.name = name
        self.delay = delay
        self.running = False
        self.script: dict[Action, list[Step]] = {}
        self.calls: list[Action] = []
        self.cancelled = 0  # runs cancelled by the caller (timeouts)
        # Shared between resources (and nodes) to see the order of every call.
        self.journal = journal if journal is not None else []
        self.before_run: list[Callable[[Action], None]] = []
        self.label = name
        self.released: list[bool] = []  # the `released` flag of every call, in order

    def starts_released(self) -> list[bool]:
        """The `released` flag of every start, in order."""
        return [r for a, r in zip(self.calls, self.released, strict=True) if a is Action.START]

    def then(self, action: Action, *steps: Step) -> None:
        """Answer the next calls of `action` with `steps`, in order."""
        self.script.setdefault(action, []).extend(steps)

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out `action` as scripted."""
        self.calls.append(action)
        self.released.append(released)
        self.journal.append(f"{self.label} {action.value}")
        for hook in self.before_run:
            hook(action)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            steps = self.script.get(action)
            step: Step = steps.pop(0) if steps else self._default(action)
            if step == HANG:
                await asyncio.Event().wait()
            if isinstance(step, BaseException):
                raise step
            assert isinstance(step, ActionResult)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if step.outcome is Outcome.OK and action is Action.START:
            self.running = True
        if step.outcome is Outcome.OK and action is Action.STOP:
            self.running = False
        return step

    def _default(self, action: Action) -> ActionResult:
        if action in (Action.START, Action.STOP):
            return ActionResult(Outcome.OK, "fake")
        return ActionResult(Outcome.OK if self.running else Outcome.STOPPED)


@dataclass
class FakeFence:
    """Fences as told: a list of answers, then (True, "fenced"); or hangs, or raises."""

    answers: list[tuple[bool, str] | BaseException | Literal["hang"]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    total_timeout: float = 0.05  # what the loop allows one fence() call

    async def fence(self, target: str) -> tuple[bool, str]:
        """Fence `target` as scripted."""
        self.targets.append(target)
        step = self.answers.pop(0) if self.answers else (True, "fenced")
        if step == HANG:
            await asyncio.Event().wait()
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, tuple)
        return step


@dataclass
class FakeArbiter:
    """Answers every request with `outcome` (echoing `at`), unless scripted otherwise."""

    outcome: ArbiterOutcome = ArbiterOutcome.GRANTED
    script: list[list[ArbiterAnswer] | BaseException | Literal["hang"]] = field(
        default_factory=list
    )
    asked: list[tuple[ArbiterRequest, int, str | None]] = field(default_factory=list)

    async def ask(
        self, request: ArbiterRequest, epoch: int, at: float, peer: str | None, token: int = 0
    ) -> list[ArbiterAnswer]:
        """Carry out one request as scripted."""
        self.asked.append((request, epoch, peer))
        step = self.script.pop(0) if self.script else [ArbiterAnswer(self.outcome, at, peer)]
        if step == HANG:
            await asyncio.Event().wait()
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, list)
        return step
