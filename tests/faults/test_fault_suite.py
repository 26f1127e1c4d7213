"""The fault suite's quick set: every case once, in the arbitration mode it is about, on the
whole classic group in the lab, and the heartbeat-only full cut, which must show an overlap.

The full set (every mode, more repetitions) is `bench/fault_suite.py`. A failure prints the
seed, the steps, the holders' timeline and both event histories: replay it with
`python bench/fault_suite.py --cases CASE --modes MODE --seed SEED --reps 1`.
"""

from __future__ import annotations

import os

import pytest

from hotstandby.lab import skip_reason
from hotstandby.lab.dns import named_missing
from hotstandby.lab.fault_suite import CASES, Result, run_case
from hotstandby.lab.throttle import throttle_missing

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PREFIX = "hfs"
#: One seed per CI run unless given: a failure names it.
SEED = int(os.environ.get("HOTSTANDBY_FAULT_SEED", "1"))

QUICK = [(name, case.quick_mode) for name, case in CASES.items()] + [("full_cut", "none")]


def report(result: Result) -> str:
    """Everything needed to understand and replay a failed repetition."""
    lines = [
        f"{result.case}/{result.mode} seed {result.seed}: error={result.error!r}",
        f"overlaps: {list(result.overlaps)}",
        f"one active at the end: {result.one_active}, takeover: {result.takeover}",
        *result.notes,
        *result.timeline,
    ]
    return "\n".join(lines)


@pytest.mark.parametrize(("case", "mode"), QUICK, ids=[f"{c}-{m}" for c, m in QUICK])
def test_fault_case(case: str, mode: str) -> None:
    reason = skip_reason() or named_missing()
    if case == "disk_slow":
        reason = reason or throttle_missing()
    if reason is not None:
        pytest.skip(reason)
    result = run_case(case, mode, SEED, prefix=PREFIX)
    print(f"\n{case}/{mode}: {result.seconds:.1f}s, takeover {result.takeover}")
    assert result.passed, report(result)
    if result.expected_overlap:
        # Heartbeat-only on a full cut: both nodes held the group; the checker saw it, and
        # `check` had warned of exactly that.
        assert result.overlaps, report(result)
        assert any("split brain" in w for w in result.arbitration_warnings), result
    else:
        assert result.overlaps == (), report(result)
