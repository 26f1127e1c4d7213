"""An idle agent's CPU: two versions of hotstandby side by side, in the same window.

The idle figure of bench/failover.py moves with the machine's state by more than most
changes to the agent do: on one machine, on one day, the bare asyncio floor measured
0.30% and later 0.69% of a core. So a change meant to save CPU is judged against the code
before it, both measured at once, each in a lab of its own with the default timers: the
base (a git revision, checked out in a temporary worktree; only its agents run from it,
the labs are this tree's) and the working tree. Each repetition prints both, with the
bare asyncio floor of the same window; the end, the medians and their difference.

Run as root: python bench/idle_compare.py --base HEAD~1 [--seconds 30] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import failover
from idle_floor import run_floor

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = {"base": "hsia", "work": "hsib"}  # one lab each, named apart from other runs


def measure(seconds: float) -> dict[str, float]:
    """One lab with the default profile: each role's CPU (% of one core) over `seconds`."""
    with failover.running(failover.HS_DEFAULT) as (_, system, _):
        active = system.up()
        roles = {active: "active", failover.other(active): "standby"}
        before = {n: {p: failover.cpu_ticks(p) for p in system.agent_pids(n)} for n in roles}
        began = time.monotonic()
        # A fixed measuring window: nothing to await, the point is to let time pass.
        time.sleep(seconds)
        took = time.monotonic() - began
        return {
            role: failover.cpu_percent(before[node], system.agent_pids(node), took)
            for node, role in roles.items()
        }


def _side(name: str, tree: str | None, seconds: float) -> int:
    failover.set_prefix(PREFIXES[name])
    if tree is not None:
        # Read by the agents this process starts, not by this process (its imports are done).
        os.environ["PYTHONPATH"] = tree
    print(json.dumps(measure(seconds)), flush=True)
    return 0


def _rep(base_src: str, seconds: float) -> tuple[dict[str, dict[str, float]], list[float]]:
    """Both sides and the floor in one window."""
    argv = [sys.executable, os.path.abspath(__file__), "--seconds", str(seconds), "--side"]
    procs = {
        "base": subprocess.Popen([*argv, "base", "--tree", base_src], stdout=subprocess.PIPE),
        "work": subprocess.Popen([*argv, "work"], stdout=subprocess.PIPE),
    }
    floor: list[tuple[float, int]] = []
    # The labs take a few seconds to come up: the floor's window starts when they are idle.
    starter = threading.Timer(8.0, lambda: floor.extend(run_floor(0.1, 3, seconds)))
    starter.start()
    # Both waited for before either is judged: a failed side must not leave the other's
    # lab running behind us.
    outs = {name: proc.communicate(timeout=seconds + 120)[0] for name, proc in procs.items()}
    starter.join()
    results = {}
    for name, proc in procs.items():
        if proc.returncode != 0:
            raise SystemExit(f"the {name} side failed (exit {proc.returncode})")
        results[name] = json.loads(outs[name].decode().strip().splitlines()[-1])
    return results, [cpu for cpu, _ in floor]


def main(argv: list[str] | None = None) -> int:
    """Compare the working tree's idle agents with the base revision's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--side", choices=sorted(PREFIXES), help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side is not None:
        return _side(args.side, args.tree, args.seconds)
    if os.geteuid() != 0:
        print("idle_compare needs root (network namespaces)", file=sys.stderr)
        return 2
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    work = tempfile.mkdtemp(prefix="hs-idle-base-")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", work, rev],
                   check=True)  # fmt: skip
    runs: dict[str, dict[str, list[float]]] = {s: {"active": [], "standby": []} for s in PREFIXES}
    try:
        print(f"idle CPU, % of one core, default timers, {args.seconds:g} s windows")
        print(f"{'rep':>3}  {'side':<14} {'active':>7} {'standby':>8}   floor a / b")
        for rep in range(1, args.reps + 1):
            results, floor = _rep(os.path.join(work, "src"), args.seconds)
            shown = " / ".join(f"{f:.2f}%" for f in floor)
            for side, label in (("base", f"base {rev}"), ("work", "working tree")):
                for role in ("active", "standby"):
                    runs[side][role].append(results[side][role])
                r = results[side]
                print(f"{rep:>3}  {label:<14} {r['active']:>6.2f}% {r['standby']:>7.2f}%   {shown}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", work],
                       check=False)  # fmt: skip
    print("median:")
    for role in ("active", "standby"):
        base = statistics.median(runs["base"][role])
        new = statistics.median(runs["work"][role])
        change = f"{new - base:+.2f} points ({100 * (new - base) / base:+.0f}%)"
        print(f"  {role:<8} base {base:.2f}%  working tree {new:.2f}%  difference {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
