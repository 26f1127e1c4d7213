"""Every catalogue scenario, with the real engine on the shipped example, meets its expectations."""

from __future__ import annotations

import pytest

from hotstandby.core.cluster import Cluster
from hotstandby.sim.budget import takeover_budget
from hotstandby.sim.scenarios import ScenarioError, catalogue, parse, run_scenario

from .sim_fakes import make_cluster

CATALOGUE = catalogue()
# Engine bugs this simulator found; each xfail goes once the lead's fix lands.
KNOWN_ENGINE_BUGS: dict[str, str] = {}


def test_the_catalogue_has_every_named_scenario() -> None:
    assert set(CATALOGUE) >= {
        "power-loss-active",
        "agent-crash",
        "one-link-cut",
        "all-links-cut-arbiter",
        "all-links-cut-no-arbiter",
        "asymmetric-cut",
        "frozen-active",
        "boot-together",
        "boot-alone",
        "flapping-link",
        "fence-fails",
        "start-fails-on-standby",
        "switchover-during-link-loss",
        "clock-drift-limit",
        "power-loss-during-switchover",
        "power-loss-of-target-during-switchover",
        "witness-down-during-cut",
        "disk-slow-during-cut",
        "disk-gone-during-cut",
        "older-epoch-returns",
    }
    assert all(sc.summary for sc in CATALOGUE.values())


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_ENGINE_BUGS[n], strict=True))
        if n in KNOWN_ENGINE_BUGS
        else n
        for n in sorted(CATALOGUE)
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_scenario_meets_its_expectations(example: Cluster, name: str, seed: int) -> None:
    result = run_scenario(example, CATALOGUE[name], seed)
    assert result.violations == []


def test_power_loss_takeover_is_measured_within_the_budget(example: Cluster) -> None:
    result = run_scenario(example, CATALOGUE["power-loss-active"], 3)
    assert result.takeover_times and max(result.takeover_times) <= takeover_budget(example)


@pytest.mark.parametrize("name", ["agent-crash", "all-links-cut-arbiter", "asymmetric-cut"])
def test_a_weakened_takeover_rule_is_caught(example: Cluster, name: str) -> None:
    result = run_scenario(example, CATALOGUE[name], 0, weaken=True)
    assert "S1" in {v.checker for v in result.violations}


def test_one_link_cut_forbids_a_takeover_even_on_a_small_cluster() -> None:
    result = run_scenario(make_cluster(), CATALOGUE["one-link-cut"], 5)
    assert result.violations == []


def test_a_scenario_file_must_say_what_it_expects() -> None:
    with pytest.raises(ScenarioError):
        parse("bad", 'summary = "x"\ntakeover = "maybe"\n')
    with pytest.raises(ScenarioError):
        parse("bad", 'takeover = "any"\n')
    sc = parse("ok", 'summary = "x"\n[[step]]\nat = "1s"\nfault = "agent_crash"\n')
    assert sc.steps[0].at == 1.0
