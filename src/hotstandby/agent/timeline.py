"""Takeover timelines: what each failover really cost, stage by stage.

Built by the agent from what it sees anyway: the engine's view of every link (when the
last heartbeat came), the role changes with their reasons, the fence and arbiter
results, the resource starts. When the node becomes active after a takeover it records
one history record of kind `takeover.timeline` (only for a takeover from a peer declared
dead: a boot election or a switchover has no failure to time): for each link, how long it had been
silent when the peer was declared dead, then every stage with its offset from the last
heartbeat heard from the lost peer on any link (the moment it most likely died), and the
total. `hotstandby events --takeovers` prints them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent, Record

TIMELINE = "takeover.timeline"


@dataclass
class _Building:
    """A takeover under way: the reference instant and the stages so far."""

    start: float  # the agent's clock: the last heartbeat from the lost peer(s), or the decision
    peers: list[str]
    links: dict[str, float | None]  # link -> silence at the declaration (None: never heard)
    stages: list[tuple[str, float]] = field(default_factory=list)  # (stage, agent's clock)
    rule: str = ""


class TimelineRecorder:
    """Watches the agent's history records and records a timeline after each takeover."""

    def __init__(self, agent: Agent, record: Callable[..., None]) -> None:
        self.agent = agent
        self.record = record
        self.current: _Building | None = None

    def observe(self, record: Record) -> None:
        """Look at one history record as it is made."""
        kind = record.kind
        if kind == "role":
            old, _, new = record.message.partition(" -> ")
            self._role(old, new, record)
        elif self.current is None:
            return
        elif kind == "alarm.fence":
            confirmed = record.rule == "fence.confirmed"
            self._stage("fence confirmed" if confirmed else "fence started", record)
        elif kind == "alarm.fence_failed":
            self._stage("fence failed", record)
        elif kind == "alarm.arbiter":
            self._stage(f"arbiter: {record.message}", record)
        elif kind == "resource" and ": " in record.message:
            name = str(record.data.get("resource", "?"))
            action, _, rest = record.message.partition(": ")
            if action.endswith(" start"):
                outcome = rest.split(" ", 1)[0]
                self._stage(f"{name} up" if outcome == "ok" else f"{name} start {outcome}", record)

    def _role(self, old: str, new: str, record: Record) -> None:
        now = self.agent.clock()
        if new == "arbitrating":
            self.current = self._declared_dead(now, record)
        elif new == "taking_over":
            # Only a takeover from a peer declared dead is timed: a boot election or a
            # switchover has no failure to measure from.
            if self.current is not None:
                self.current.stages.append((f"takeover decided [{record.rule}]", now))
                self.current.rule = record.rule
        elif new == "active" and self.current is not None and old == "taking_over":
            self._finish(now, record)
        elif self.current is not None and new != "taking_over":
            self.current = None  # the takeover did not complete: nothing to time

    def _declared_dead(self, now: float, record: Record) -> _Building | None:
        lost = [p for p in self.agent.engine.peers.values() if not p.confirmed]
        if not lost:
            return None  # arbitrating at boot among live peers: an election, not a failure
        links: dict[str, float | None] = {}
        last: float | None = None
        for peer in lost:
            for name, view in peer.links.items():
                seen = view.last_seen
                links[name] = None if seen is None else now - seen
                if seen is not None and (last is None or seen > last):
                    last = seen
        building = _Building(
            start=now if last is None else last, peers=[p.name for p in lost], links=links
        )
        building.stages.append((f"peer declared dead [{record.rule}]", now))
        return building

    def _stage(self, stage: str, record: Record) -> None:
        if self.current is not None:
            self.current.stages.append((stage, self.agent.clock()))

    def _finish(self, now: float, record: Record) -> None:
        b = self.current
        assert b is not None
        self.current = None
        b.stages.append(("active", now))
        total = now - b.start
        timeline: dict[str, Any] = {
            "peers": b.peers,
            "epoch": record.data.get("epoch"),
            "rule": b.rule,
            "links": b.links,
            "stages": [{"stage": s, "offset": at - b.start} for s, at in b.stages],
            "total": total,
        }
        lost = ", ".join(b.peers)
        self.record(
            TIMELINE,
            f"takeover from {lost} complete {total * 1000:.0f} ms after the last heartbeat",
            b.rule,
            timeline=timeline,
        )


def render(record: dict[str, Any]) -> str:
    """A `takeover.timeline` history record as readable lines."""
    t = record.get("timeline") or {}
    head = record.get("message", "")
    node = record.get("node")
    lines = [f"{_stamp(record.get('at', 0.0))}  {node + ': ' if node else ''}{head}"]
    lines.append(
        f"  epoch {t.get('epoch')}, taken over from {', '.join(t.get('peers', [])) or '-'}"
    )
    links = t.get("links") or {}
    if links:
        lines.append("  silence per link when the peer was declared dead:")
        for name, silent in links.items():
            shown = "never heard" if silent is None else f"{silent * 1000:8.0f} ms"
            lines.append(f"    {name:<12} {shown}")
    lines.append("  stages, from the last heartbeat:")
    for stage in t.get("stages", []):
        lines.append(f"    +{stage['offset'] * 1000:8.0f} ms  {stage['stage']}")
    lines.append(f"  total {t.get('total', 0.0) * 1000:.0f} ms")
    return "\n".join(lines)


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"
