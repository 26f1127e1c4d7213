"""Failure detection: per link and per peer, dead time, warn time, initial dead time, boots."""

from __future__ import annotations

import pytest

from hotstandby.core.cluster import ArbitrationMode, Policies
from hotstandby.core.messages import (
    AlarmKind,
    FencePeer,
    HeartbeatReceived,
    Persist,
    RaiseAlarm,
    Role,
    RoleChanged,
)
from hotstandby.core.peers import LinkState

from .pair import World, first_at, make_cluster, of, started_pair


def alarms(w: World, node: str, kind: AlarmKind) -> list[RaiseAlarm]:
    """The alarms of one kind `node` raised."""
    out = []
    for e in w.commands(node, RaiseAlarm):
        assert isinstance(e.command, RaiseAlarm)
        if e.command.kind is kind:
            out.append(e.command)
    return out


def role_changes(w: World, node: str) -> list[tuple[Role, str]]:
    """(new role, rule) of every role change of `node`."""
    out = []
    for e in w.commands(node, RoleChanged):
        assert isinstance(e.command, RoleChanged)
        out.append((e.command.new, e.command.reason.rule))
    return out


def test_both_booting_together_the_higher_priority_becomes_active() -> None:
    w = started_pair(make_cluster())
    assert w.role("alpha") is Role.ACTIVE
    assert w.role("beta") is Role.STANDBY
    assert (Role.TAKING_OVER, "boot.election") in role_changes(w, "alpha")
    assert (Role.STANDBY, "boot.election") in role_changes(w, "beta")
    # Both present and empty is evidence enough: no fence, no waiting out initial_dead.
    assert not w.commands(None, FencePeer)
    took = first_at(w, "alpha", "boot.election", Persist)
    assert took is not None and took < w.cluster.timers.initial_dead
    assert w.held_by("alpha") == {"ip", "vol", "db"} and not w.violations


def test_priority_not_name_order_decides_the_election() -> None:
    w = started_pair(make_cluster(nodes=(("alpha", 50), ("beta", 100))))
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY


def test_a_node_booting_beside_an_active_peer_stands_by() -> None:
    w = started_pair(make_cluster())
    w.power_off("beta")
    w.run_for(5)
    w.boot("beta")
    w.run_for(3)
    assert w.role("beta") is Role.STANDBY
    assert (Role.STANDBY, "boot.peer_active") in role_changes(w, "beta")


def test_one_link_cut_is_reported_not_acted_on() -> None:
    w = started_pair(make_cluster())
    cut_at = w.now
    w.net.cut("net", "alpha", "beta")
    w.run_for(3)
    for node in ("alpha", "beta"):
        downs = alarms(w, node, AlarmKind.LINK_DOWN)
        assert [a.message.split()[1] for a in downs] == ["net"], node
        assert not alarms(w, node, AlarmKind.PEER_LOST)
    down_at = first_at(w, "beta", "link.dead_time")
    assert down_at is not None
    t = w.cluster.timers
    # Counted from the last heartbeat that crossed, up to one interval before the cut.
    assert cut_at - t.interval + t.dead_time <= down_at <= cut_at + t.dead_time + 0.01
    late_at = first_at(w, "beta", "link.warn_time")
    assert late_at is not None and late_at < down_at
    assert (w.role("alpha"), w.role("beta")) == (Role.ACTIVE, Role.STANDBY)
    assert not w.commands(None, FencePeer)
    ups_before = len(alarms(w, "beta", AlarmKind.LINK_UP))  # the links coming up at boot
    w.net.heal("net", "alpha", "beta")
    w.run_for(1)
    assert len(alarms(w, "beta", AlarmKind.LINK_UP)) == ups_before + 1
    assert (w.role("alpha"), w.role("beta")) == (Role.ACTIVE, Role.STANDBY)


def test_a_lossy_link_rides_out() -> None:
    # Every second heartbeat lost on both links, both ways: the gaps (2 intervals)
    # stay under the dead time, so nothing is even reported down.
    w = started_pair(make_cluster())
    for link in ("net", "serial"):
        for src, dst in (("alpha", "beta"), ("beta", "alpha")):
            w.net.drop_every[(link, src, dst)] = 2
    w.run_for(10)
    assert not alarms(w, "beta", AlarmKind.LINK_DOWN)
    assert not alarms(w, "beta", AlarmKind.PEER_LOST)
    assert (w.role("alpha"), w.role("beta")) == (Role.ACTIVE, Role.STANDBY)


def test_a_one_way_cut_is_seen_from_both_ends() -> None:
    # Witness mode: the active keeps its lease and fences nobody, so the links stay as cut.
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    for link in ("net", "serial"):
        w.net.cut(link, "alpha", "beta", both=False)  # alpha's heartbeats no longer reach beta
    w.run_for(1.5)
    # beta hears nothing at all; alpha still hears beta, but beta no longer echoes it.
    assert alarms(w, "beta", AlarmKind.PEER_LOST)
    lost = alarms(w, "alpha", AlarmKind.PEER_LOST)
    assert len(lost) == 1 and "one-way" in lost[0].message
    assert not alarms(w, "alpha", AlarmKind.LINK_DOWN)  # its links to beta are fine
    assert w.role("alpha") is Role.ACTIVE  # its lease holds: no reason to demote
    assert w.role("beta") is Role.ARBITRATING  # the witness refuses it the lease
    assert not w.violations


def test_power_loss_brings_every_link_down_after_the_dead_time() -> None:
    w = started_pair(make_cluster())
    t = w.cluster.timers
    lost = w.now
    w.power_off("alpha")
    w.run_for(2)
    downs = [
        e.t for e in w.commands("beta", RaiseAlarm) if e.command.reason.rule == "link.dead_time"
    ]
    assert len(downs) == 2
    # Counted from the last heartbeat, sent up to one interval before the power loss.
    assert all(lost + t.dead_time - t.interval <= d <= lost + t.dead_time + 0.01 for d in downs)
    seen = first_at(w, "beta", "peer.lost")
    assert seen is not None and seen <= max(downs)


def test_a_silence_shorter_than_the_dead_time_is_ridden_out() -> None:
    w = started_pair(make_cluster(ArbitrationMode.NONE))
    t = w.cluster.timers
    for link in ("net", "serial"):
        w.net.cut(link, "alpha", "beta")
    # Silence on every link of dead_time - interval, counted from the last beat, is
    # still below the dead time: L2 says ride it out.
    w.run_for(t.dead_time - 2 * t.interval)
    w.net.heal_all()
    w.run_for(3)
    assert not alarms(w, "beta", AlarmKind.PEER_LOST)
    assert not alarms(w, "alpha", AlarmKind.PEER_LOST)
    assert (w.role("alpha"), w.role("beta")) == (Role.ACTIVE, Role.STANDBY)
    assert not w.violations


def test_initial_dead_time_is_waited_at_boot() -> None:
    w = World(make_cluster())
    w.boot("alpha")
    w.run_until(w.cluster.timers.initial_dead - 0.01)
    assert w.role("alpha") is Role.STARTING
    w.run_for(0.02)
    assert w.role("alpha") is Role.ARBITRATING
    assert (Role.ARBITRATING, "boot.alone") in role_changes(w, "alpha")


def test_heartbeat_only_booting_alone_waits_and_says_why() -> None:
    w = World(make_cluster(ArbitrationMode.NONE))
    w.boot("alpha")
    w.run_until(30)
    assert w.role("alpha") is Role.STARTING
    assert len(alarms(w, "alpha", AlarmKind.ARBITER)) == 1  # warned once, not every tick
    assert not w.held_by("alpha")


def test_heartbeat_only_booting_alone_with_boot_alone_takes_over() -> None:
    w = World(make_cluster(ArbitrationMode.NONE, policies=Policies(boot_alone=True)))
    w.boot("alpha")
    w.run_until(5)
    assert w.role("alpha") is Role.ACTIVE
    took = first_at(w, "alpha", "takeover.heartbeat_only", Persist)
    assert took is not None and took >= w.cluster.timers.initial_dead


def test_fence_mode_booting_alone_fences_the_unseen_peer_first() -> None:
    w = World(make_cluster(ArbitrationMode.FENCE))
    w.boot("alpha")
    w.run_until(10)
    assert w.role("alpha") is Role.ACTIVE
    fenced = first_at(w, "alpha", "fence.peer_lost", FencePeer)
    took = first_at(w, "alpha", "takeover.fenced", Persist)
    assert fenced is not None and took is not None
    # Never heard, so it might hold the group: the fence waits fence_delay.
    initial = w.cluster.timers.initial_dead
    assert fenced >= initial + w.cluster.arbitration.fence_delay
    assert took >= fenced + w.fence_delay


# A never-heard peer used to count as lost at `now`, pushing the wait ahead forever:
# booting alone hung in witness and disk modes (fixed in the engine).
@pytest.mark.parametrize(
    ("mode", "rule"),
    [(ArbitrationMode.WITNESS, "takeover.lease"), (ArbitrationMode.DISK, "takeover.disk")],
)
def test_leased_modes_booting_alone_take_over_with_the_arbiter(
    mode: ArbitrationMode, rule: str
) -> None:
    w = World(make_cluster(mode))
    w.boot("alpha")
    w.run_until(30)
    assert first_at(w, "alpha", rule, Persist) is not None
    assert w.role("alpha") is Role.ACTIVE


def test_a_copy_of_a_beat_on_a_link_already_up_changes_nothing() -> None:
    w = started_pair(make_cluster())
    beta = w.engine("beta")
    beat = beta.peers["alpha"].beat
    assert beat is not None
    links = list(beta.peers["alpha"].links)
    deadline = beta.next_deadline()
    assert deadline is not None
    # At its deadline an evaluation would do something (send its heartbeat, at least);
    # a copy, arriving just then, leaves that to the Tick the deadline asks for.
    now = deadline
    # The newest beat again, as its copy on every link: only the links' freshness moves.
    for link in links:
        assert beta.step(HeartbeatReceived(link, beat), now) == []
        assert beta.peers["alpha"].links[link].last_seen == now
    assert beta.next_deadline() == deadline
    # A copy on a link that was down brings it up: that is evaluated, and said.
    view = beta.peers["alpha"].links[links[0]]
    view.state = LinkState.DOWN
    said = beta.step(HeartbeatReceived(links[0], beat), now + 0.01)
    assert [c.kind for c in said if isinstance(c, RaiseAlarm)] == [AlarmKind.LINK_UP]


@pytest.mark.parametrize("mode", [ArbitrationMode.FENCE, ArbitrationMode.WITNESS])
@pytest.mark.parametrize("gap", [0.05, 0.2, 0.4])
def test_a_standby_agent_restarted_within_the_dead_time_is_not_fenced(
    mode: ArbitrationMode, gap: float
) -> None:
    # The restarted agent's first heartbeats echo nothing yet: that is no one-way cut.
    w = started_pair(make_cluster(mode))
    w.nodes["beta"].engine = None  # the agent is killed; the machine runs on
    w.run_for(gap)
    w.boot("beta")
    w.run_for(10)
    assert not of(w, "alpha", FencePeer)
    assert (w.role("alpha"), w.role("beta")) == (Role.ACTIVE, Role.STANDBY)
    assert "peer.lost" not in w.rules("alpha")
