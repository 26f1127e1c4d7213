"""A tiny engine for testing the world: heartbeats, and a takeover on silence alone.

The preferred (first) node takes the group at boot unless it hears an active peer;
a standby takes over when the active is silent for the dead time, with no evidence
at all, so a cut makes two actives: exactly what S1 must catch.
"""

from __future__ import annotations

from pathlib import Path

from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Link,
    LinkKind,
    Node,
    Resource,
    ResourceKind,
    Timers,
    frozen_map,
)
from hotstandby.core.messages import (
    Action,
    Boot,
    Command,
    Event,
    Heartbeat,
    HeartbeatReceived,
    Outcome,
    Persist,
    Reason,
    ResourceDone,
    Role,
    RunResource,
    SendHeartbeat,
    Tick,
)

EXAMPLE = Path(__file__).parents[2] / "src/hotstandby/examples/classic-database.toml"


class FakeEngine:
    """Silence means death: the old heartbeat-only behaviour, for world tests."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.role = Role.STARTING
        self.epoch = 0
        self.seq = 0
        self.next_beat = 0.0
        self.boot_at = 0.0
        self.last_heard: float | None = None
        self.peer_active = False
        self.peer_epoch = 0
        self.starting: set[str] = set()
        self.events: list[tuple[float, Event]] = []

    def step(self, event: Event, now: float) -> list[Command]:
        """React to one event."""
        self.events.append((now, event))
        out: list[Command] = []
        t = self.cluster.timers
        if isinstance(event, Boot):
            self.epoch = event.epoch
            self.boot_at = now
        elif isinstance(event, HeartbeatReceived):
            self.last_heard = now
            self.peer_active = event.beat.role is Role.ACTIVE
            self.peer_epoch = event.beat.epoch
            if self.role is Role.ACTIVE and self.peer_active and self.peer_epoch > self.epoch:
                self.role = Role.RELEASING
                for r in reversed(self.cluster.resources):
                    out.append(RunResource(r.name, Action.STOP, Reason("fake.yield")))
        elif isinstance(event, ResourceDone):
            self.starting.discard(event.resource)
            if self.role is Role.TAKING_OVER and not self.starting:
                self.role = Role.ACTIVE
            stopped = event.action is Action.STOP and event.outcome is Outcome.OK
            if self.role is Role.RELEASING and stopped:
                self.role = Role.STANDBY
        elif isinstance(event, Tick):
            pass
        silent = self.last_heard is None or now > self.last_heard + t.dead_time
        first = self.name == self.cluster.node_names[0]
        if self.role is Role.STARTING and now >= self.boot_at + 4 * t.interval:
            self.role = Role.STANDBY
            if first and not self.peer_active:
                self._take_over(out)
        elif self.role is Role.STANDBY and self.last_heard is not None and silent:
            self._take_over(out)
        if now >= self.next_beat:
            self.seq += 1
            self.next_beat = now + t.interval
            beat = Heartbeat(self.name, 1, self.seq, self.epoch, self.role, self.holds())
            out.append(SendHeartbeat(beat))
        return out

    def holds(self) -> bool:
        """Whether it holds (or is getting) the group."""
        return self.role in (Role.TAKING_OVER, Role.ACTIVE, Role.RELEASING)

    def _take_over(self, out: list[Command]) -> None:
        self.epoch = max(self.epoch, self.peer_epoch) + 1
        self.role = Role.TAKING_OVER
        out.append(Persist(self.epoch, True, Reason("fake.takeover")))
        for r in self.cluster.resources:
            self.starting.add(r.name)
            out.append(RunResource(r.name, Action.START, Reason("fake.takeover")))

    def next_deadline(self) -> float | None:
        """The next heartbeat, or the boot wait while starting."""
        t = self.cluster.timers
        if self.role is Role.STARTING:
            return min(self.next_beat, self.boot_at + 4 * t.interval)
        if self.role is Role.STANDBY and self.last_heard is not None:
            return min(self.next_beat, self.last_heard + t.dead_time + 1e-6)
        return self.next_beat


def make_cluster(mode: ArbitrationMode = ArbitrationMode.DISK, watchdog: float = 2.0) -> Cluster:
    """Two nodes, three links, two resources, fast timers."""
    names = ("a", "b")
    links = tuple(
        Link(n, k, frozen_map({x: f"/dev/{n}{x}" for x in names}))
        for n, k in (("lan", LinkKind.UDP), ("serial", LinkKind.SERIAL), ("disk", LinkKind.DISK))
    )
    return Cluster(
        name="t",
        secret_file="/etc/secret",
        nodes=(Node("a", 200), Node("b", 100)),
        links=links,
        resources=(
            Resource("ip", ResourceKind.IP, start_timeout=2.0, stop_timeout=2.0),
            Resource("svc", ResourceKind.SERVICE, start_timeout=3.0, stop_timeout=3.0),
        ),
        arbitration=Arbitration(mode=mode, device="/dev/arb", watchdog_timeout=watchdog),
        timers=Timers(interval=0.1, warn_time=0.3, dead_time=0.5, initial_dead=2.0, lease=12.0),
    )
