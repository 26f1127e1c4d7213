"""PostgreSQL on the shared disk through a power loss of the active node, under writes.

Two real agents (fenced) hold the classic group: the floating IP, the shared volume with the
data directory on it, and the postgres resource. A client in its own namespace commits
transactions through the floating IP with an ordinary connection string (no timeouts): each
inserts a unique id and moves money between accounts. The active node loses power mid-way.
Afterwards, every commit the client saw acknowledged is on the new primary, the accounts'
total is unchanged, the new node's server ran crash recovery and said how long it took, and
the client's connection to the dead primary was freed by the takeover (the new holder of the
address answers its retransmissions with a reset), not by a kernel timeout minutes later.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import skip_reason
from hotstandby.lab.pg_failover import PgCluster, pg_cluster, power_loss_trial
from hotstandby.lab.pg_failover import skip_reason as pg_missing

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hpg"


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    """The lab with PostgreSQL's data on the shared volume; agents not started."""
    reason = skip_reason() or pg_missing()
    if reason is not None:
        pytest.skip(reason)
    with pg_cluster(PREFIX) as made:
        yield made


def test_a_power_loss_loses_no_acknowledged_write(pg: PgCluster) -> None:
    trial = power_loss_trial(pg)
    v, o = trial.verdict, trial.outage
    print(
        f"\ntakeover {trial.takeover:.2f}s, write outage {o.outage:.2f}s, client freed after "
        f"{o.freed}s ({o.first_error!r}), redo {trial.redo}s, server ready after "
        f"{trial.ready}s; {v}; steps {trial.steps}"
    )
    assert v.acknowledged >= 400 and v.lost == 0, v
    assert v.total == v.expected_total, v
    assert v.rows >= v.acknowledged
    assert v.rows - v.acknowledged == v.failed_but_committed, v
    # The new node's server ran crash recovery and reported it.
    assert trial.redo is not None and trial.ready is not None
    assert 0 <= trial.redo <= trial.ready
    # Freed by the reset of the new holder of the address, soon after the takeover: a kernel
    # timeout (tcp_retries2) would take about 15 minutes.
    assert o.freed is not None and o.freed < trial.takeover + 10.0, o
    assert "reset" in o.first_error.lower() or "closed" in o.first_error.lower(), o
    assert o.outage < 30.0


def test_a_switchover_stops_the_server_cleanly_and_loses_nothing(pg: PgCluster) -> None:
    trial = power_loss_trial(pg, switchover=True, after=100)
    v, o = trial.verdict, trial.outage
    print(f"\nswitchover: write outage {o.outage:.2f}s; {v}; stop {trial.old_steps}")
    assert v.lost == 0 and v.total == v.expected_total, v
    assert v.rows - v.acknowledged == v.failed_but_committed, v
    # The client holds its connection: smart waits for it in vain, fast ends it.
    assert [s.split(":")[1].strip() for s in trial.old_steps] == [
        "stop -m smart",
        "stop -m fast",
    ], trial.old_steps
    assert "still running after" in trial.old_steps[0]
    assert "stopped in" in trial.old_steps[1]
    # A clean shutdown: the new node's server starts without crash recovery.
    assert trial.redo is None and not any("crash recovery" in s for s in trial.steps)
