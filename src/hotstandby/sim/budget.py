"""The liveness budget the simulator holds the cluster to, built from core/timing.py.

The engine's own rules bound each step (detect, get evidence, release, start); the
simulator adds what only it knows (its own action durations and boot delays) and a
documented slack for the steps that chain (a lost renew, one retried heartbeat).
"""

from __future__ import annotations

from hotstandby.core import timing
from hotstandby.core.cluster import ArbitrationMode, Cluster

# Normal (healthy) resource actions take at most this long in the simulated world.
NORMAL_ACTION_MAX = 0.3
# Added to every budget: two renew periods and a second of scheduling, so that a lost
# request or a retry at the edge of a deadline is not taken for a liveness bug.
SLACK_SECONDS = 2.0


def evidence_time(cluster: Cluster) -> float:
    """Worst time for a standby to get evidence that a dead peer holds nothing."""
    t = cluster.timers
    a = cluster.arbitration
    if a.mode is ArbitrationMode.WITNESS:
        return t.lease + timing.drift_margin(cluster, t.lease) + timing.renew_period(cluster)
    if a.mode is ArbitrationMode.DISK:
        return timing.disk_claim_wait(cluster) + timing.renew_period(cluster)
    if a.mode is ArbitrationMode.FENCE:
        return a.fence_delay + t.fence_timeout * max(1, len(a.fence))
    return timing.unconfirmed_release_wait(cluster)


def takeover_budget(cluster: Cluster) -> float:
    """Worst time from the active's death to the standby holding everything."""
    t = cluster.timers
    detect = t.dead_time + timing.drift_margin(cluster, t.dead_time) + t.interval
    start = len(cluster.resources) * NORMAL_ACTION_MAX
    release_wait = timing.unconfirmed_release_wait(cluster)
    return detect + evidence_time(cluster) + release_wait + start + SLACK_SECONDS


def liveness_budget(cluster: Cluster, boot_delay: float, in_flight: float | None = None) -> float:
    """Worst time from the healing of every fault to exactly one active node.

    A node may be rebooting (boot_delay), then waits initial_dead for its peer; an
    action in flight at the heal may run on (`in_flight`, by default the longest
    timeout); a healed split brain makes the loser stop everything first.
    """
    t = cluster.timers
    if in_flight is None:
        in_flight = max(
            (max(r.start_timeout, r.stop_timeout) for r in cluster.resources), default=0.0
        )
    stop_all = len(cluster.resources) * NORMAL_ACTION_MAX
    return (
        boot_delay
        + t.initial_dead
        + in_flight
        + stop_all
        + takeover_budget(cluster)
        + timing.release_bound(cluster)
    )
