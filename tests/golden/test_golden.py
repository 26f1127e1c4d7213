"""Every golden scenario's output equals its reviewed .expected file."""

from __future__ import annotations

from pathlib import Path

import pytest

from .scenario import run_scenario

HERE = Path(__file__).parent / "scenarios"
SCENARIOS = sorted(HERE.glob("*.txt"))

# Scenarios whose .expected was written by hand with the correct behaviour, because the
# engine's output is wrong: they fail until the bug is fixed, and --update-golden
# leaves them alone.
KNOWN_BUGS: dict[str, str] = {}


def test_there_are_scenarios() -> None:
    assert len(SCENARIOS) >= 8


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden(path: Path, update_golden: bool, request: pytest.FixtureRequest) -> None:
    if path.stem in KNOWN_BUGS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.stem]))
    got = run_scenario(path)
    expected = path.with_suffix(".expected")
    if update_golden and path.stem not in KNOWN_BUGS:
        expected.write_text(got)
        return
    assert expected.exists(), f"no {expected.name}: run pytest tests/golden --update-golden"
    assert got == expected.read_text()
