"""The resource group: restarts in place, moves, failed starts and failed stops."""

from __future__ import annotations

from dataclasses import replace

from hotstandby.core.cluster import ArbitrationMode, OnFail, Policies
from hotstandby.core.messages import (
    Action,
    AdminAction,
    FencePeer,
    Outcome,
    Role,
    RoleChanged,
    RunResource,
    SelfFence,
    SendHeartbeat,
)

from .pair import World, first_at, make_cluster, of, started_pair, starts


def runs(w: World, node: str, since: int = 0) -> list[tuple[str, str, str]]:
    """(resource, action, rule) of every RunResource of `node` after log index `since`."""
    out = []
    for e in w.log[since:]:
        c = e.command
        if e.node == node and isinstance(c, RunResource) and c.action is not Action.MONITOR:
            out.append((c.resource, c.action.value, c.reason.rule))
    return out


def fast_monitor_pair(mode: ArbitrationMode = ArbitrationMode.FENCE, **policies: object) -> World:
    """A settled pair whose monitors run every second."""
    pol = Policies(**policies)  # type: ignore[arg-type]
    return started_pair(make_cluster(mode, policies=pol, monitor_interval=1.0))


def test_a_monitor_failure_restarts_in_place() -> None:
    w = fast_monitor_pair()
    mark = len(w.log)
    w.script("alpha", "db", Action.MONITOR, Outcome.FAILED)
    w.run_for(3)
    assert runs(w, "alpha", mark) == [
        ("db", "stop", "restart.stop"),
        ("db", "start", "restart.start"),
    ]
    assert first_at(w, "alpha", "restart.done") is not None
    assert first_at(w, "alpha", "resource.monitor_failed") is not None
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.STANDBY


def test_monitor_failures_beyond_max_restarts_in_the_window_move_the_group() -> None:
    w = fast_monitor_pair(max_restarts=2, restart_window=60.0)
    mark = len(w.log)
    w.script("alpha", "db", Action.MONITOR, Outcome.FAILED, Outcome.FAILED, Outcome.FAILED)
    w.run_for(10)
    restarts = [r for r in runs(w, "alpha", mark) if r[2] == "restart.stop"]
    assert len(restarts) == 2
    assert first_at(w, "alpha", "group.move") is not None
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    # It failed the group: its heartbeats say so, so it is not a candidate for a while.
    beats = w.commands("alpha", SendHeartbeat)
    last = beats[-1].command
    assert isinstance(last, SendHeartbeat) and last.beat.failed
    assert not w.violations


def test_failures_older_than_the_window_are_forgotten() -> None:
    w = fast_monitor_pair(max_restarts=1, restart_window=2.0)
    mark = len(w.log)
    for _ in range(3):
        w.script("alpha", "db", Action.MONITOR, Outcome.FAILED)
        w.run_for(4)  # each failure falls out of the window before the next
    restarts = [r for r in runs(w, "alpha", mark) if r[2] == "restart.stop"]
    assert len(restarts) == 3  # with a longer window the second would move the group
    assert first_at(w, "alpha", "group.move") is None
    assert w.role("alpha") is Role.ACTIVE


def test_a_failed_start_on_the_new_node_moves_the_group_back() -> None:
    w = started_pair(make_cluster())
    w.script("beta", "vol", Action.START, Outcome.FAILED)
    w.admin("alpha", AdminAction.SWITCHOVER)
    w.run_for(10)
    assert first_at(w, "beta", "resource.start_failed") is not None
    assert first_at(w, "beta", "group.move") is not None
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.STANDBY
    assert w.held_by("alpha") == {"ip", "vol", "db"} and not w.held_by("beta")
    assert starts(w, "beta") == ["ip", "vol"]  # db was never tried after vol failed
    assert not w.violations


def test_a_failed_start_with_no_other_node_keeps_trying_in_place_and_alarms_once() -> None:
    w = fast_monitor_pair(max_restarts=0)
    w.power_off("beta")
    w.run_for(3)
    w.script("alpha", "db", Action.MONITOR, Outcome.FAILED)
    w.run_for(3)
    assert any(e.command.reason.rule == "stuck.db" for e in w.commands("alpha"))
    assert w.role("alpha") is Role.ACTIVE
    assert "db" in w.held_by("alpha")


def test_a_failed_stop_without_fencing_stops_the_node_itself() -> None:
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    w.script("alpha", "db", Action.STOP, Outcome.FAILED)
    w.admin("alpha", AdminAction.SWITCHOVER)
    w.run_for(15)
    fenced = w.commands("alpha", SelfFence)
    assert len(fenced) == 1
    assert isinstance(fenced[0].command, SelfFence)
    assert fenced[0].command.reason.rule == "resource.stop_failed"
    # After the watchdog reset, beta takes over with the witness lease; never both.
    assert w.role("beta") is Role.ACTIVE
    assert not w.violations


def test_a_failed_stop_in_fence_mode_becomes_fenced_and_says_so() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.script("alpha", "db", Action.STOP, Outcome.FAILED)
    w.admin("alpha", AdminAction.SWITCHOVER)
    # Just after the failed stop (instant here), before any fence could act.
    w.run_for(0.1)
    assert w.role("alpha") is Role.FENCED
    changes = [c for _, c in of(w, "alpha", RoleChanged)]
    assert changes[-1].reason.rule == "resource.stop_failed"
    assert not w.commands("alpha", SelfFence)
    beat = w.commands("alpha", SendHeartbeat)[-1].command
    assert isinstance(beat, SendHeartbeat)
    assert beat.beat.role is Role.FENCED and beat.beat.holds
    assert not w.held_by("beta")  # it must not start beside a stuck resource


def test_a_node_fenced_by_a_failed_stop_is_fenced_by_its_peer_who_takes_over() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.script("alpha", "db", Action.STOP, Outcome.FAILED)
    w.admin("alpha", AdminAction.SWITCHOVER)
    w.run_for(15)
    assert [c.target for _, c in of(w, "beta", FencePeer)][:1] == ["alpha"]
    assert w.role("beta") is Role.ACTIVE
    assert not w.violations


def test_a_resource_whose_failure_only_alarms_keeps_the_group_where_it_is() -> None:
    cluster = make_cluster(policies=Policies(max_restarts=0), monitor_interval=1.0)
    resources = tuple(
        replace(r, on_fail=OnFail.ALARM) if r.name == "db" else r for r in cluster.resources
    )
    w = started_pair(replace(cluster, resources=resources))
    mark = len(w.log)
    w.script("alpha", "db", Action.MONITOR, Outcome.FAILED, Outcome.FAILED, Outcome.OK)
    w.run_for(6)
    # No restart, no move: the failures are told once, and the recovery once.
    assert runs(w, "alpha", mark) == []
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.STANDBY
    rules = [e.command.reason.rule for e in w.log[mark:] if e.node == "alpha"]
    assert rules.count("resource.monitor_failed.alarm_only") == 1
    assert rules.count("monitor.recovered") == 1
    assert "resource.monitor_failed" not in rules
    assert not w.violations
