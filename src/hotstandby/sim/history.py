"""What a run records: only what the checkers need, kept small so the world stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field

from hotstandby.core.messages import Role

INF = float("inf")


@dataclass(slots=True)
class Holding:
    """A node held a resource over [start, end) in real time (end is INF while still held)."""

    node: str
    start: float
    end: float = INF


@dataclass(frozen=True, slots=True)
class RoleSample:
    """From `t` on, `node` had role `role` (None: agent not running) at `epoch`."""

    t: float
    node: str
    role: Role | None
    epoch: int


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault (or an admin request, or a boot) injected at `t`, lasting until `end`.

    `benign` marks a fault the configuration is meant to ride out without a takeover
    (L2); every other record may justify a change of active node.
    """

    t: float
    kind: str
    target: str
    end: float
    benign: bool = False


@dataclass(slots=True)
class History:
    """A run's record: holdings per resource, role samples, faults, phases."""

    nodes: tuple[str, ...]
    resources: tuple[str, ...]
    holdings: dict[str, list[Holding]] = field(default_factory=dict)
    roles: list[RoleSample] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    # Events the engine itself caused that justify a change (self-fence, stop failed).
    alarms: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[float, str, str]] = field(default_factory=list)
    liveness_start: float = INF
    budget: float = INF
    end: float = 0.0

    def __post_init__(self) -> None:
        for r in self.resources:
            self.holdings.setdefault(r, [])
