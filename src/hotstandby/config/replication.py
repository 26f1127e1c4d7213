"""The [replication] table: the rules for a resource whose data each node keeps a copy of.

```toml
[replication]
resource = "pg"               # a postgres resource with mode = "replicated"
synchronous = true            # a commit is acknowledged once the replicas have it (default)
on_replica_lost = "degrade"   # or "wait": commits block while a replica is gone
degrade_after = "30s"         # degrade: how long commits wait for a lost replica
max_lag = 16777216            # asynchronous: bytes behind at which a replica may be promoted
follow_interval = "2s"        # how often a standby checks its copy follows the primary
```
No [replication] table: no replicated data (shared-disk clusters).
"""

from __future__ import annotations

from collections.abc import Iterator

from hotstandby.config.errors import Violation
from hotstandby.config.reader import Table
from hotstandby.core.cluster import Cluster, OnReplicaLost, Replication, ResourceKind

_KEYS = (
    "resource",
    "synchronous",
    "on_replica_lost",
    "degrade_after",
    "max_lag",
    "follow_interval",
)
MAX_LAG = 1 << 50


def parse_replication(table: Table | None) -> Replication | None:
    """The validated [replication] table (None when absent)."""
    if table is None:
        return None
    table.only(_KEYS)
    defaults = Replication(resource="")
    on_lost = defaults.on_replica_lost
    if table.has("on_replica_lost"):
        on_lost = table.choice("on_replica_lost", OnReplicaLost)
    return Replication(
        resource=table.name("resource"),
        synchronous=table.boolean("synchronous", defaults.synchronous),
        on_replica_lost=on_lost,
        degrade_after=table.duration("degrade_after", defaults.degrade_after),
        max_lag=table.integer("max_lag", defaults.max_lag, -1, MAX_LAG),
        follow_interval=table.duration("follow_interval", defaults.follow_interval),
    )


def replication_rules(cluster: Cluster, evidence: float) -> Iterator[Violation]:
    """What the [replication] table asks that the rest of the file does not give.

    `evidence`: the longest a standby takes, from the primary's death, to have the
    evidence to take over (detection and arbitration, from the takeover budget).
    """
    rules = cluster.replication
    if rules is None:
        if cluster.http is not None and cluster.http.health:
            yield Violation(
                ("http", "health"),
                "false: the health endpoints report on replicated data (a [replication] table)",
                "true",
            )
        return
    names = cluster.resource_names
    if rules.resource not in names:
        known = ", ".join(names) or "none"
        yield Violation(
            ("replication", "resource"),
            f"the name of a [[resource]] of this file ({known})",
            f'"{rules.resource}"',
        )
        return
    resource = cluster.resources[names.index(rules.resource)]
    if resource.kind is not ResourceKind.POSTGRES or resource.params.get("mode") != "replicated":
        yield Violation(
            ("replication", "resource"),
            'a postgres resource with mode = "replicated"',
            f'"{rules.resource}", a {resource.kind.value} resource'
            + ("" if resource.kind is not ResourceKind.POSTGRES else " in shared-disk mode"),
        )
    if rules.synchronous and rules.degrade_after <= evidence:
        # A replica's word that it holds every commit lapses degrade_after after the
        # primary last heard it; a takeover that gets its evidence later finds it lapsed
        # and holds back (the primary, if alive, may have gone on without the replica).
        yield Violation(
            ("replication", "degrade_after"),
            f"longer than the time a takeover takes to get its evidence ({evidence:g}s: "
            "detection and arbitration, see `hotstandby check --budget`), or the replica's "
            "word that it is synchronous lapses before it may take over",
            f"{rules.degrade_after:g}s",
        )
