"""The world, with a fake engine: delivery, faults, ground truth, determinism."""

from __future__ import annotations

from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import (
    Action,
    ArbiterOutcome,
    ArbiterRequest,
    HeartbeatReceived,
    Role,
)
from hotstandby.sim.arbiter import DiskSlots, Witness
from hotstandby.sim.checkers import check_s1
from hotstandby.sim.clock import LocalClock
from hotstandby.sim.faults import Faults
from hotstandby.sim.resources import Mode
from hotstandby.sim.world import World

from .sim_fakes import FakeEngine, make_cluster


def _world(cluster: Cluster, seed: int = 1) -> tuple[World, Faults]:
    w = World(cluster, seed, FakeEngine)
    for n in w.nodes:
        w.at(0.0, w.power_on, n)
    return w, Faults(w)


def _engine(w: World, name: str) -> FakeEngine:
    e = w.by_name[name].engine
    assert isinstance(e, FakeEngine)
    return e


def test_clock_round_trip_and_restart() -> None:
    c = LocalClock(1.001, 5.0)
    assert abs(c.real_at(c.local(12.5)) - 12.5) < 1e-9
    c.restart(100.0, 3.0)
    assert abs(c.local(100.0) - 3.0) < 1e-9


def test_boot_elects_the_first_node_and_heartbeats_cross(cluster: Cluster) -> None:
    w, _ = _world(cluster)
    w.run_until(5.0)
    assert w.by_name["a"].role is Role.ACTIVE
    assert w.by_name["b"].role is Role.STANDBY
    assert set(w.by_name["a"].holds) == {"ip", "svc"}
    beats = [e for _, e in _engine(w, "b").events if isinstance(e, HeartbeatReceived)]
    assert {e.link for e in beats} == {"lan", "serial", "disk"}
    assert check_s1(w.history) == []


def test_same_seed_same_history(cluster: Cluster) -> None:
    runs = []
    for _ in range(2):
        w, f = _world(cluster, seed=7)
        w.run_until(3.0)
        f.degrade(5.0, None, drop=0.3, jitter=0.05, dup=0.2)
        w.run_until(10.0)
        runs.append((w.history.roles, w.stats["events"]))
    assert runs[0] == runs[1]


def test_cutting_every_link_makes_the_fake_split_and_s1_sees_it(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    f.cut("link_cut_all", 5.0)
    w.run_until(8.0)
    assert w.by_name["b"].role is Role.ACTIVE
    assert [v.checker for v in check_s1(w.history)] == ["S1", "S1"]


def test_one_link_cut_is_ridden_out_and_asymmetric_cut_is_not(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    f.cut("link_cut", 5.0, link="lan")
    assert w.history.faults[-1].benign
    w.run_until(12.0)
    assert w.by_name["b"].role is Role.STANDBY
    f.cut("asymmetric_cut", 5.0, src=0)
    assert not w.history.faults[-1].benign


def test_power_loss_drops_holdings_and_reboots_with_persisted_epoch(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    a = w.by_name["a"]
    f.power_loss(a, 3.0)
    assert not a.holds and a.role is None
    assert all(s.end == 5.0 for spans in w.history.holdings.values() for s in spans)
    w.run_until(7.0)
    assert w.by_name["b"].role is Role.ACTIVE
    w.run_until(9.0)
    assert a.running and a.p_epoch == 1
    assert check_s1(w.history) == []


def test_agent_crash_keeps_holdings_until_the_watchdog_resets(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    a = w.by_name["a"]
    f.agent_crash(a)
    assert set(a.holds) == {"ip", "svc"}
    w.run_until(6.9)
    assert a.holds and a.powered
    w.run_until(7.1)  # watchdog_timeout is 2s
    assert not a.holds and not a.powered


def test_freeze_queues_events_and_resumes_with_the_clock_moved_on(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    a = w.by_name["a"]
    e = _engine(w, "a")
    f.freeze(a, 0.3)
    assert w.history.faults[-1].benign is False  # 0.3 + 2 intervals is not under 0.5
    n_before = len(e.events)
    w.run_until(5.29)
    assert len(e.events) == n_before
    w.run_until(5.31)
    resumed = e.events[n_before:]
    assert resumed and all(t >= a.clock.local(5.3) - 1e-9 for t, _ in resumed)
    assert isinstance(resumed[0][1], HeartbeatReceived)


def test_long_freeze_with_watchdog_resets_the_node(cluster: Cluster) -> None:
    w, f = _world(cluster)
    w.run_until(5.0)
    a = w.by_name["a"]
    f.freeze(a, 10.0)
    w.run_until(6.9)
    assert a.holds
    w.run_until(7.1)
    assert not a.powered and not a.holds


def test_failing_start_still_counts_as_held(cluster: Cluster) -> None:
    w = World(cluster, 3, FakeEngine)
    f = Faults(w)
    f.resource_mode(w.by_name["a"], "svc", Action.START, Mode.FAILING, 100.0)
    w.at(0.0, w.power_on, w.by_name["a"])
    w.run_until(3.0)
    assert "svc" in w.by_name["a"].holds


def test_witness_grants_only_after_the_lease_ran_out() -> None:
    wt = Witness(span=3.0)
    assert wt.request("a", ArbiterRequest.CLAIM, 0.0) is ArbiterOutcome.GRANTED
    assert wt.request("b", ArbiterRequest.CLAIM, 2.9) is ArbiterOutcome.DENIED
    assert wt.request("a", ArbiterRequest.RENEW, 2.0) is ArbiterOutcome.RENEWED
    assert wt.request("b", ArbiterRequest.CLAIM, 4.9) is ArbiterOutcome.DENIED
    assert wt.request("b", ArbiterRequest.CLAIM, 5.0) is ArbiterOutcome.GRANTED
    assert wt.request("b", ArbiterRequest.RELEASE, 5.5) is None
    assert wt.valid_holder(5.6) is None


def test_disk_slots_carry_release_or_die_and_its_ack() -> None:
    d = DiskSlots(("a", "b"))
    assert d.request("b", ArbiterRequest.CLAIM, "a", 7) == [(ArbiterOutcome.GRANTED, "a", 7)]
    assert d.request("a", ArbiterRequest.RENEW, None) == [
        (ArbiterOutcome.RENEWED, None, 0),
        (ArbiterOutcome.RELEASE_REQUESTED, "b", 7),
    ]
    assert d.request("a", ArbiterRequest.ACK, "b", 7) == []
    assert d.request("a", ArbiterRequest.RENEW, None) == [(ArbiterOutcome.RENEWED, None, 0)]
    assert d.request("b", ArbiterRequest.RENEW, None) == [
        (ArbiterOutcome.RENEWED, None, 0),
        (ArbiterOutcome.PEER_RELEASED, "a", 7),
    ]


def test_network_rides_out_loss_on_one_link_but_not_a_cut_of_all() -> None:
    w = World(make_cluster(), 1, FakeEngine)
    f = Faults(w)
    f.degrade(5.0, "lan", drop=0.9)
    assert w.history.faults[-1].benign
    f.cut("link_cut_all", 5.0)
    assert not w.history.faults[-1].benign
