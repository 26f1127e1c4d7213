"""Random seeds with the real engine, the weakened switch, and the command line."""

from __future__ import annotations

import json

import pytest

from hotstandby.cli import main
from hotstandby.core.cluster import Cluster
from hotstandby.sim.runner import RunOptions, run_seed

from .sim_fakes import EXAMPLE

SHORT = RunOptions(safety=30.0, settle=10.0)


def test_a_seed_replays_exactly(example: Cluster) -> None:
    a = run_seed(example, 11, SHORT)
    b = run_seed(example, 11, SHORT)
    assert (a.events, a.faults, a.violations) == (b.events, b.faults, b.violations)


@pytest.mark.parametrize("seed", range(8))
def test_random_faults_break_no_property(example: Cluster, seed: int) -> None:
    result = run_seed(example, seed, RunOptions())
    assert result.violations == []
    # Each seed must really have been attacked, not have run quietly.
    assert sum(result.faults.values()) >= 3


def test_the_weakened_rule_is_caught_within_a_few_seeds(example: Cluster) -> None:
    opts = RunOptions(weaken=True)
    found = [v.checker for s in range(10) for v in run_seed(example, s, opts).violations]
    assert "S1" in found


def test_simulate_prints_a_report(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", str(EXAMPLE), "--seed", "0", "--safety-seconds", "20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "seeds run:        1" in out and "faults injected:" in out


def test_simulate_json_lists_violations_with_replay(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["simulate", str(EXAMPLE), "--scenario", "agent-crash", "--seed", "0"]
    code = main([*args, "--weaken-takeover-rule", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    s1 = report["violations"]["S1"][0]
    assert s1["replay"].endswith("--seed 0 --scenario agent-crash --weaken-takeover-rule")


def test_simulate_timeline_and_scenario_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLE), "--list-scenarios"]) == 0
    assert "power-loss-active" in capsys.readouterr().out
    code = main(
        ["simulate", str(EXAMPLE), "--scenario", "one-link-cut", "--seed", "1", "--timeline"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "link_cut" in out and "holds vip" in out


def test_simulate_refuses_an_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(EXAMPLE), "--scenario", "nope"]) == 2
