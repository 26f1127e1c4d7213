"""How long a standby takes to take over through a real witness, after the active's power loss.

    sudo python bench/witness_takeover.py            # 5 repetitions, a 3 s lease
    sudo python bench/witness_takeover.py --reps 10

Each repetition builds a fresh lab (`hotstandby.lab.witness`: the witness in the client
namespace, heartbeats over the private link and the serial line), starts the witness and
two agents, waits until the active node holds the lease, cuts its power (freeze, cut,
kill), and times until the other node is active with its floating IP up. Prints each time
and the p50 / max, next to the earliest a grant could come: the active's last renewal
reached the witness at most a renew period (lease/4) before the cut and runs a span.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from hotstandby.lab import Lab, skip_reason
from hotstandby.lab.witness import LEASE, WitnessLab


def once(rep: int) -> float:
    """One power loss; seconds until the other node is active."""
    with Lab(f"hwib{rep}", nodes=("alpha", "beta")) as lab:
        wlab = WitnessLab(lab)
        active = wlab.up()
        t0 = time.monotonic()
        lab.power_loss(active)
        wlab.cluster.wait_active(30, other_than=active)
        return time.monotonic() - t0


def main() -> int:
    """Run the repetitions and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    reason = skip_reason()
    if reason is not None:
        print(f"witness_takeover: {reason}", file=sys.stderr)
        return 2
    times = []
    for rep in range(args.reps):
        took = once(rep)
        times.append(took)
        print(f"  power loss {rep + 1}: other node active after {took:.3f}s", flush=True)
    span = LEASE * 1.002
    print(
        f"lease {LEASE:g}s (witness span {span:.3f}s, renewed every {LEASE / 4:g}s): "
        f"p50 {statistics.median(times):.3f}s, max {max(times):.3f}s over {len(times)} runs; "
        f"no grant is possible before {span - LEASE / 4:.3f}s (the last renewal's span)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
