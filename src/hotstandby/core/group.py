"""The resource group as the engine tracks it: one state per resource, one action at a time.

The group starts in configuration order and stops in reverse. Only one action
is outstanding per resource, so a late monitor answer can never be mistaken for
the answer to a stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from hotstandby.core.cluster import Resource
from hotstandby.core.messages import Action, Outcome


class ResState(StrEnum):
    """One resource on this node."""

    UNKNOWN = "unknown"  # not probed yet: may be running here
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"  # a monitor or start failed: may still hold something
    STOP_FAILED = "stop_failed"  # could not be stopped: only fencing makes it safe


@dataclass
class ResView:
    """Runtime state of one resource."""

    spec: Resource
    state: ResState = ResState.UNKNOWN
    pending: Action | None = None
    next_monitor: float | None = None
    failures: list[float] = field(default_factory=list)  # local times of failures
    last_result: str = ""
    # on_fail = "alarm": the last monitor failed and was only alarmed (cleared by an OK).
    degraded: bool = False
    # The last monitor's answer: (local time, outcome, detail), for status.
    last_monitor: tuple[float, Outcome, str] | None = None


class Group:
    """The ordered resources of the cluster, as seen from this node."""

    def __init__(self, resources: tuple[Resource, ...]) -> None:
        self.items = [ResView(spec=r) for r in resources]
        self.by_name = {v.spec.name: v for v in self.items}

    def holds(self) -> bool:
        """Whether anything of the group may be held here."""
        return any(v.state is not ResState.STOPPED for v in self.items)

    def known_held(self) -> bool:
        """Whether something of the group is known to be held here (probes answered)."""
        return any(v.state not in (ResState.STOPPED, ResState.UNKNOWN) for v in self.items)

    def all_running(self) -> bool:
        """Every resource started and healthy."""
        return all(v.state is ResState.RUNNING for v in self.items)

    def all_stopped(self) -> bool:
        """Nothing held here."""
        return all(v.state is ResState.STOPPED for v in self.items)

    def stop_failed(self) -> bool:
        """Some resource could not be stopped."""
        return any(v.state is ResState.STOP_FAILED for v in self.items)

    def idle(self) -> bool:
        """No action outstanding."""
        return all(v.pending is None for v in self.items)

    def next_to_start(self) -> ResView | None:
        """The first resource, in order, that is not running yet."""
        for v in self.items:
            if v.state is not ResState.RUNNING:
                return v
        return None

    def next_to_stop(self) -> ResView | None:
        """The last resource, in order, that may still be held."""
        for v in reversed(self.items):
            if v.state is not ResState.STOPPED:
                return v
        return None

    def recent_failures(self, view: ResView, now: float, window: float) -> int:
        """Failures of `view` within the last `window` seconds (older ones forgotten)."""
        view.failures = [t for t in view.failures if now - t < window]
        return len(view.failures)
