"""The arbiter adapter for the cluster's arbitration mode (None where the mode has none)."""

from __future__ import annotations

from hotstandby.agent.ports import ArbiterAdapter
from hotstandby.agent.witness_client import WitnessClient
from hotstandby.core.cluster import ArbitrationMode, Cluster


def build_arbiter(cluster: Cluster, node: str, secret: bytes) -> ArbiterAdapter | None:
    """The adapter that asks this cluster's arbiter, as `node`."""
    arb = cluster.arbitration
    if arb.mode is ArbitrationMode.WITNESS and arb.witness is not None:
        # Within the loop's own timeout for a request (a quarter lease), with room to
        # spare so the client, not the loop, says why there was no answer.
        budget = cluster.timers.lease / 4 * 0.9
        return WitnessClient(
            cluster.name, node, secret, arb.witness, budget=budget, retry=budget / 5
        )
    return None
