"""The arbiter adapter a cluster's `[arbitration] mode` asks for (None: the core needs none)."""

from __future__ import annotations

import time

from hotstandby.agent.disk_arbiter import DiskArbiter
from hotstandby.agent.ports import ArbiterAdapter
from hotstandby.agent.witness_client import WitnessClient
from hotstandby.core.cluster import ArbitrationMode, Cluster


def build_arbiter(cluster: Cluster, node: str, secret: bytes) -> ArbiterAdapter | None:
    """The adapter that asks this cluster's arbiter, as `node`; None when the mode has none."""
    arb = cluster.arbitration
    if arb.mode is ArbitrationMode.WITNESS and arb.witness is not None:
        # Within the loop's own timeout for a request (a quarter lease), with room to
        # spare so the client, not the loop, says why there was no answer.
        budget = cluster.timers.lease / 4 * 0.9
        return WitnessClient(
            cluster.name, node, secret, arb.witness, budget=budget, retry=budget / 5
        )
    if arb.mode is ArbitrationMode.DISK and arb.device is not None:
        return DiskArbiter(
            cluster.name,
            cluster.node_names,
            node,
            secret,
            arb.device,
            # Below the loop's own limit (lease/4), so a slow disk is our UNREACHABLE first.
            io_timeout=cluster.timers.lease / 5,
            # Sequence numbers must grow across restarts: start from the clock, in µs.
            first_seq=time.time_ns() // 1000,
        )
    return None
