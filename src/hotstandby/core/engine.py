"""The decision engine: step(event, now) -> commands (being written by the lead)."""

from __future__ import annotations

from dataclasses import dataclass

from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import Command, Event, Role


@dataclass(frozen=True)
class EngineOptions:
    """Switches for tests only."""

    # Drop the takeover rule's demand for evidence that the peer holds nothing:
    # the simulator must then find split brains, proving its checkers have teeth.
    weaken_takeover_rule: bool = False


class Engine:
    """One node's pure, synchronous decision engine."""

    def __init__(self, cluster: Cluster, node: str, options: EngineOptions | None = None) -> None:
        self.cluster = cluster
        self.name = node
        self.options = options or EngineOptions()
        self.role = Role.STARTING
        self.epoch = 0

    def step(self, event: Event, now: float) -> list[Command]:
        """Feed one event at local monotonic time `now`; get the commands to carry out."""
        raise NotImplementedError

    def next_deadline(self) -> float | None:
        """The local time at which the engine wants a Tick, or None."""
        raise NotImplementedError
