"""Each checker flags a hand-made bad history and passes a good one."""

from __future__ import annotations

from hotstandby.core.messages import Role
from hotstandby.sim.checkers import check_l1, check_l2, check_s1, good_spans, takeovers
from hotstandby.sim.history import INF, FaultRecord, History, Holding, RoleSample

A, B = "a", "b"


def _history() -> History:
    h = History(nodes=(A, B), resources=("ip", "svc"))
    h.end = 100.0
    return h


def _active(h: History, node: str, t: float, epoch: int, until: float = INF) -> None:
    h.roles.append(RoleSample(t, node, Role.ACTIVE, epoch))
    for r in h.resources:
        h.holdings[r].append(Holding(node, t, until))
    if until != INF:
        h.roles.append(RoleSample(until, node, Role.STANDBY, epoch))


def test_s1_flags_two_holders_at_once() -> None:
    h = _history()
    h.holdings["ip"] += [Holding(A, 0.0, 10.0), Holding(B, 9.5, INF)]
    found = check_s1(h)
    assert [v.checker for v in found] == ["S1"]
    assert found[0].t == 9.5


def test_s1_passes_a_clean_handover_at_the_same_instant() -> None:
    h = _history()
    h.holdings["ip"] += [Holding(A, 0.0, 10.0), Holding(B, 10.0, INF), Holding(A, 50.0, 50.0)]
    h.holdings["svc"] += [Holding(A, 0.0, 10.0), Holding(A, 20.0, 30.0)]
    assert check_s1(h) == []


def test_s1_counts_a_frozen_holder_as_holding() -> None:
    # A frozen node's holding simply never ends in the history: a takeover meanwhile overlaps.
    h = _history()
    h.holdings["svc"] += [Holding(A, 0.0, INF), Holding(B, 40.0, 41.0)]
    assert len(check_s1(h)) == 1


def test_l1_flags_no_active_at_the_end() -> None:
    h = _history()
    _active(h, A, 1.0, 1, until=60.0)
    h.liveness_start, h.budget = 50.0, 20.0
    assert [v.checker for v in check_l1(h)] == ["L1"]


def test_l1_flags_an_active_that_came_too_late() -> None:
    h = _history()
    _active(h, B, 80.0, 2)
    h.liveness_start, h.budget = 50.0, 20.0
    found = check_l1(h)
    assert len(found) == 1 and "after the deadline" in found[0].message


def test_l1_flags_two_actives() -> None:
    h = _history()
    _active(h, A, 1.0, 1)
    _active(h, B, 55.0, 2)
    h.liveness_start, h.budget = 50.0, 20.0
    assert len(check_l1(h)) == 1


def test_l1_flags_an_active_missing_a_resource() -> None:
    h = _history()
    h.roles.append(RoleSample(1.0, A, Role.ACTIVE, 1))
    h.holdings["ip"].append(Holding(A, 1.0))
    h.liveness_start, h.budget = 50.0, 20.0
    assert len(check_l1(h)) == 1


def test_l1_passes_one_active_within_the_budget() -> None:
    h = _history()
    _active(h, A, 1.0, 1, until=55.0)
    _active(h, B, 60.0, 2)
    h.liveness_start, h.budget = 50.0, 20.0
    assert check_l1(h) == []
    assert good_spans(h) == [(1.0, 55.0, A), (60.0, INF, B)]


def test_l2_flags_a_takeover_on_a_benign_fault() -> None:
    h = _history()
    h.budget = 10.0
    h.faults.append(FaultRecord(0.0, "boot", A, 0.0))
    _active(h, A, 1.0, 1, until=30.0)
    h.faults.append(FaultRecord(25.0, "link_cut", "lan", 60.0, benign=True))
    _active(h, B, 30.0, 2)
    found = check_l2(h)
    assert len(found) == 1 and "link_cut" in found[0].message
    assert takeovers(h) == [(1.0, A, 1), (30.0, B, 2)]


def test_l2_passes_a_takeover_after_a_power_loss() -> None:
    h = _history()
    h.budget = 10.0
    h.faults.append(FaultRecord(0.0, "boot", A, 0.0))
    _active(h, A, 1.0, 1, until=25.0)
    h.faults.append(FaultRecord(25.0, "link_cut", "lan", 60.0, benign=True))
    h.faults.append(FaultRecord(25.0, "power_loss", A, 40.0))
    _active(h, B, 30.0, 2)
    assert check_l2(h) == []


def test_l2_flags_flapping() -> None:
    h = _history()
    h.budget = 5.0
    h.faults.append(FaultRecord(0.0, "boot", A, 0.0))
    for i in range(8):
        node = A if i % 2 == 0 else B
        h.roles.append(RoleSample(1.0 + 5 * i, node, Role.ACTIVE, 1))  # same epoch: no takeover
    found = check_l2(h)
    assert len(found) == 1 and "flapping" in found[0].message


def test_l2_passes_changes_each_justified() -> None:
    h = _history()
    h.budget = 5.0
    for i in range(6):
        node = A if i % 2 == 0 else B
        h.faults.append(FaultRecord(1.0 + 10 * i, "admin_switchover", node, 1.0 + 10 * i))
        h.roles.append(RoleSample(2.0 + 10 * i, node, Role.ACTIVE, i + 1))
    assert check_l2(h) == []
