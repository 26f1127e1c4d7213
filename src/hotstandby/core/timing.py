"""The timing rules that make a takeover safe, as pure functions of the configuration.

The engine uses them to decide when it may act; `hotstandby check` uses the same
functions to print the budget and refuse unsafe files, so the two never disagree.

Notation: D dead time, I interval, L lease, B release bound, rho the clock rate drift.
"""

from __future__ import annotations

from hotstandby.core.cluster import Cluster


def drift_margin(cluster: Cluster, span: float) -> float:
    """Worst disagreement about a span of `span` seconds between two nodes' clocks.

    Each clock may run fast or slow by rho, so two of them may differ by 2*rho*span.
    """
    return 2.0 * cluster.timers.max_drift * span


def release_bound(cluster: Cluster) -> float:
    """B: how long an active node that lost all confirmation may still hold anything.

    It gets `release` to stop its resources; if that fails it stops itself and the
    hardware watchdog (when configured) resets the machine within its timeout.
    """
    return cluster.timers.release + cluster.arbitration.watchdog_timeout


def renew_period(cluster: Cluster) -> float:
    """How often the active node renews its arbiter lease (four times per lease)."""
    return cluster.timers.lease / 4.0


def lease_validity(cluster: Cluster) -> float:
    """How long after sending a successful renew the holder counts its lease valid.

    Shortened by the drift margin, so the holder's own clock ends it before the
    arbiter's clock does.
    """
    lease = cluster.timers.lease
    return lease - drift_margin(cluster, lease)


def lease_ok_margin(cluster: Cluster) -> float:
    """Lease an active node must have left so that, losing its peer now, it releases in time.

    It notices the loss up to D (plus drift) later, plus the up to 3 intervals by which
    an echo of its heartbeats may trail a one-way cut, and then needs B to release.
    """
    t = cluster.timers
    return (
        t.dead_time + drift_margin(cluster, t.dead_time) + 3 * t.interval + release_bound(cluster)
    )


def unconfirmed_release_wait(cluster: Cluster) -> float:
    """After declaring a peer dead, the wait that a live but cut-off active must be released by.

    The peer notices the cut at most 2*rho*D plus 3 intervals after we do (it may see
    it only as an echo gone stale, and echoes trail by up to two intervals), and then
    takes at most B.
    """
    t = cluster.timers
    return drift_margin(cluster, t.dead_time) + 3 * t.interval + release_bound(cluster)


def disk_claim_wait(cluster: Cluster) -> float:
    """After posting "release or die" on the disk, the wait a live peer could not survive.

    A peer that reads the disk sees the message within a renew period and releases
    within B; a peer that cannot read it loses its disk lease within L.
    """
    lease = cluster.timers.lease
    return max(
        lease + drift_margin(cluster, lease),
        renew_period(cluster) + release_bound(cluster),
    )
