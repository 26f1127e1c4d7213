"""The demo in the simulator: the example cluster, a power loss, the takeover, as a timeline.

The real engines of both nodes run against the simulated world; what is printed
is what they decided and why (the rule behind each step), with the world's time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from hotstandby.core.cluster import Cluster
from hotstandby.core.engine import Engine
from hotstandby.core.messages import (
    Action,
    AlarmKind,
    Command,
    Event,
    RaiseAlarm,
    Role,
    RoleChanged,
    RunResource,
)
from hotstandby.sim.faults import Faults
from hotstandby.sim.world import World

# Alarms worth a line in a demo; link-by-link chatter is left out.
SHOWN_ALARMS = {
    AlarmKind.PEER_LOST,
    AlarmKind.TAKEOVER,
    AlarmKind.FENCE,
    AlarmKind.FENCE_FAILED,
    AlarmKind.SPLIT_BRAIN,
}


@dataclass
class Line:
    """One line of the timeline."""

    at: float
    node: str
    text: str


class _Recorder:
    """An engine that writes down what it decides, with the world's time."""

    def __init__(self, engine: Engine, world: Callable[[], World], out: list[Line]) -> None:
        self.engine = engine
        self.world = world
        self.out = out
        self.role: Role = engine.role
        self.epoch = engine.epoch

    def step(self, event: Event, now: float) -> list[Command]:
        """Step the engine; note its decisions."""
        commands = self.engine.step(event, now)
        self.role, self.epoch = self.engine.role, self.engine.epoch
        t = self.world().now
        name = self.engine.name
        for c in commands:
            if isinstance(c, RoleChanged):
                self.out.append(Line(t, name, f"{c.old.value} -> {c.new.value}   [{c.reason}]"))
            elif isinstance(c, RaiseAlarm) and c.kind in SHOWN_ALARMS:
                self.out.append(Line(t, name, f"ALARM {c.message}"))
            elif isinstance(c, RunResource) and c.action in (Action.START, Action.STOP):
                self.out.append(Line(t, name, f"{c.action.value} {c.resource}"))
        return commands

    def next_deadline(self) -> float | None:
        """The engine's next deadline."""
        return self.engine.next_deadline()


def run(cluster: Cluster, out: TextIO, power_loss_at: float = 5.0, seed: int = 1) -> int:
    """Boot both nodes, cut the active node's power, print the takeover; 0 when it worked."""
    lines: list[Line] = []
    holder: list[World] = []

    def factory(c: Cluster, name: str) -> _Recorder:
        return _Recorder(Engine(c, name), lambda: holder[0], lines)

    world = World(cluster, seed, factory)
    holder.append(world)
    for n in world.nodes:
        world.at(0.0, world.power_on, n)
    world.run_until(power_loss_at)
    active = world.single_active()
    if active is None:
        print("no node became active at start: see the timeline", file=out)
        _print(lines, out)
        return 1
    print(
        f"{active.name} is active (epoch {active.epoch}); cutting its power at "
        f"t={power_loss_at:.3f}s\n",
        file=out,
    )
    lines.append(Line(power_loss_at, active.name, "*** POWER LOSS ***"))
    Faults(world).power_loss(active, None)
    budget = 120.0
    t = power_loss_at
    successor = None
    while t < power_loss_at + budget:
        t += 0.25
        world.run_until(t)
        successor = world.single_active()
        if successor is not None:
            break
    _print(lines, out)
    if successor is None:
        print("\nno takeover within the budget", file=out)
        return 1
    took = _first(lines, successor.name, "-> active")
    print(
        f"\n{successor.name} holds every resource (epoch {successor.epoch}); "
        f"outage from power loss to the last resource up: {took - power_loss_at:.3f}s",
        file=out,
    )
    return 0


def _first(lines: list[Line], node: str, text: str) -> float:
    return next(x.at for x in lines if x.node == node and text in x.text)


def _print(lines: list[Line], out: TextIO) -> None:
    for x in sorted(lines, key=lambda x: x.at):
        print(f"{x.at:9.3f}s  {x.node:<8} {x.text}", file=out)
