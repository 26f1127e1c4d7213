"""The takeover rule per arbitration mode, demotion of a cut-off active, split brains, epochs."""

from __future__ import annotations

import itertools

import pytest

from hotstandby.core import timing
from hotstandby.core.cluster import ArbitrationMode
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AlarmKind,
    ArbiterOutcome,
    ArbiterRequest,
    AskArbiter,
    FencePeer,
    Persist,
    RaiseAlarm,
    Role,
    RunResource,
    SelfFence,
)

from .pair import World, first_at, make_cluster, of, started_pair, starts

TAKEOVER_RULE = {
    ArbitrationMode.NONE: "takeover.heartbeat_only",
    ArbitrationMode.FENCE: "takeover.fenced",
    ArbitrationMode.WITNESS: "takeover.lease",
    ArbitrationMode.DISK: "takeover.disk",
}


def cut_all(w: World) -> None:
    """Cut every link between alpha and beta, both ways."""
    for link in w.cluster.links:
        w.net.cut(link.name, "alpha", "beta")


@pytest.mark.parametrize("mode", list(ArbitrationMode))
def test_power_loss_of_the_active_moves_the_group_with_the_mode_s_evidence(
    mode: ArbitrationMode,
) -> None:
    w = started_pair(make_cluster(mode))
    w.power_off("alpha")
    w.run_for(15)
    assert w.role("beta") is Role.ACTIVE
    assert w.held_by("beta") == {"ip", "vol", "db"}
    took = first_at(w, "beta", TAKEOVER_RULE[mode], Persist)
    assert took is not None
    assert not w.violations


def test_fence_mode_waits_fence_delay_then_fences_then_takes_over() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    died = w.now
    w.power_off("alpha")
    w.run_for(10)
    lost = first_at(w, "beta", "peer.lost")
    fence = first_at(w, "beta", "fence.peer_lost", FencePeer)
    took = first_at(w, "beta", "takeover.fenced", Persist)
    assert lost is not None and fence is not None and took is not None
    # The active held the group when last heard: the standby gives it fence_delay.
    assert fence == pytest.approx(lost + w.cluster.arbitration.fence_delay)
    assert took == pytest.approx(fence + w.fence_delay)
    first_start = min(t for t, c in of(w, "beta", RunResource) if c.action is Action.START)
    assert first_start >= took > died


def test_witness_grants_the_lease_only_once_the_dead_active_s_ran_out() -> None:
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    lease_end = w.witness.expiry  # the active's last renewal at the witness
    w.power_off("alpha")
    w.run_for(15)
    took = first_at(w, "beta", "takeover.lease", Persist)
    assert took is not None and took >= lease_end
    # Claims before that were refused, and the standby kept asking.
    claims = [c for _, c in of(w, "beta", AskArbiter) if c.request is ArbiterRequest.CLAIM]
    assert len(claims) >= 2
    assert w.witness.holder == "beta"


def test_disk_takeover_waits_the_release_or_die_time_when_nobody_answers() -> None:
    w = started_pair(make_cluster(ArbitrationMode.DISK))
    w.power_off("alpha")
    w.run_for(20)
    posted = first_at(w, "beta", "arbitrate.release_or_die", AskArbiter)
    took = first_at(w, "beta", "takeover.disk", Persist)
    assert posted is not None and took is not None
    assert took >= posted + timing.disk_claim_wait(w.cluster)
    asked = w.disk.requests["alpha"]
    assert asked is not None and asked[0] == "beta"  # the message still waits on the disk


def test_disk_takeover_is_quick_when_the_live_active_acknowledges() -> None:
    # A cut between the nodes, both reach the disk: the active reads "release or
    # die", releases and acknowledges; the standby need not wait out the lease.
    w = started_pair(make_cluster(ArbitrationMode.DISK))
    cut_all(w)
    w.run_for(20)
    posted = first_at(w, "beta", "arbitrate.release_or_die", AskArbiter)
    took = first_at(w, "beta", "takeover.disk", Persist)
    released = first_at(w, "alpha", "disk.release_or_die")
    assert posted is not None and took is not None and released is not None
    assert took < posted + timing.disk_claim_wait(w.cluster)
    assert w.role("beta") is Role.ACTIVE and w.role("alpha") is Role.STANDBY
    assert not w.violations


def test_a_failed_fence_is_retried_alarmed_and_never_taken_as_success() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.fence_results = [False, False, True]
    w.power_off("alpha")
    w.run_for(15)
    attempts = of(w, "beta", FencePeer)
    assert [c.attempt for _, c in attempts] == [1, 2, 3]
    failed = [c for _, c in of(w, "beta", RaiseAlarm) if c.kind is AlarmKind.FENCE_FAILED]
    assert len(failed) == 2
    took = first_at(w, "beta", "takeover.fenced", Persist)
    assert took is not None and took >= attempts[2][0]


def test_a_fence_that_always_fails_never_leads_to_a_takeover() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.fence_results = [False] * 1000
    # A cut, not a death: the active is alive and its own fence fails too.
    cut_all(w)
    w.run_for(30)
    assert w.role("beta") is Role.ARBITRATING
    assert not w.held_by("beta") and w.held_by("alpha")
    assert not w.violations


@pytest.mark.parametrize("mode", [ArbitrationMode.WITNESS, ArbitrationMode.DISK])
def test_an_active_that_loses_peer_and_arbiter_gives_up_before_its_lease_ends(
    mode: ArbitrationMode,
) -> None:
    w = started_pair(make_cluster(mode))
    cut_all(w)
    w.nodes["alpha"].arbiter_cut = True
    lease_until = w.engine("alpha").lease_until
    w.run_for(20)
    demoted = first_at(w, "alpha", "demote.unconfirmed")
    assert demoted is not None and demoted < lease_until
    assert not w.held_by("alpha")
    assert w.role("alpha") is Role.STANDBY or w.role("alpha") is Role.ARBITRATING
    assert w.role("beta") is Role.ACTIVE
    assert first_at(w, "beta", TAKEOVER_RULE[mode], Persist) is not None
    assert not w.violations


def test_an_active_with_its_arbiter_keeps_the_group_through_a_cut() -> None:
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    cut_all(w)
    w.run_for(20)
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.ARBITRATING
    denied = first_at(w, "beta", "arbiter.denied")
    assert denied is not None
    assert not w.violations


def test_a_stop_too_slow_while_demoting_ends_in_self_fence() -> None:
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    w.script("alpha", "db", Action.STOP, None)  # the stop never answers
    cut_all(w)
    w.nodes["alpha"].arbiter_cut = True
    w.run_for(20)
    fenced = of(w, "alpha", SelfFence)
    assert len(fenced) == 1 and fenced[0][1].reason.rule == "release.too_slow"
    demoted = first_at(w, "alpha", "demote.unconfirmed")
    assert demoted is not None
    assert fenced[0][0] == pytest.approx(demoted + w.cluster.timers.release)
    # The watchdog reset the machine before the standby took over.
    assert w.role("beta") is Role.ACTIVE
    assert not w.violations


def test_a_healed_cut_with_two_actives_keeps_the_higher_epoch() -> None:
    w = started_pair(make_cluster(ArbitrationMode.NONE))
    cut_all(w)
    w.run_for(3)
    # Heartbeat-only: both hold now, which is what that mode risks by name.
    assert w.role("alpha") is Role.ACTIVE and w.role("beta") is Role.ACTIVE
    assert w.engine("beta").epoch > w.engine("alpha").epoch
    w.net.heal_all()
    w.run_for(3)
    assert first_at(w, "alpha", "split_brain.lower_epoch", RaiseAlarm) is not None
    assert w.role("alpha") is Role.STANDBY and w.role("beta") is Role.ACTIVE
    beta_said = [c for _, c in of(w, "beta", RaiseAlarm) if c.kind is AlarmKind.SPLIT_BRAIN]
    beta_warned = [c for c in beta_said if c.reason.rule != "split_brain.resolved"]
    # The keeper warns at most once (if it saw alpha active before alpha let go), and
    # then says when it is resolved.
    assert len(beta_warned) <= 1
    assert len(beta_said) == 2 * len(beta_warned)
    assert not w.held_by("alpha") and w.held_by("beta") == {"ip", "vol", "db"}


@pytest.mark.parametrize("mode", list(ArbitrationMode))
def test_epochs_grow_and_persist_comes_before_any_start(mode: ArbitrationMode) -> None:
    w = started_pair(make_cluster(mode))
    w.power_off("alpha")
    w.run_for(15)
    w.boot("alpha")
    w.run_for(5)
    w.power_off("beta")
    w.run_for(15)
    taken: list[tuple[float, int]] = []
    for node in ("alpha", "beta"):
        persisted_active: int | None = None
        for e in w.commands(node):
            c = e.command
            if isinstance(c, Persist):
                persisted_active = c.epoch if c.active else None
                if c.active:
                    taken.append((e.t, c.epoch))
            if isinstance(c, RunResource) and c.action is Action.START:
                assert persisted_active is not None, f"{node} started {c.resource} unpersisted"
    epochs = [epoch for _, epoch in sorted(taken)]
    assert len(epochs) == 3  # alpha at boot, beta, alpha again
    assert all(a < b for a, b in itertools.pairwise(epochs))
    assert w.role("alpha") is Role.ACTIVE
    assert w.engine("alpha").epoch == max(epochs)


def test_the_group_starts_in_order_and_stops_in_reverse_one_at_a_time() -> None:
    w = World(make_cluster())
    w.res_delay = dict.fromkeys(Action, 0.05)
    for name in ("alpha", "beta"):
        w.boot(name)
    w.run_until(5)
    assert starts(w, "alpha") == ["ip", "vol", "db"]
    start_times = [t for t, c in of(w, "alpha", RunResource) if c.action is Action.START]
    # One at a time: each waits for the previous answer.
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(start_times))
    before = len(w.log)
    w.admin("alpha", AdminAction.SWITCHOVER)
    w.run_for(5)
    stops = [
        e.command.resource
        for e in w.log[before:]
        if e.node == "alpha"
        and isinstance(e.command, RunResource)
        and e.command.action is Action.STOP
    ]
    assert stops == ["db", "vol", "ip"]
    assert starts(w, "beta") == ["ip", "vol", "db"]
    assert not w.violations


def test_arbiter_answers_follow_the_engine_s_clock() -> None:
    # The fake answers with sent_at = AskArbiter.at: check it keeps the lease counted
    # from the request, so the lease ends in the engine's own reckoning first.
    w = started_pair(make_cluster(ArbitrationMode.WITNESS))
    e = w.engine("alpha")
    last = max(c.at for _, c in of(w, "alpha", AskArbiter) if c.request is ArbiterRequest.RENEW)
    assert e.lease_until == pytest.approx(last + timing.lease_validity(w.cluster))
    assert w.witness.expiry > e.lease_until
    assert ArbiterOutcome.RENEWED in ArbiterOutcome


def test_a_resolved_split_brain_is_announced_by_the_node_that_released() -> None:
    w = started_pair(make_cluster(ArbitrationMode.NONE))
    cut_all(w)
    w.run_for(3)
    w.net.heal_all()
    w.run_for(3)
    detected = first_at(w, "alpha", "split_brain.lower_epoch", RaiseAlarm)
    resolved = first_at(w, "alpha", "split_brain.resolved", RaiseAlarm)
    assert detected is not None and resolved is not None and resolved >= detected
    alarms = [c for _, c in of(w, "alpha", RaiseAlarm) if c.reason.rule == "split_brain.resolved"]
    assert len(alarms) == 1
    assert alarms[0].kind is AlarmKind.SPLIT_BRAIN and "alpha released" in alarms[0].message


def test_the_keeper_announces_a_split_brain_resolved_only_after_warning_of_it() -> None:
    w = started_pair(make_cluster(ArbitrationMode.NONE))
    alpha = w.engine("alpha")
    # A split brain the keeper (alpha, active) warned of, then the peer seen holding
    # nothing: one "resolved" alarm, and the warning may be raised again later.
    alpha.warned.add("split.beta.1")
    w.run_for(1)
    resolved = [c for _, c in of(w, "alpha", RaiseAlarm) if c.reason.rule == "split_brain.resolved"]
    assert [c.kind for c in resolved] == [AlarmKind.SPLIT_BRAIN]
    assert "beta released the group; alpha keeps it" in resolved[0].message
    assert not any(key.startswith("split.beta.") for key in alpha.warned)
    w.run_for(1)
    again = [c for _, c in of(w, "alpha", RaiseAlarm) if c.reason.rule == "split_brain.resolved"]
    assert len(again) == 1


def test_no_split_brain_resolved_without_a_split_brain() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.power_off("alpha")
    w.run_for(15)
    for node in ("alpha", "beta"):
        assert first_at(w, node, "split_brain.resolved", RaiseAlarm) is None


def test_a_fence_is_announced_once_then_each_result_is_an_alarm() -> None:
    w = started_pair(make_cluster(ArbitrationMode.FENCE))
    w.fence_results = [False, True]
    w.power_off("alpha")
    w.run_for(15)
    alarms = [(t, c) for t, c in of(w, "beta", RaiseAlarm) if "fence" in c.kind.value]
    assert [(c.kind, c.reason.rule) for _, c in alarms] == [
        (AlarmKind.FENCE, "fence.peer_lost"),
        (AlarmKind.FENCE_FAILED, "fence.failed"),
        (AlarmKind.FENCE, "fence.confirmed"),
    ]
    assert alarms[0][1].message == "fencing alpha"
    first_fence = of(w, "beta", FencePeer)[0][0]
    assert alarms[0][0] == first_fence  # announced as it is asked for
