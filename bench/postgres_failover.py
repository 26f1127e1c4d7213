"""PostgreSQL on the shared disk: a power loss of the active node under a write workload.

    sudo python bench/postgres_failover.py              # 5 repetitions
    sudo python bench/postgres_failover.py --reps 10 --warmup 2000
    sudo python bench/postgres_failover.py --filler 400000   # ~60 MB of WAL to replay
    sudo python bench/postgres_failover.py --switchover      # a clean move instead

Each repetition builds a fresh lab (`hotstandby.lab.pg_failover`: the floating IP, the
shared volume holding the data directory, the postgres resource; fenced), starts both
agents, runs the client workload of `hotstandby.lab.pg_workload` from the client namespace
through the floating IP (each transaction a unique id and a transfer between accounts),
cuts the active node's power after `--warmup` acknowledged commits, and goes on until
`--after` commits are acknowledged by the new primary. Prints per repetition and then p50 /
max of: the client's write outage (the longest time without an acknowledged commit), the
time until the client's connection to the dead primary failed (freed by the new holder's
reset), the takeover (until the new node reported itself active), the crash recovery's redo
time and the server's time until ready; and the totals of acknowledged writes lost (must be
0) and of writes the client saw fail that were committed after all.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from hotstandby.lab import skip_reason
from hotstandby.lab.pg_failover import Trial, pg_cluster, power_loss_trial
from hotstandby.lab.pg_failover import skip_reason as pg_missing


def once(rep: int, warmup: int, after: int, filler: int, switchover: bool) -> Trial:
    """One power loss (or switchover) in a fresh lab."""
    with pg_cluster(f"hpgb{rep}") as pg:
        return power_loss_trial(
            pg, warmup=warmup, after=after, filler=filler, switchover=switchover
        )


def secs(value: float | None) -> str:
    """A time in seconds, or "none"."""
    return "none" if value is None else f"{value:.2f}s"


def spread(values: list[float]) -> str:
    """p50 / max of values, in seconds."""
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f}s, max {max(values):.2f}s"


def main() -> int:
    """Run the repetitions and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1000, help="commits before the fault")
    parser.add_argument("--after", type=int, default=200, help="commits after the takeover")
    parser.add_argument(
        "--filler", type=int, default=0, help="rows (~100 bytes) written first: WAL to replay"
    )
    parser.add_argument(
        "--switchover", action="store_true", help="a switchover instead of the power loss"
    )
    args = parser.parse_args()
    reason = skip_reason() or pg_missing()
    if reason is not None:
        print(f"postgres_failover: {reason}", file=sys.stderr)
        return 2
    trials = []
    for rep in range(args.reps):
        t = once(rep, args.warmup, args.after, args.filler, args.switchover)
        trials.append(t)
        v, o = t.verdict, t.outage
        print(
            f"  run {rep + 1}: outage {o.outage:.2f}s, client freed after "
            f"{o.freed if o.freed is None else round(o.freed, 2)}s, takeover {t.takeover:.2f}s, "
            f"redo {secs(t.redo)}, server ready after {secs(t.ready)}; "
            f"acknowledged {v.acknowledged}, "
            f"lost {v.lost}, reported failed {v.reported_failed} of which committed "
            f"{v.failed_but_committed}, total {v.total}/{v.expected_total}",
            flush=True,
        )
    print(f"write outage:        {spread([t.outage.outage for t in trials])}")
    freed = [t.outage.freed for t in trials if t.outage.freed is not None]
    print(f"blocked client freed: {spread(freed)}")
    print(f"takeover:            {spread([t.takeover for t in trials])}")
    print(f"crash recovery redo: {spread([t.redo for t in trials if t.redo is not None])}")
    print(f"server ready after:  {spread([t.ready for t in trials if t.ready is not None])}")
    lost = sum(t.verdict.lost for t in trials)
    wrong = sum(t.verdict.failed_but_committed for t in trials)
    broken = sum(t.verdict.total != t.verdict.expected_total for t in trials)
    print(
        f"writes lost: {lost}; reported failed but committed: {wrong}; "
        f"runs with the invariant broken: {broken} (over {len(trials)} runs)"
    )
    return 1 if lost or broken else 0


if __name__ == "__main__":
    sys.exit(main())
