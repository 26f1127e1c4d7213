"""A read-only picture of the agent and its engine, as JSON data for `status` and `why`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hotstandby.agent.replication_status import replication_view
from hotstandby.core.group import ResState

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent


# Resource states in which this node holds (or may hold) the resource.
_HERE = frozenset(
    {ResState.STARTING, ResState.RUNNING, ResState.STOPPING, ResState.FAILED, ResState.STOP_FAILED}
)


def snapshot(agent: Agent, now: float) -> dict[str, Any]:
    """Everything `hotstandby status` shows."""
    engine = agent.engine
    links = {link.name: link for link in agent.adapters.links}
    # Where the group runs when not here: the confirmed peer that says it holds it.
    holder = next(
        (p.name for p in engine.peers.values() if p.confirmed and p.beat and p.beat.holds),
        None,
    )
    peers = []
    for peer in engine.peers.values():
        beat = peer.beat
        peers.append(
            {
                "name": peer.name,
                "confirmed": peer.confirmed,
                "role": beat.role.value if beat else None,
                "epoch": beat.epoch if beat else None,
                "holds": beat.holds if beat else None,
                "offline": beat.offline if beat else None,
                # It runs a configuration whose digest differs from ours (an alarm too).
                "config_differs": peer.digest_warned,
                "last_heard_ago": None if peer.last_heard is None else now - peer.last_heard,
                "links": {
                    name: {
                        "state": view.state.value,
                        "last_seen_ago": None if view.last_seen is None else now - view.last_seen,
                        "received": view.received,
                        "loss": agent.quality.loss(name, peer.name),
                        "round_trip": agent.quality.round_trip(name, peer.name),
                    }
                    for name, view in peer.links.items()
                },
            }
        )
    return {
        "cluster": agent.cluster.name,
        "node": agent.node,
        "role": engine.role.value,
        "epoch": engine.epoch,
        "offline": engine.offline,
        "lease_left": (None if engine.lease_until == float("-inf") else engine.lease_until - now),
        "peers": peers,
        "links": {
            name: {
                "sent": link.stats.sent,
                "received": link.stats.received,
                "send_errors": link.stats.send_errors,
                "dropped": dict(link.stats.dropped),
            }
            for name, link in links.items()
        },
        "resources": [
            {
                "name": v.spec.name,
                "kind": v.spec.kind.value,
                "state": v.state.value,
                "node": agent.node if v.state in _HERE else holder,
                "pending": v.pending.value if v.pending else None,
                "failures": len(v.failures),
                "last_result": v.last_result,
                "last_monitor": None
                if v.last_monitor is None
                else {
                    "ago": now - v.last_monitor[0],
                    "outcome": v.last_monitor[1].value,
                    "detail": v.last_monitor[2],
                },
            }
            for v in engine.group.items
        ],
        "last_takeover": str(engine.last_takeover) if engine.last_takeover else None,
        "replication": replication_view(agent, now),
        **{name: section() for name, section in agent.status_sections.items()},
    }


def reasons(agent: Agent) -> list[dict[str, Any]]:
    """The decisions behind the current state: role changes and alarms, newest last."""
    wanted = [r for r in agent.history if r.kind == "role" or r.kind.startswith("alarm")]
    return [r.as_json() for r in wanted[-20:]]
