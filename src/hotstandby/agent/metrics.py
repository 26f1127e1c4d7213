"""Prometheus metrics of one agent, read from its state at scrape time.

A custom collector: nothing is updated as events happen except the few counters the
agent must keep anyway (`agent.counters`: takeovers and their durations, resource
failures). Alarm delivery failures come from the alarm channels' status section
(`agent.status_sections["alarms"]`) when the agent has alarm channels; without them the
metric has no samples.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from hotstandby.core.group import ResState
from hotstandby.core.messages import Role
from hotstandby.core.peers import LinkState

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent

# A late link (silent past the warn time) is still up: it goes down at the dead time.
_ALIVE = (LinkState.UP, LinkState.LATE)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AgentCollector:
    """Reads an agent's role, links, resources and counters whenever Prometheus scrapes."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry must not collect at registration time."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every metric family, as of now."""
        agent = self.agent
        engine = agent.engine
        node = agent.node

        role = GaugeMetricFamily(
            "hotstandby_role",
            "1 for the node's current role, 0 for the others",
            labels=["node", "role"],
        )
        for r in Role:
            role.add_metric([node, r.value], 1.0 if engine.role is r else 0.0)
        yield role
        yield GaugeMetricFamily(
            "hotstandby_epoch",
            "The epoch this node knows (grows with every change of active)",
            value=engine.epoch,
        )
        peer_up = GaugeMetricFamily(
            "hotstandby_peer_confirmed",
            "1 while the peer is heard and echoes our heartbeats",
            labels=["peer"],
        )
        up = GaugeMetricFamily(
            "hotstandby_link_up",
            "1 while the peer's heartbeats arrive on the link within the dead time",
            labels=["link", "peer"],
        )
        loss = GaugeMetricFamily(
            "hotstandby_link_loss_ratio",
            "Recent heartbeat loss on the link, 0 to 1",
            labels=["link", "peer"],
        )
        rtt = GaugeMetricFamily(
            "hotstandby_link_round_trip_seconds",
            "Recent heartbeat round trip on the link",
            labels=["link", "peer"],
        )
        for peer in engine.peers.values():
            peer_up.add_metric([peer.name], 1.0 if peer.confirmed else 0.0)
            for name, view in peer.links.items():
                labels = [name, peer.name]
                up.add_metric(labels, 1.0 if view.state in _ALIVE else 0.0)
                ratio = agent.quality.loss(name, peer.name)
                if ratio is not None:
                    loss.add_metric(labels, ratio)
                trip = agent.quality.round_trip(name, peer.name)
                if trip is not None:
                    rtt.add_metric(labels, trip)
        yield from (peer_up, up, loss, rtt)
        yield from _link_counters(agent)

        state = GaugeMetricFamily(
            "hotstandby_resource_state",
            "1 for the resource's current state on this node",
            labels=["resource", "state"],
        )
        for item in engine.group.items:
            for s in ResState:
                state.add_metric([item.spec.name, s.value], 1.0 if item.state is s else 0.0)
        yield state
        failures = CounterMetricFamily(
            "hotstandby_resource_failures",
            "Failed resource actions (start, stop, monitor)",
            labels=["resource"],
        )
        for name in agent.cluster.resource_names:
            failures.add_metric([name], agent.counters.resource_failures[name])
        yield failures

        counters = agent.counters
        yield CounterMetricFamily(
            "hotstandby_takeovers",
            "Takeovers this node completed (taking_over -> active)",
            value=counters.takeovers,
        )
        yield HistogramMetricFamily(
            "hotstandby_takeover_duration_seconds",
            "From the role change to taking_over until active",
            buckets=[(_bound(b), c) for b, c in counters.takeover_seconds.cumulative()],
            sum_value=counters.takeover_seconds.total,
        )
        alarms = CounterMetricFamily(
            "hotstandby_alarm_delivery_failures",
            "Alarm deliveries that failed, per channel",
            labels=["channel"],
        )
        for channel, count in sorted(_alarm_failures(agent).items()):
            alarms.add_metric([channel], count)
        yield alarms
        yield GaugeMetricFamily(
            "hotstandby_agent_uptime_seconds",
            "Since the agent started",
            value=max(0.0, time.time() - agent.started_at),
        )


def _link_counters(agent: Agent) -> Iterator[Metric]:
    sent = CounterMetricFamily(
        "hotstandby_heartbeats_sent", "Heartbeats sent on the link", labels=["link"]
    )
    received = CounterMetricFamily(
        "hotstandby_heartbeats_received", "Valid heartbeats received on the link", labels=["link"]
    )
    dropped = CounterMetricFamily(
        "hotstandby_heartbeats_dropped",
        "Messages rejected on the link, by reason",
        labels=["link", "reason"],
    )
    for link in agent.adapters.links:
        stats = link.stats
        sent.add_metric([link.name], stats.sent)
        received.add_metric([link.name], stats.received)
        for reason, count in sorted(stats.dropped.items()):
            dropped.add_metric([link.name, reason], count)
    yield from (sent, received, dropped)


def _alarm_failures(agent: Agent) -> dict[str, int]:
    """Failed delivery attempts per alarm channel, from the agent's `alarms` status section.

    The alarm dispatcher publishes `status_sections["alarms"]() -> {channel: {"failed": n,
    ...}}`; an agent without alarm channels has no such section.
    """
    sections = getattr(agent, "status_sections", None) or {}
    section = sections.get("alarms")
    channels = section() if callable(section) else None
    if not isinstance(channels, dict):
        return {}
    return {
        str(name): int(stats.get("failed", 0))
        for name, stats in channels.items()
        if isinstance(stats, dict)
    }


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


def registry_for(agent: Agent) -> CollectorRegistry:
    """A registry holding only this agent's collector (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format."""
    return generate_latest(registry)
