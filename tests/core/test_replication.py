"""Replicated data in the core: which copy may be promoted, and when commits stop waiting.

Run in the deterministic world of `replicated.py`: a client commits through the primary;
the world records every acknowledged commit and counts, whenever a server becomes
primary, the acknowledged commits its copy lacks.
"""

from __future__ import annotations

from hotstandby.core.cluster import ArbitrationMode, OnReplicaLost
from hotstandby.core.engine import EngineOptions
from hotstandby.core.messages import (
    AdminAction,
    AlarmKind,
    FollowPrimary,
    RaiseAlarm,
    Reply,
    RequireReplicas,
    Role,
)

from .pair import of
from .replicated import DB, ReplicatedWorld, replicated_cluster, started_replicated


def alarms(w: ReplicatedWorld, node: str, kind: AlarmKind) -> list[RaiseAlarm]:
    """The alarms of one kind a node raised."""
    return [c for _, c in of(w, node, RaiseAlarm) if c.kind is kind]


def cut_heartbeats(w: ReplicatedWorld) -> None:
    """Cut every heartbeat link between the pair."""
    for link in w.cluster.links:
        w.net.cut(link.name, "alpha", "beta")


def test_a_settled_pair_streams_synchronously_and_beta_is_promotable() -> None:
    w = started_replicated(replicated_cluster())
    assert w.role("alpha") is Role.ACTIVE and w.db.primary == "alpha"
    assert w.db.required == {"beta"}
    assert w.engine("alpha").repl is not None
    assert w.engine("alpha").repl.promotable_list() == ("beta",)  # type: ignore[union-attr]
    assert w.engine("beta").replica_word()
    assert len(w.db.acked) > 20 and w.db.copies["beta"][: len(w.db.acked)] == w.db.acked
    follows = [c.primary for _, c in of(w, "beta", FollowPrimary)]
    assert follows and follows[-1] == "alpha"


def test_power_loss_of_the_primary_promotes_the_synchronous_replica_losing_nothing() -> None:
    w = started_replicated(replicated_cluster())
    acked = len(w.db.acked)
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE and w.db.primary == "beta"
    assert not w.db.lost and not w.lost_now()
    assert len(w.db.acked) > acked + 20  # writes went on, without waiting for dead alpha
    assert w.db.required == set()
    assert not w.violations


def test_the_old_primary_returns_as_a_replica_and_its_diverged_commit_is_saved() -> None:
    w = started_replicated(replicated_cluster())
    w.db.cut.add("beta")  # alpha's last commit never reaches beta: it is never acknowledged
    w.run_for(0.2)
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE
    w.db.cut.clear()
    w.boot("alpha")
    w.run_for(10)
    assert w.role("alpha") is Role.STANDBY
    assert w.db.following["alpha"] == "beta"
    assert w.db.diverged and w.db.diverged[0][0] == "alpha"
    assert alarms(w, "alpha", AlarmKind.DATA_DIVERGED)
    # Caught up and required again: promotable both ways.
    assert w.db.required == {"alpha"}
    assert w.engine("beta").repl.promotable_list() == ("alpha",)  # type: ignore[union-attr]
    assert not w.db.lost


def test_a_cut_replication_link_degrades_after_the_limit_and_the_replica_stands_down() -> None:
    w = started_replicated(replicated_cluster())
    cut_at = w.now
    w.db.cut.add("beta")
    w.run_for(3.0)
    stalled = len(w.db.acked)
    assert w.db.required == {"beta"}  # still waiting for it: no commit goes through
    w.run_for(3.0)
    assert w.db.required == set(), "degraded to asynchronous"
    assert len(w.db.acked) > stalled + 5
    degraded = [t for t, c in of(w, "alpha", RequireReplicas) if c.nodes == ()]
    assert degraded and degraded[-1] - cut_at >= 4.0
    dropped = alarms(w, "alpha", AlarmKind.REPLICA_INELIGIBLE)
    assert dropped and "commits no longer wait for beta" in dropped[-1].message
    assert "has not streamed for" in dropped[-1].reason.detail
    # beta heard it and says so; it would not take over now.
    assert not w.engine("beta").replica_word()
    assert w.engine("alpha").repl.promotable_list() == ()  # type: ignore[union-attr]
    w.power_off("alpha")
    w.run_for(15)
    assert w.role("beta") is Role.STANDBY, "an ineligible replica must not be promoted"
    held = alarms(w, "beta", AlarmKind.REPLICA_INELIGIBLE)
    assert held and "may lack acknowledged commits" in held[-1].message
    assert not w.db.lost


def test_without_the_rule_the_same_fault_loses_acknowledged_writes() -> None:
    # The checker has teeth: promoting the lagging copy is caught as lost writes.
    w = started_replicated(replicated_cluster(), EngineOptions(ignore_replica_rule=True))
    w.db.cut.add("beta")
    w.run_for(6.0)
    w.power_off("alpha")
    w.run_for(15)
    assert w.role("beta") is Role.ACTIVE
    assert w.db.lost


def test_the_replica_heals_catches_up_and_is_promotable_again() -> None:
    w = started_replicated(replicated_cluster())
    w.db.cut.add("beta")
    w.run_for(6.0)
    assert w.db.required == set()
    w.db.cut.clear()
    w.run_for(5.0)
    assert w.db.required == {"beta"}
    assert w.engine("alpha").repl.promotable_list() == ("beta",)  # type: ignore[union-attr]
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE and not w.db.lost


def test_wait_mode_blocks_commits_and_keeps_the_replica_promotable() -> None:
    w = started_replicated(replicated_cluster(on_lost=OnReplicaLost.WAIT))
    w.db.cut.add("beta")
    w.run_for(1.0)
    stalled = len(w.db.acked)
    w.run_for(20.0)
    assert len(w.db.acked) <= stalled + 1 and w.db.required == {"beta"}
    assert w.engine("beta").replica_word()
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE and not w.db.lost


def test_a_partition_leaves_the_service_with_the_primary_which_goes_on_without_beta() -> None:
    # Fence mode: in a cut the active node's fence wins the race (fence_delay).
    w = started_replicated(replicated_cluster())
    cut_heartbeats(w)
    w.db.cut.add("beta")
    w.run_for(15)
    assert w.role("alpha") is Role.ACTIVE and w.db.primary == "alpha"
    assert w.db.required == set()
    assert not w.db.lost and not w.violations


def witness_partition(degrade_after: float, checked: bool = True) -> ReplicatedWorld:
    """Cut everything between the pair and alpha from the witness; run until it settles."""
    w = started_replicated(
        replicated_cluster(
            mode=ArbitrationMode.WITNESS, degrade_after=degrade_after, checked=checked
        )
    )
    cut_heartbeats(w)
    w.db.cut.add("beta")
    w.nodes["alpha"].arbiter_cut = True
    w.run_for(30)
    return w


def test_a_primary_that_lingers_past_degrade_after_leaves_the_replica_unpromotable() -> None:
    # alpha, cut off, keeps serving until its lease ends (6 s) and goes on without beta
    # after 3 s: beta, granted the lease afterwards, must not promote its copy. (`check`
    # refuses this configuration for that reason: degrade_after shorter than the lease.)
    w = witness_partition(degrade_after=3.0, checked=False)
    assert w.role("beta") is not Role.ACTIVE
    assert w.db.primary is None and not w.db.lost
    held = alarms(w, "beta", AlarmKind.REPLICA_INELIGIBLE)
    assert held and "may lack acknowledged commits" in held[-1].message


def test_a_primary_whose_lease_ends_before_degrade_after_leaves_a_promotable_replica() -> None:
    w = witness_partition(degrade_after=20.0)
    assert w.role("beta") is Role.ACTIVE and w.db.primary == "beta"
    assert not w.db.lost


def test_switchover_to_a_promotable_replica_and_back_loses_nothing() -> None:
    w = started_replicated(replicated_cluster())
    w.admin("alpha", AdminAction.SWITCHOVER)
    w.run_for(8)
    assert w.role("beta") is Role.ACTIVE and w.db.primary == "beta"
    assert w.db.following.get("alpha") == "beta"
    w.run_for(4)
    w.admin("beta", AdminAction.SWITCHOVER)
    w.run_for(8)
    assert w.role("alpha") is Role.ACTIVE and w.db.primary == "alpha"
    assert not w.db.lost and not w.db.diverged


def test_switchover_is_refused_while_the_replica_is_not_promotable() -> None:
    w = started_replicated(replicated_cluster())
    w.db.cut.add("beta")
    w.run_for(6.0)
    replies = [c for c in w.admin("alpha", AdminAction.SWITCHOVER) if isinstance(c, Reply)]
    assert replies and not replies[0].ok
    assert "promotable now: none" in replies[0].message


def test_force_active_on_a_held_back_replica_accepts_the_loss() -> None:
    w = started_replicated(replicated_cluster())
    w.db.cut.add("beta")
    w.run_for(6.0)
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.STANDBY
    replies = [c for c in w.admin("beta", AdminAction.FORCE_ACTIVE) if isinstance(c, Reply)]
    assert replies and replies[0].ok
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE
    assert w.db.lost  # what the operator accepted


def test_asynchronous_mode_promotes_a_replica_within_the_lag_limit() -> None:
    w = started_replicated(replicated_cluster(synchronous=False, max_lag=1000))
    assert w.db.required == set()
    assert w.engine("alpha").repl.promotable_list() == ("beta",)  # type: ignore[union-attr]
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE


def test_asynchronous_mode_holds_back_a_replica_past_the_lag_limit() -> None:
    w = started_replicated(replicated_cluster(synchronous=False, max_lag=5))
    w.db.cut.add("beta")
    w.run_for(3.0)  # about 60 commits behind
    assert w.engine("alpha").repl.promotable_list() == ()  # type: ignore[union-attr]
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.STANDBY


def test_witness_mode_promotes_without_loss() -> None:
    w = started_replicated(replicated_cluster(mode=ArbitrationMode.WITNESS, degrade_after=10.0))
    w.power_off("alpha")
    w.run_for(15)
    assert w.role("beta") is Role.ACTIVE and not w.db.lost
    assert any(c.resource == DB for _, c in of(w, "beta", RequireReplicas))
