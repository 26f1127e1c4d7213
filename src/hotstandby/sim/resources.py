"""How long simulated resource actions take and whether they succeed."""

from __future__ import annotations

import random
from enum import StrEnum

from hotstandby.core.cluster import Resource
from hotstandby.core.messages import Action, Outcome
from hotstandby.sim.budget import NORMAL_ACTION_MAX


class Mode(StrEnum):
    """How a start or stop behaves on one node."""

    NORMAL = "normal"
    SLOW = "slow"  # succeeds, but late: most of its timeout
    FAILING = "failing"  # fails quickly
    HANGING = "hanging"  # never finishes: the shell reports FAILED at the timeout


class ResourceBehaviour:
    """Start/stop modes and monitor faults per node and resource."""

    __slots__ = ("modes", "monitor_fault", "timeouts")

    def __init__(self, resources: tuple[Resource, ...], nodes: int) -> None:
        self.timeouts = {r.name: (r.start_timeout, r.stop_timeout) for r in resources}
        # (node, resource, action) -> mode; absent means NORMAL.
        self.modes: dict[tuple[int, str, Action], Mode] = {}
        self.monitor_fault: set[tuple[int, str]] = set()

    def heal(self) -> None:
        """Every action normal, every monitor healthy."""
        self.modes.clear()
        self.monitor_fault.clear()

    def plan(
        self, rng: random.Random, node: int, resource: str, action: Action
    ) -> tuple[float, Outcome]:
        """Duration and outcome of a START or STOP issued now."""
        mode = self.modes.get((node, resource, action), Mode.NORMAL)
        start_to, stop_to = self.timeouts.get(resource, (20.0, 20.0))
        timeout = start_to if action is Action.START else stop_to
        if mode is Mode.NORMAL:
            return 0.01 + (NORMAL_ACTION_MAX - 0.01) * rng.random(), Outcome.OK
        if mode is Mode.SLOW:
            return timeout * (0.5 + 0.45 * rng.random()), Outcome.OK
        if mode is Mode.FAILING:
            return 0.01 + 0.2 * rng.random(), Outcome.FAILED
        return timeout, Outcome.FAILED
