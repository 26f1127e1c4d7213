"""`hotstandby simulate FILE`: run the real core of every node against a simulated world."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from hotstandby.core.cluster import Cluster
from hotstandby.sim.budget import liveness_budget, takeover_budget
from hotstandby.sim.report import Summary, dumps, timeline
from hotstandby.sim.runner import RunOptions, SeedResult, run_seed


def register(sub: Any) -> None:
    """Add the subcommand to the parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="run the cluster through random faults or named scenarios, from seeds",
        description="Run the real decision engine of every node against a simulated world "
        "and check safety (S1) and liveness (L1, L2). Any failure prints the command that "
        "replays it. Exit status 1 on any violation.",
    )
    p.add_argument("file", help="the cluster's TOML file")
    p.add_argument("--seeds", type=int, default=100, help="how many seeds to run (default 100)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--seed", type=int, help="run this one seed only")
    p.add_argument(
        "--scenario", help="run a named scenario instead of random faults ('all': every one)"
    )
    p.add_argument("--list-scenarios", action="store_true", help="list the catalogue and exit")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timeline", action="store_true", help="with --seed: print what happened")
    p.add_argument(
        "--weaken-takeover-rule",
        action="store_true",
        help="TEST ONLY: take over without evidence, to show the checkers catch it",
    )
    p.add_argument("--safety-seconds", type=float, default=RunOptions.safety)
    p.add_argument("--settle-seconds", type=float, default=RunOptions.settle)
    p.add_argument("--fault-gap", type=float, default=RunOptions.fault_gap)
    p.add_argument("--jobs", type=int, default=1, help="worker processes (0: one per CPU)")
    p.set_defaults(func=run)


def _load(path: str) -> Cluster:
    from hotstandby.config import load  # noqa: PLC0415

    return load(path)


def _random_chunk(path: str, seeds: list[int], opts: RunOptions) -> list[SeedResult]:
    cluster = _load(path)
    return [run_seed(cluster, s, opts) for s in seeds]


def _scenario_chunk(
    path: str, names: list[str], seeds: list[int], weaken: bool
) -> list[SeedResult]:
    from hotstandby.sim.scenarios import catalogue, run_scenario  # noqa: PLC0415

    cluster = _load(path)
    cat = catalogue()
    return [run_scenario(cluster, cat[n], s, weaken=weaken) for n in names for s in seeds]


def run(args: argparse.Namespace) -> int:
    """Run the simulation the arguments ask for; 0 if clean, 1 on any violation."""
    from hotstandby.config import ConfigError  # noqa: PLC0415
    from hotstandby.sim.scenarios import catalogue  # noqa: PLC0415

    cat = catalogue()
    if args.list_scenarios:
        for name, sc in cat.items():
            print(f"{name:<30} {sc.summary}")
        return 0
    try:
        cluster = _load(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    opts = RunOptions(
        safety=args.safety_seconds,
        settle=args.settle_seconds,
        fault_gap=args.fault_gap,
        weaken=args.weaken_takeover_rule,
    )
    seeds = (
        [args.seed]
        if args.seed is not None
        else list(range(args.first_seed, args.first_seed + args.seeds))
    )
    names: list[str] = []
    if args.scenario:
        names = list(cat) if args.scenario == "all" else [args.scenario]
        unknown = [n for n in names if n not in cat]
        if unknown:
            print(f"no scenario called {unknown[0]!r}; try --list-scenarios", file=sys.stderr)
            return 2
    summary = Summary(file=args.file, opts=opts)
    summary.takeover_budget = takeover_budget(cluster)
    summary.liveness_budget = liveness_budget(cluster, 0.0, 0.0)
    jobs = args.jobs or os.cpu_count() or 1
    started = time.perf_counter()
    if args.timeline and len(seeds) == 1 and len(names) <= 1:
        result = _one_with_history(cluster, names, seeds[0], opts)
        summary.add(result)
        assert result.history is not None
        print(timeline(result.history))
    else:
        for r in _run_all(args.file, names, seeds, opts, jobs):
            summary.add(r)
    summary.wall_seconds = time.perf_counter() - started
    print(dumps(summary) if args.json else summary.text())
    return 1 if summary.violations else 0


def _one_with_history(
    cluster: Cluster, names: list[str], seed: int, opts: RunOptions
) -> SeedResult:
    if names:
        from hotstandby.sim.scenarios import catalogue, run_scenario  # noqa: PLC0415

        return run_scenario(
            cluster, catalogue()[names[0]], seed, weaken=opts.weaken, keep_history=True
        )
    return run_seed(cluster, seed, opts, keep_history=True)


def _run_all(
    path: str, names: list[str], seeds: list[int], opts: RunOptions, jobs: int
) -> list[SeedResult]:
    if jobs <= 1 or len(seeds) * max(1, len(names)) < 8:
        if names:
            return _scenario_chunk(path, names, seeds, opts.weaken)
        return _random_chunk(path, seeds, opts)
    # Interleaved chunks so that every worker gets a fair share of slow seeds.
    chunks = [seeds[i::jobs] for i in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        if names:
            futures = [
                pool.submit(_scenario_chunk, path, names, c, opts.weaken) for c in chunks if c
            ]
        else:
            futures = [pool.submit(_random_chunk, path, c, opts) for c in chunks if c]
        out = [r for f in futures for r in f.result()]
    out.sort(key=lambda r: (r.scenario or "", r.seed))
    return out
