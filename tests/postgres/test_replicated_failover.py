"""Replicated PostgreSQL (each node its own copy, streaming) through faults, under writes.

Two real agents (fenced) hold the floating IP and the postgres resource in replicated mode;
only alpha's copy is made by initdb, beta's is built by the cluster (a base backup). A client
in its own namespace commits transactions through the floating IP with an ordinary
connection string: each inserts a unique id and moves money between accounts. After each
fault, every commit the client saw acknowledged is on the primary, the accounts' total is
unchanged, and each node's role and copy is what the fault calls for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from hotstandby.lab import skip_reason
from hotstandby.lab.pg_replicated import (
    ReplCluster,
    ReplOptions,
    cut_trial,
    repl_cluster,
    switchover_trial,
    takeover_trial,
)
from hotstandby.lab.pg_replicated import skip_reason as pg_missing
from hotstandby.lab.pg_workload import Verdict

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hpq"

Make = Callable[..., ReplCluster]


@pytest.fixture
def make() -> Iterator[Make]:
    """Builds the replicated lab (agents not started) with the options given."""
    reason = skip_reason() or pg_missing()
    if reason is not None:
        pytest.skip(reason)
    with ExitStack() as stack:

        def build(**options: Any) -> ReplCluster:
            return stack.enter_context(repl_cluster(PREFIX, ReplOptions(**options)))

        yield build


def consistent(v: Verdict) -> None:
    """What every run must show, lost writes apart."""
    assert v.total == v.expected_total, v
    assert v.rows >= v.acknowledged - v.lost, v
    # Every id on the primary was either acknowledged or reported failed (its outcome unknown).
    assert v.rows - (v.acknowledged - v.lost) == v.failed_but_committed, v


def test_a_power_loss_of_the_primary_loses_no_acknowledged_write(make: Make) -> None:
    rc = make()
    trial = takeover_trial(rc)
    v, o, back = trial.verdict, trial.outage, trial.rejoin
    print(
        f"\npower loss: takeover {trial.takeover:.2f}s, write outage {o.outage:.2f}s, client "
        f"freed after {o.freed}s ({o.first_error!r}); {v}; steps {trial.steps}; "
        f"rejoin {back}"
    )
    assert v.acknowledged >= 400 and v.lost == 0, v
    consistent(v)
    # The replica was promoted (not started from scratch).
    assert any("promot" in s for s in trial.steps), trial.steps
    # Freed by the reset of the new holder of the address, not by a kernel timeout.
    assert not trial.stuck, o
    assert o.freed is not None and o.freed < trial.takeover + 10.0, o
    assert "reset" in o.first_error.lower() or "closed" in o.first_error.lower(), o
    assert o.outage < 30.0
    # The old primary, powered on, follows the new one; what it had that the new one lacks
    # is kept where the alarm says, never dropped.
    assert back is not None and back.how, back
    assert len(back.saved) == len(back.diverged), back
    for path in back.saved:
        assert os.path.exists(path), back


def test_a_frozen_primary_is_fenced_and_its_blocked_client_freed(make: Make) -> None:
    # Frozen, its kernel alive, the primary had acknowledged the client's COMMIT at the TCP
    # level: the client has nothing to retransmit. The new holder's tickle ACKs free it.
    rc = make()
    trial = takeover_trial(rc, fault="freeze", back=False)
    v, o = trial.verdict, trial.outage
    print(f"\nfreeze: takeover {trial.takeover:.2f}s, outage {o.outage:.2f}s, freed {o.freed}s")
    assert v.lost == 0, v
    consistent(v)
    assert not trial.stuck, o
    assert o.freed is not None and o.freed < trial.takeover + 5.0, o


def test_switchovers_back_and_forth_lose_nothing_and_need_no_rewind(make: Make) -> None:
    rc = make()
    trial = switchover_trial(rc, count=2)
    for m in trial.moves:
        print(
            f"\nswitchover {m.old} -> {m.new}: outage {m.outage.outage:.2f}s, active after "
            f"{m.took:.2f}s, old primary a replica again after {m.rejoined:.2f}s: {m.how}"
        )
    print(trial.verdict)
    v = trial.verdict
    assert v.lost == 0, v
    consistent(v)
    assert [(m.old, m.new) for m in trial.moves] == [("alpha", "beta"), ("beta", "alpha")]
    for m in trial.moves:
        assert m.outage.acked_after > 0 and m.outage.outage < 30.0, m
        # The old primary stopped cleanly, behind nothing: it follows without pg_rewind or a
        # fresh base backup, and its steps say so.
        text = " | ".join(m.how)
        assert "no rewind required" in text, m.how
        assert "pg_rewind:" not in text and "base backup" not in text, m.how


def test_a_cut_replication_link_degrades_without_a_takeover(make: Make) -> None:
    rc = make(on_replica_lost="degrade", degrade_after="5s")
    trial = cut_trial(rc)
    s = trial.stall
    print(
        f"\ncut: commits stalled {s.outage:.2f}s, the primary went on without the replica "
        f"after {trial.degraded:.2f}s, caught up {trial.caught_up:.2f}s after the heal; "
        f"ineligible: {trial.ineligible}; why: {trial.why}; {trial.verdict}"
    )
    v = trial.verdict
    assert v.lost == 0, v
    consistent(v)
    # No takeover: the nodes still see each other.
    assert trial.takeovers == 0
    assert trial.roles == {trial.primary: "active", trial.replica: "standby"}, trial.roles
    # Commits waited for the replica about degrade_after, then went on without it.
    assert 5.0 <= s.outage < 60.0, s
    assert s.acked_after >= 100, s
    # The replica says it may not be promoted, and why; an alarm said so.
    assert trial.ineligible, trial
    assert trial.why_not, trial
    assert any("may NOT be promoted" in line for line in trial.why), trial.why


def test_asynchronous_replication_loses_what_the_replica_lacked_and_says_so(make: Make) -> None:
    # The replica falls a second behind (its link cut), then the primary loses power: the
    # commits of that second are gone, and the verifier must count them.
    rc = make(synchronous=False)
    trial = takeover_trial(rc, lag_cut=1.0)
    v, back = trial.verdict, trial.rejoin
    print(f"\nasynchronous power loss: {v}; outage {trial.outage.outage:.2f}s; rejoin {back}")
    assert v.lost > 0, v
    consistent(v)
    assert not trial.stuck, trial.outage
    # The old primary had those commits: when it comes back they are kept aside, and the
    # alarm names where.
    assert back is not None and back.diverged and back.saved, back
    assert all(os.path.exists(path) for path in back.saved), back
    assert any(path in back.diverged[0] for path in back.saved), back
