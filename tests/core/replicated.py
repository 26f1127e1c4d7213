"""The core's test world with a replicated database: every node's copy, commits, acknowledgements.

A model of streaming replication just detailed enough to judge the core's decisions: each
node's copy is a list of commit ids; the primary (the node whose server was started as
primary) appends one commit at a time for a single client; a replica that streams from the
primary has every commit at once; a commit is acknowledged once every required replica has
it, and the client waits for it before the next. The world records every acknowledged id
and, whenever a node's server becomes primary, checks it holds them all: a missing one is a
lost acknowledged write, the violation these tests look for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hotstandby.config import budget
from hotstandby.core.cluster import (
    Cluster,
    OnReplicaLost,
    Replication,
    Resource,
    ResourceKind,
    Timers,
    frozen_map,
)
from hotstandby.core.engine import EngineOptions
from hotstandby.core.messages import (
    Action,
    Command,
    Event,
    FollowDone,
    FollowPrimary,
    Outcome,
    ReplicaInfo,
    ReplicasRequired,
    ReplicationReport,
    RequireReplicas,
    ResourceDone,
    RunResource,
)

from .pair import NodeState, World, make_cluster

DB = "db"
COMMIT_EVERY = 0.05  # the client's pace


def replicated_cluster(
    *,
    synchronous: bool = True,
    on_lost: OnReplicaLost = OnReplicaLost.DEGRADE,
    degrade_after: float = 4.0,
    max_lag: int = 16,
    checked: bool = True,
    **kwargs: object,
) -> Cluster:
    """make_cluster's pair, its "db" a replicated postgres resource under these rules.

    Fencing takes at most 1 s a method, so the evidence comes within 3.5 s (`checked`:
    the configuration passes `check`).
    """
    timers = Timers(initial_dead=2.0, lease=6.0, fence_timeout=1.0)
    base = make_cluster(monitor_interval=0.5, timers=timers, **kwargs)  # type: ignore[arg-type]
    resources = tuple(
        Resource(
            r.name,
            ResourceKind.POSTGRES,
            frozen_map({"mode": "replicated"}),
            monitor_interval=r.monitor_interval,
        )
        if r.name == DB
        else r
        for r in base.resources
    )
    rules = Replication(
        resource=DB,
        synchronous=synchronous,
        on_replica_lost=on_lost,
        degrade_after=degrade_after,
        max_lag=max_lag,
        follow_interval=0.5,
    )
    cluster = replace(base, resources=resources, replication=rules)
    broken = budget.violations(cluster)
    assert not checked or not broken, broken
    return cluster


@dataclass
class Database:
    """Every node's copy and the client's view."""

    copies: dict[str, list[int]]
    primary: str | None = None
    required: set[str] = field(default_factory=set)
    following: dict[str, str | None] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)  # replicas whose replication link is down
    next_id: int = 0
    pending: int | None = None  # the commit the client waits on
    acked: list[int] = field(default_factory=list)
    lost: list[tuple[float, str, int]] = field(default_factory=list)  # (time, node, missing)
    diverged: list[tuple[str, list[int]]] = field(default_factory=list)
    stalled: float = 0.0  # client time spent waiting on commits

    def streams(self, node: str) -> bool:
        """Whether `node`'s copy receives the primary's commits now."""
        return (
            self.primary is not None
            and node != self.primary
            and self.following.get(node) == self.primary
            and node not in self.cut
        )


class ReplicatedWorld(World):
    """World plus the Database, driven by the engines' replication commands."""

    def __init__(self, cluster: Cluster, options: EngineOptions | None = None) -> None:
        super().__init__(cluster, options=options)
        self.db = Database({n: [] for n in cluster.node_names})
        self._tick_client()

    # ---------------------------------------------------------------- the client

    def _tick_client(self) -> None:
        self._client_step()
        self.at(self.now + COMMIT_EVERY, self._tick_client)

    def _client_step(self) -> None:
        db = self.db
        primary = db.primary
        if primary is None or not self.nodes[primary].powered:
            return
        for n in self.nodes:
            if db.streams(n):
                db.copies[n] = list(db.copies[primary])  # streaming: caught up at once
        if db.pending is not None:
            if all(db.pending in db.copies[r] for r in db.required):
                db.acked.append(db.pending)
                db.pending = None
            else:
                db.stalled += COMMIT_EVERY
                return
        db.next_id += 1
        db.copies[primary].append(db.next_id)
        for n in self.nodes:
            if db.streams(n):
                db.copies[n].append(db.next_id)
        db.pending = db.next_id

    def lost_now(self) -> list[int]:
        """Acknowledged ids the current primary lacks."""
        if self.db.primary is None:
            return []
        have = set(self.db.copies[self.db.primary])
        return [i for i in self.db.acked if i not in have]

    # ---------------------------------------------------------------- the server

    def power_off(self, name: str) -> None:
        """Power loss: the server stops; the copy stays on the node's disk."""
        super().power_off(name)
        if self.db.primary == name:
            self.db.primary = None
            self.db.pending = None  # that client's transaction never got an answer
        self.db.following.pop(name, None)

    def _run_resource(self, n: NodeState, c: RunResource) -> None:
        db = self.db
        if c.resource == DB and c.action is Action.START:
            db.primary = n.name
            db.following.pop(n.name, None)
            have = set(db.copies[n.name])
            for i in db.acked:
                if i not in have:
                    db.lost.append((self.now, n.name, i))
        elif c.resource == DB and c.action is Action.STOP and db.primary == n.name:
            db.primary = None
            db.pending = None
        super()._run_resource(n, c)

    def _deliver(self, name: str, event: Event) -> list[Command]:
        commands = super()._deliver(name, event)
        if (
            isinstance(event, ResourceDone)
            and event.resource == DB
            and event.action is Action.MONITOR
            and event.outcome is Outcome.OK
            and self.db.primary == name
        ):
            self.at(self.now, lambda: self._report(name))
        return commands

    def _report(self, name: str) -> None:
        db = self.db
        if db.primary != name or self.nodes[name].engine is None:
            return
        lsn = len(db.copies[name])
        infos = tuple(
            ReplicaInfo(r, "streaming", r in db.required, len(db.copies[r]))
            for r in self.nodes
            if db.streams(r)
        )
        super()._deliver(name, ReplicationReport(DB, lsn, infos, tuple(sorted(db.required))))

    def _carry_out(self, n: NodeState, c: Command) -> None:
        if isinstance(c, RequireReplicas):
            engine = n.engine

            def applied() -> None:
                if n.engine is not engine:
                    return
                ok = self.db.primary == n.name
                if ok:
                    self.db.required = set(c.nodes)
                lsn = len(self.db.copies[n.name])
                super(ReplicatedWorld, self)._deliver(
                    n.name, ReplicasRequired(DB, c.nodes, ok, lsn, "" if ok else "no primary")
                )

            self.at(self.now + 0.02, applied)
        elif isinstance(c, FollowPrimary):
            engine = n.engine

            def followed() -> None:
                if n.engine is not engine:
                    return
                db = self.db
                saved = ""
                p = c.primary
                if p is not None and db.primary == p and p != n.name:
                    mine, theirs = db.copies[n.name], db.copies[p]
                    if mine != theirs[: len(mine)]:
                        db.diverged.append((n.name, list(mine)))
                        saved = f"/saved/{n.name}-{len(db.diverged)}"
                    db.following[n.name] = p
                    if n.name not in db.cut:
                        db.copies[n.name] = list(theirs)
                super(ReplicatedWorld, self)._deliver(
                    n.name,
                    FollowDone(DB, p, True, streaming=db.streams(n.name), diverged=saved),
                )

            self.at(self.now + 0.05, followed)
        else:
            super()._carry_out(n, c)


def started_replicated(cluster: Cluster, options: EngineOptions | None = None) -> ReplicatedWorld:
    """Both nodes booted, settled: alpha primary, beta's copy streaming and promotable."""
    w = ReplicatedWorld(cluster, options=options)
    for name in cluster.node_names:
        w.boot(name)
    w.run_until(8.0)
    return w
