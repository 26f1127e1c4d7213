"""Simulator speed: simulated seconds per wall second, and seeds per second.

The reference cluster is the shipped example run at 10 heartbeats a second (two
nodes, three links). Run: python bench/sim_speed.py [--seeds N]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from hotstandby.config import load
from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import Command, Event, Heartbeat, Role, SendHeartbeat
from hotstandby.sim.runner import RunOptions, engine_factory, run_seed
from hotstandby.sim.world import World

EXAMPLE = Path(__file__).parents[1] / "src/hotstandby/examples/classic-database.toml"


def reference_cluster() -> Cluster:
    """The example at 10 heartbeats a second."""
    c = load(EXAMPLE)
    timers = dataclasses.replace(c.timers, interval=0.1, warn_time=0.3, dead_time=0.5)
    return dataclasses.replace(c, timers=timers)


class NullEngine:
    """Heartbeats only, at almost no cost: what is left is the world's own overhead."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.role = Role.STANDBY
        self.epoch = 0
        self.interval = cluster.timers.interval
        self.next = 0.0
        self.beat = Heartbeat(name, 1, 1, 0, Role.STANDBY, False)

    def step(self, event: Event, now: float) -> list[Command]:
        """Send a heartbeat when one is due."""
        if now >= self.next:
            self.next = now + self.interval
            return [SendHeartbeat(self.beat)]
        return []

    def next_deadline(self) -> float | None:
        """The next heartbeat."""
        return self.next


def quiet(cluster: Cluster, seconds: float, null: bool = False) -> tuple[float, int]:
    """A fault-free run: the steady heartbeat load. Returns (wall seconds, events)."""
    w = World(cluster, 1, NullEngine if null else engine_factory(False))
    for n in w.nodes:
        w.at(0.0, w.power_on, n)
    start = time.perf_counter()
    w.run_until(seconds)
    return time.perf_counter() - start, w.stats["events"]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3600.0, help="quiet run length")
    parser.add_argument("--seeds", type=int, default=50, help="random-fault seeds to time")
    args = parser.parse_args()
    cluster = reference_cluster()
    wall, events = quiet(cluster, args.seconds)
    print(
        f"quiet, 2 nodes x 3 links at 10 beats/s: {args.seconds / wall:,.0f} simulated s per wall s"
    )
    print(f"  {events / wall:,.0f} world events per wall s ({events} events)")
    wall, events = quiet(cluster, args.seconds, null=True)
    print(
        f"  the world alone (an engine that only beats): {args.seconds / wall:,.0f} "
        f"simulated s per wall s, {events / wall:,.0f} events per wall s"
    )
    opts = RunOptions()
    sim = 0.0
    start = time.perf_counter()
    for seed in range(args.seeds):
        sim += run_seed(cluster, seed, opts).sim_seconds
    wall = time.perf_counter() - start
    print(
        f"random faults ({args.seeds} seeds, {sim / args.seeds:.0f}s each): "
        f"{sim / wall:,.0f} simulated s per wall s, {args.seeds / wall:.1f} seeds/s"
    )
    example = load(EXAMPLE)
    start = time.perf_counter()
    sim = sum(run_seed(example, s, opts).sim_seconds for s in range(args.seeds))
    wall = time.perf_counter() - start
    print(
        f"the example as shipped (5 beats/s): {sim / wall:,.0f} simulated s per wall s, "
        f"{args.seeds / wall:.1f} seeds/s"
    )


if __name__ == "__main__":
    main()
