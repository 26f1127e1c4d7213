"""Counters the agent keeps as things happen, for the metrics: everything else is read at scrape.

Takeovers are timed by the shell from the RoleChanged commands it carries out: from the role
change to taking_over until the change to active. A takeover that ends any other way (the
group failed to start, the node released) is not counted.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

from hotstandby.core.messages import Outcome, Role

#: Upper bounds of the takeover duration histogram's buckets, in seconds.
TAKEOVER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"))


@dataclass
class Histogram:
    """Observations counted into fixed buckets (non-cumulative), and their sum."""

    bounds: tuple[float, ...] = TAKEOVER_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), as Prometheus buckets are."""
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class AgentCounters:
    """Takeovers and resource failures since the agent started."""

    takeovers: int = 0
    takeover_seconds: Histogram = field(default_factory=Histogram)
    last_takeover_seconds: float | None = None
    resource_failures: Counter[str] = field(default_factory=Counter)
    _taking_over_since: float | None = None

    def role_changed(self, old: Role, new: Role, now: float) -> None:
        """Note a role change at monotonic time `now`."""
        if new is Role.TAKING_OVER:
            self._taking_over_since = now
        elif old is Role.TAKING_OVER and self._taking_over_since is not None:
            if new is Role.ACTIVE:
                took = now - self._taking_over_since
                self.takeovers += 1
                self.takeover_seconds.observe(took)
                self.last_takeover_seconds = took
            self._taking_over_since = None

    def resource_done(self, resource: str, outcome: Outcome) -> None:
        """Note the outcome of one resource action."""
        if outcome is Outcome.FAILED:
            self.resource_failures[resource] += 1
