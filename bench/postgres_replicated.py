"""Replicated PostgreSQL: faults under a write workload, per replication mode.

    sudo python bench/postgres_replicated.py                       # every fault and mode, 3 reps
    sudo python bench/postgres_replicated.py --reps 10 --faults power,switchover --modes sync
    sudo python bench/postgres_replicated.py --modes async --lag-cut 1   # loss made visible

Each repetition builds a fresh lab (`hotstandby.lab.pg_replicated`: the floating IP and the
postgres resource in replicated mode, fenced; alpha's copy made by initdb, beta's built by
the cluster), starts both agents, runs the client workload of `hotstandby.lab.pg_workload`
from the client namespace through the floating IP, and injects one fault after `--warmup`
acknowledged commits:

- power: the primary loses power; the replica is promoted; the old primary is powered on
  again and must rejoin as a replica (any data it had that the new primary lacks kept aside).
- freeze: every process of the primary (the agent and its servers) is stopped (SIGSTOP); the
  standby fences it and takes over; the node is resumed and rejoins.
- cut: PostgreSQL's TCP between the nodes is dropped (heartbeats pass): no takeover; commits
  stall (for about degrade_after, or, with "wait", until the heal after `--hold`), then the
  link is healed and the replica catches up.
- switchover: `--switchovers` switchovers back and forth; each old primary rejoins.

Modes: sync (synchronous, on_replica_lost = "degrade"), sync-wait (synchronous, "wait"; cut
and switchover only: after a takeover its commits wait for the lost node until it is back) and
async (synchronous = false; the replication link is cut `--lag-cut` seconds before a power
loss or freeze, so the replica lags and the verifier counts what was lost).

Prints a line per run, then per mode and fault p50 / max of the client's write outage, the
takeover time (fault until the new node reported itself active), the time until the blocked
client was freed (the new holder's reset), and the totals of acknowledged writes lost and of
writes reported failed that were committed after all. Exit status 1 when a synchronous mode
lost an acknowledged write or a run broke the accounts' invariant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field

from hotstandby.lab import skip_reason
from hotstandby.lab.pg_replicated import (
    ReplOptions,
    cut_trial,
    repl_cluster,
    switchover_trial,
    takeover_trial,
)
from hotstandby.lab.pg_replicated import skip_reason as pg_missing
from hotstandby.lab.pg_workload import Verdict

MODES = {
    "sync": ReplOptions(synchronous=True, on_replica_lost="degrade"),
    "sync-wait": ReplOptions(synchronous=True, on_replica_lost="wait"),
    "async": ReplOptions(synchronous=False),
}
FAULTS = ("power", "freeze", "cut", "switchover")


@dataclass
class Tally:
    """The figures of one mode and fault over its repetitions."""

    outages: list[float] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)
    freed: list[float] = field(default_factory=list)
    rejoins: list[float] = field(default_factory=list)
    lost: int = 0
    wrong: int = 0
    broken: int = 0
    diverged: int = 0
    stuck: int = 0
    runs: int = 0

    def add(self, v: Verdict) -> None:
        """Count one run's verdict."""
        self.runs += 1
        self.lost += v.lost
        self.wrong += v.failed_but_committed
        self.broken += v.total != v.expected_total


def spread(values: list[float]) -> str:
    """p50 / max of values, in seconds."""
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f}s, max {max(values):.2f}s"


def verdict_text(v: Verdict) -> str:
    """A run's verdict in a few words."""
    return (
        f"acknowledged {v.acknowledged}, lost {v.lost}, reported failed {v.reported_failed} of "
        f"which committed {v.failed_but_committed}, total {v.total}/{v.expected_total}"
    )


def once(mode: str, fault: str, rep: int, args: argparse.Namespace, tally: Tally) -> None:
    """One repetition of one fault in a fresh lab."""
    with repl_cluster(f"hpqb{rep}", MODES[mode]) as rc:
        if fault in ("power", "freeze"):
            lag = args.lag_cut if mode == "async" else 0.0
            t = takeover_trial(rc, fault=fault, warmup=args.warmup, after=args.after, lag_cut=lag)
            o = t.outage
            tally.outages.append(o.outage)
            tally.takeovers.append(t.takeover)
            if o.freed is not None:
                tally.freed.append(o.freed)
            back = ""
            if t.rejoin is not None:
                tally.rejoins.append(t.rejoin.took)
                tally.diverged += bool(t.rejoin.saved)
                back = f"; rejoined as a replica after {t.rejoin.took:.2f}s" + (
                    f", diverged data kept in {t.rejoin.saved[0]}" if t.rejoin.saved else ""
                )
            tally.add(t.verdict)
            tally.stuck += t.stuck
            freed = "never" if o.freed is None else f"{o.freed:.2f}s"
            if t.stuck:
                freed += " (STUCK: not freed by the takeover; its socket closed for it)"
            print(
                f"  {mode} {fault} {rep + 1}: outage {o.outage:.2f}s, takeover "
                f"{t.takeover:.2f}s, client freed after {freed}; {verdict_text(t.verdict)}"
                f"{back}",
                flush=True,
            )
        elif fault == "cut":
            c = cut_trial(rc, warmup=args.warmup, hold=args.hold)
            tally.outages.append(c.stall.outage)
            # Waiting, the replica stays promotable: what the heal ends is the commits' wait.
            tally.rejoins.append(c.resumed if c.degraded is None else c.caught_up)
            tally.add(c.verdict)
            went_on = "never" if c.degraded is None else f"{c.degraded:.2f}s"
            print(
                f"  {mode} cut {rep + 1}: commits stalled {c.stall.outage:.2f}s, went on "
                f"without the replica after {went_on}, {c.acked_during} acknowledged during "
                f"the cut, promotable again {c.caught_up:.2f}s and commits on "
                f"{c.resumed:.2f}s after the heal, takeovers "
                f"{c.takeovers}, replica_ineligible alarms {len(c.ineligible)}; "
                f"{verdict_text(c.verdict)}",
                flush=True,
            )
        else:
            s = switchover_trial(rc, count=args.switchovers, warmup=args.warmup)
            tally.add(s.verdict)
            for m in s.moves:
                tally.outages.append(m.outage.outage)
                tally.takeovers.append(m.took)
                tally.rejoins.append(m.rejoined)
                rewound = any("pg_rewind:" in h or "base backup" in h for h in m.how)
                tally.diverged += rewound
                print(
                    f"  {mode} switchover {rep + 1} {m.old}->{m.new}: outage "
                    f"{m.outage.outage:.2f}s, active after {m.took:.2f}s, old primary a "
                    f"replica after {m.rejoined:.2f}s{' (rewound)' if rewound else ''}",
                    flush=True,
                )
            print(f"  {mode} switchover {rep + 1}: {verdict_text(s.verdict)}", flush=True)


def main() -> int:
    """Run the repetitions and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="sync,async", help=f"of: {', '.join(MODES)}")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"of: {', '.join(FAULTS)}")
    parser.add_argument("--warmup", type=int, default=500, help="commits before the fault")
    parser.add_argument("--after", type=int, default=200, help="commits after the takeover")
    parser.add_argument("--switchovers", type=int, default=4, help="per switchover run")
    parser.add_argument(
        "--lag-cut", type=float, default=1.0, help="async: cut replication this long before"
    )
    parser.add_argument("--hold", type=float, default=10.0, help="sync-wait: the cut's length")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    faults = [f for f in args.faults.split(",") if f]
    bad = [m for m in modes if m not in MODES] + [f for f in faults if f not in FAULTS]
    if bad:
        parser.error(f"unknown mode or fault: {', '.join(bad)}")
    reason = skip_reason() or pg_missing()
    if reason is not None:
        print(f"postgres_replicated: {reason}", file=sys.stderr)
        return 2
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    for mode in modes:
        for fault in faults:
            if fault == "cut" and mode == "async":
                continue  # commits never wait for the replica: nothing to stall
            if fault in ("power", "freeze") and mode == "sync-wait":
                continue  # the new primary's commits wait for the dead one: until it is back
            for rep in range(args.reps):
                once(mode, fault, rep, args, tallies[(mode, fault)])
    failed = False
    print()
    for (mode, fault), t in tallies.items():
        what = "stall" if fault == "cut" else "write outage"
        print(f"{mode} / {fault} ({t.runs} runs):")
        print(f"  {what}: {spread(t.outages)}")
        if t.takeovers:
            label = "active after" if fault == "switchover" else "takeover"
            print(f"  {label}: {spread(t.takeovers)}")
        if t.freed:
            print(f"  blocked client freed: {spread(t.freed)}; clients stuck: {t.stuck}")
        if t.rejoins:
            label = (
                "caught up (wait: commits on) after the heal"
                if fault == "cut"
                else ("old primary a replica")
            )
            print(f"  {label}: {spread(t.rejoins)}")
        print(
            f"  writes lost: {t.lost}; reported failed but committed: {t.wrong}; runs with the "
            f"invariant broken: {t.broken}; diverged/rewound copies: {t.diverged}"
        )
        failed |= bool(t.broken) or (mode != "async" and t.lost > 0)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
