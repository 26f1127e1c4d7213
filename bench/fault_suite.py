"""The fault suite, full set: every case in every arbitration mode it applies to, repeated.

    sudo python bench/fault_suite.py                       # 3 repetitions of every cell
    sudo python bench/fault_suite.py --reps 2 --seed 7 --cases full_cut,freeze --modes fence
    sudo python bench/fault_suite.py --json > results.json

Each repetition builds a fresh lab with the whole classic group (hotstandby.lab.classic),
injects the case's fault with a seeded jitter, and the overlap checker (hotstandby.lab.overlap)
samples who holds the floating IP, the volume and the service every 15 ms. Prints per case
and mode: repetitions, overlaps found (must be 0; the heartbeat-only full cut must show one),
takeover time p50 / max, how many ended with exactly one active node, and the seeds of any
failure (replay one with `--cases NAME --modes MODE --seed SEED --reps 1`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from hotstandby.lab import skip_reason
from hotstandby.lab.classic import MODES
from hotstandby.lab.dns import named_missing
from hotstandby.lab.fault_suite import CASES, Result, run_case


def _cells(cases: list[str], modes: list[str]) -> list[tuple[str, str]]:
    return [(c, m) for c in cases for m in modes if m in CASES[c].modes]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def row(case: str, mode: str, results: list[Result]) -> dict[str, object]:
    """The figures of one cell."""
    times = [r.takeover for r in results if r.takeover is not None]
    return {
        "case": case,
        "mode": mode,
        "reps": len(results),
        "overlaps": sum(len(r.overlaps) for r in results),
        "expected_overlap": results[0].expected_overlap,
        "takeover_p50": statistics.median(times) if times else None,
        "takeover_max": max(times) if times else None,
        "one_active": sum(1 for r in results if r.one_active),
        "failed_seeds": [r.seed for r in results if not r.passed],
    }


HEAD = (
    f"{'case':24} {'mode':8} {'reps':>4} {'overlaps':>8} {'p50 ms':>7} {'max ms':>7} "
    f"{'one active':>10}  failed seeds"
)


def line(r: dict[str, object]) -> str:
    """One cell of the table."""
    overlaps = f"{r['overlaps']}{'*' if r['expected_overlap'] else ''}"
    p50, most = r["takeover_p50"], r["takeover_max"]
    assert p50 is None or isinstance(p50, float)
    assert most is None or isinstance(most, float)
    return (
        f"{r['case']!s:24} {r['mode']!s:8} {r['reps']!s:>4} {overlaps:>8} "
        f"{_ms(p50):>7} {_ms(most):>7} {r['one_active']!s:>4}/{r['reps']!s:<5}  "
        f"{r['failed_seeds'] or ''}"
    )


FOOT = "* an overlap is expected there (heartbeat-only on a full cut): it must be seen"


def main() -> int:
    """Run the cells and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1, help="the first repetition's seed")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--json", action="store_true", help="every repetition, as JSON")
    parser.add_argument("--history", action="store_true", help="keep the event histories")
    parser.add_argument("--table", metavar="JSON", help="print the table of an earlier --json")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print("\n".join([HEAD, *(line(r) for r in json.load(f)["cells"]), FOOT]))
        return 0
    reason = skip_reason() or named_missing()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    cases = [c for c in args.cases.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    for name in cases:
        if name not in CASES:
            parser.error(f"--cases: unknown case {name!r} (known: {', '.join(CASES)})")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes: unknown mode {mode!r} (known: {', '.join(MODES)})")
    rows = []
    every: list[Result] = []
    if not args.json:
        print(HEAD)
    for case, mode in _cells(cases, modes):
        results = []
        for rep in range(args.reps):
            result = run_case(case, mode, args.seed + rep, history=args.history)
            results.append(result)
            if args.json:
                state = "passed" if result.passed else f"FAILED {result.error[:200]}"
                print(f"{case}/{mode} seed {result.seed}: {state}", file=sys.stderr, flush=True)
            elif not result.passed:
                print(f"  FAILED {case}/{mode} seed {result.seed}: {result.error}", file=sys.stderr)
                for text in (*result.overlaps, *result.notes, *result.timeline):
                    print(f"    {text}", file=sys.stderr)
        every += results
        r = row(case, mode, results)
        rows.append(r)
        if not args.json:
            print(line(r), flush=True)
    if args.json:
        print(json.dumps({"cells": rows, "runs": [r.as_json() for r in every]}, indent=1))
    else:
        print(FOOT)
    return 0 if all(r.passed for r in every) else 1


if __name__ == "__main__":
    sys.exit(main())
