"""The arbiter adapter a cluster's `[arbitration] mode` asks for (None: the core needs none)."""

from __future__ import annotations

import time

from hotstandby.agent.disk_arbiter import DiskArbiter
from hotstandby.agent.ports import ArbiterAdapter
from hotstandby.core.cluster import ArbitrationMode, Cluster


def build_arbiter(cluster: Cluster, node: str, secret: bytes) -> ArbiterAdapter | None:
    """The adapter for this node, or None when the mode has no arbiter to ask."""
    arbitration = cluster.arbitration
    if arbitration.mode is ArbitrationMode.DISK and arbitration.device is not None:
        return DiskArbiter(
            cluster.name,
            cluster.node_names,
            node,
            secret,
            arbitration.device,
            # Below the loop's own limit (lease/4), so a slow disk is our UNREACHABLE first.
            io_timeout=cluster.timers.lease / 5,
            # Sequence numbers must grow across restarts: start from the clock, in µs.
            first_seq=time.time_ns() // 1000,
        )
    return None
