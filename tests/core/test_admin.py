"""Operator requests: switchover, standby / online, maintenance, failback, shutdown, cleanup."""

from __future__ import annotations

import pytest

from hotstandby.core.cluster import ArbitrationMode, Policies
from hotstandby.core.engine import Engine
from hotstandby.core.messages import (
    Action,
    AdminAction,
    Command,
    Exit,
    FencePeer,
    Outcome,
    Persist,
    Reply,
    Role,
    RunResource,
    SendHeartbeat,
    Tick,
)

from .pair import World, first_at, make_cluster, started_pair


def reply(commands: list[Command]) -> Reply:
    """The one Reply among `commands`."""
    replies = [c for c in commands if isinstance(c, Reply)]
    assert len(replies) == 1, commands
    return replies[0]


def last_beat(w: World, node: str) -> SendHeartbeat:
    """The newest heartbeat `node` sent."""
    c = w.commands(node, SendHeartbeat)[-1].command
    assert isinstance(c, SendHeartbeat)
    return c


@pytest.mark.parametrize("target", [None, "beta"])
def test_switchover_moves_the_group_without_fencing(target: str | None) -> None:
    w = started_pair(make_cluster())
    r = reply(w.admin("alpha", AdminAction.SWITCHOVER, target))
    assert r.ok and r.reason.rule == "admin.switchover"
    w.run_for(3)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    assert first_at(w, "alpha", "admin.switchover", Persist) is None  # the release persists
    assert first_at(w, "beta", "standby.election", Persist) is not None
    assert not w.commands(None, FencePeer)
    assert not w.violations


def test_switchover_to_an_unknown_or_unready_node_is_refused() -> None:
    w = started_pair(make_cluster())
    assert not reply(w.admin("alpha", AdminAction.SWITCHOVER, "gamma")).ok
    w.admin("beta", AdminAction.STANDBY)
    w.run_for(1)
    r = reply(w.admin("alpha", AdminAction.SWITCHOVER, "beta"))
    assert not r.ok and "not reachable and ready" in r.message
    assert w.role("alpha") is Role.ACTIVE


def test_switchover_asked_on_the_standby_is_carried_to_the_active() -> None:
    w = started_pair(make_cluster())
    r = reply(w.admin("beta", AdminAction.SWITCHOVER))
    assert r.ok and "alpha" in r.message
    w.run_for(3)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY


def test_switchover_in_the_wrong_role_is_answered_not_applied() -> None:
    w = started_pair(make_cluster())
    w.admin("alpha", AdminAction.MAINTENANCE_ON)
    r = reply(w.admin("alpha", AdminAction.SWITCHOVER))
    assert not r.ok and "maintenance" in r.message


def test_standby_of_the_active_moves_the_group_and_online_makes_it_eligible() -> None:
    w = started_pair(make_cluster())
    assert reply(w.admin("alpha", AdminAction.STANDBY)).ok
    w.run_for(3)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    assert last_beat(w, "alpha").beat.offline
    assert reply(w.admin("alpha", AdminAction.ONLINE)).ok
    w.run_for(1)
    assert not last_beat(w, "alpha").beat.offline
    # Failback is off by default: the group stays where it is.
    w.run_for(120)
    assert w.role("beta") is Role.ACTIVE


def test_standby_of_the_peer_is_carried_by_heartbeat_intents() -> None:
    w = started_pair(make_cluster())
    assert reply(w.admin("beta", AdminAction.STANDBY, "alpha")).ok
    beat = last_beat(w, "beta").beat
    assert [i.action for i in beat.intents] == [AdminAction.STANDBY]
    w.run_for(3)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    assert reply(w.admin("beta", AdminAction.ONLINE, "alpha")).ok
    w.run_for(1)
    assert not last_beat(w, "alpha").beat.offline


def test_standby_of_the_active_with_no_peer_ready_is_refused() -> None:
    w = started_pair(make_cluster())
    w.power_off("beta")
    w.run_for(3)
    r = reply(w.admin("alpha", AdminAction.STANDBY))
    assert not r.ok and "would stop" in r.message
    assert w.role("alpha") is Role.ACTIVE


def test_maintenance_leaves_resources_alone_then_probes_and_decides() -> None:
    w = started_pair(make_cluster(monitor_interval=1.0))
    assert reply(w.admin("alpha", AdminAction.MAINTENANCE_ON)).ok
    w.run_for(0.5)
    assert w.role("alpha") is Role.MAINTENANCE and w.role("beta") is Role.MAINTENANCE
    mark = len(w.log)
    w.run_for(10)
    assert not w.commands(None, FencePeer)
    assert not [e for e in w.log[mark:] if isinstance(e.command, RunResource)]
    assert w.held_by("alpha") == {"ip", "vol", "db"}
    assert reply(w.admin("beta", AdminAction.MAINTENANCE_OFF)).ok
    w.run_for(3)
    probes = [
        e.command.resource
        for e in w.log[mark:]
        if isinstance(e.command, RunResource) and e.command.action is Action.PROBE
    ]
    assert sorted(probes) == sorted(["ip", "vol", "db"] * 2)
    # alpha found its resources running and keeps them: no restart, no stop.
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.STANDBY
    acts = [
        e.command.action
        for e in w.log[mark:]
        if isinstance(e.command, RunResource) and e.node == "alpha"
    ]
    assert Action.STOP not in acts and Action.START not in acts


def test_failback_on_returns_the_group_after_its_delay() -> None:
    policies = Policies(failback=True, failback_delay=5.0)
    w = started_pair(make_cluster(policies=policies))
    w.power_off("alpha")
    w.run_for(10)
    assert w.role("beta") is Role.ACTIVE
    w.boot("alpha")
    back = w.now
    w.run_for(3)
    assert w.role("beta") is Role.ACTIVE  # not yet: the delay
    w.run_for(10)
    started = first_at(w, "beta", "failback")
    assert started is not None and started >= back + 5.0
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.STANDBY
    assert not w.violations


def test_failback_off_keeps_the_group_where_it_is() -> None:
    w = started_pair(make_cluster())
    w.power_off("alpha")
    w.run_for(10)
    w.boot("alpha")
    w.run_for(120)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    assert first_at(w, "beta", "failback") is None


def test_shutdown_of_the_active_releases_in_reverse_then_exits() -> None:
    w = started_pair(make_cluster())
    mark = len(w.log)
    assert reply(w.admin("alpha", AdminAction.SHUTDOWN)).ok
    w.run_for(0.1)
    stops = [
        e.command.resource
        for e in w.log[mark:]
        if isinstance(e.command, RunResource) and e.command.action is Action.STOP
    ]
    assert stops == ["db", "vol", "ip"]
    assert len(w.commands("alpha", Exit)) == 1
    assert w.nodes["alpha"].exited and not w.held_by("alpha")
    assert w.nodes["alpha"].persisted[1] is False


@pytest.mark.parametrize("mode", [ArbitrationMode.FENCE, ArbitrationMode.DISK])
def test_shutdown_of_the_active_hands_over_at_once(mode: ArbitrationMode) -> None:
    w = started_pair(make_cluster(mode))
    asked = w.now
    w.admin("alpha", AdminAction.SHUTDOWN)
    w.run_for(5)
    took = first_at(w, "beta", "standby.election", Persist)
    assert took is not None and took < asked + w.cluster.timers.dead_time
    assert not w.commands("beta", FencePeer)


def test_an_engine_that_exited_still_answers_events_without_raising() -> None:
    w = started_pair(make_cluster())
    engine: Engine = w.engine("alpha")
    w.admin("alpha", AdminAction.SHUTDOWN)
    w.run_for(0.1)
    assert w.nodes["alpha"].exited
    engine.step(Tick(), w.now + 0.2)


def test_a_planned_stop_of_the_standby_does_not_get_it_fenced() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    assert reply(w.admin("beta", AdminAction.SHUTDOWN)).ok
    w.run_for(5)
    assert w.nodes["beta"].exited
    assert not w.commands("alpha", FencePeer)


def test_cleanup_forgets_failures_so_the_node_may_host_again() -> None:
    w = started_pair(make_cluster(policies=Policies(max_restarts=0), monitor_interval=1.0))
    w.script("alpha", "db", Action.MONITOR, Outcome.FAILED)
    w.run_for(5)
    assert w.role("beta") is Role.ACTIVE
    assert last_beat(w, "alpha").beat.failed
    assert not reply(w.admin("alpha", AdminAction.CLEANUP, "nosuch")).ok
    r = reply(w.admin("alpha", AdminAction.CLEANUP, "db"))
    assert r.ok and r.reason.rule == "admin.cleanup"
    w.run_for(1)
    assert not last_beat(w, "alpha").beat.failed
    # Now alpha may take the group again: put beta in standby and it moves back.
    w.admin("beta", AdminAction.STANDBY)
    w.run_for(3)
    assert w.role("alpha") is Role.ACTIVE


def test_force_active_takes_over_alone_and_is_refused_when_active() -> None:
    w = World(make_cluster(ArbitrationMode.NONE))
    w.boot("alpha")
    w.run_until(0.5)
    r = reply(w.admin("alpha", AdminAction.FORCE_ACTIVE))
    assert r.ok
    w.run_for(1)
    assert w.role("alpha") is Role.ACTIVE
    assert first_at(w, "alpha", "admin.force_active", Persist) is not None
    assert w.now < w.cluster.timers.initial_dead  # it did not wait for the peer
    refused = reply(w.admin("alpha", AdminAction.FORCE_ACTIVE))
    assert not refused.ok
