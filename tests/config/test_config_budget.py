"""The worst-case takeover budget, recomputed here from each file's own values."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest

from hotstandby.config import load_text, takeover_budget

from .config_samples import BASE, with_arbitration

# Written here rather than imported, so the test does not trust the code it checks.
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DEFAULT_TIMERS = {"interval": "100ms", "dead_time": "500ms", "lease": "3s"}
_DEFAULT_TIMERS |= {"fence_timeout": "10s", "release": "1s"}


def seconds(text: str) -> float:
    """A duration string, converted without the package's parser."""
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * _UNIT[unit]
    raise AssertionError(text)


def expected_budget(text: str) -> dict[str, float]:
    """The parts of the worst case, from the raw TOML, by the formulas of DESIGN and timing."""
    doc: dict[str, Any] = tomllib.loads(text)
    raw = _DEFAULT_TIMERS | doc.get("timers", {})
    t = {k: seconds(v) for k, v in raw.items() if k != "max_drift" and k in _DEFAULT_TIMERS}
    rho = float(doc.get("timers", {}).get("max_drift", 0.001))
    arb = doc["arbitration"]
    watchdog = seconds(arb.get("watchdog_timeout", "0s"))
    release_bound = t["release"] + watchdog
    detection = t["dead_time"] * (1 + 2 * rho)
    parts = {"detection": detection}
    mode = arb["mode"]
    unconfirmed = 2 * rho * t["dead_time"] + 3 * t["interval"] + release_bound
    if mode == "none":
        parts["no arbitration"] = 0.0
    elif mode == "witness":
        parts["lease expiry"] = max(t["lease"] * (1 + 2 * rho) - detection, unconfirmed)
    elif mode == "disk":
        lease = t["lease"]
        parts["disk claim"] = max(lease * (1 + 2 * rho), lease / 4 + release_bound)
    else:
        parts["fence delay"] = seconds(arb.get("fence_delay", "2s"))
        parts["fencing"] = len(arb["fence"]) * t["fence_timeout"]
    for res in doc.get("resource", []):
        parts[f"start {res['name']}"] = seconds(res.get("start_timeout", "20s"))
    return parts


def _example(name: str) -> str:
    return (resources.files("hotstandby") / "examples" / name).read_text(encoding="utf-8")


FENCE = (
    '[arbitration]\nmode = "fence"\nfence_delay = "3s"\n'
    '[[arbitration.fence]]\nagent = "fence_ipmilan"\n[[arbitration.fence]]\nagent = "fence_pdu"\n'
)
CASES = {
    "base (disk)": BASE,
    "witness, long lease": with_arbitration(
        '[arbitration]\nmode = "witness"\nwitness = "q:9"\nwatchdog_timeout = "5s"\n'
    ),
    "fence": with_arbitration(FENCE),
    "none": with_arbitration('[arbitration]\nmode = "none"\n'),
    "classic example": _example("classic-database.toml"),
    "heartbeat-only example": _example("heartbeat-only.toml"),
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_budget_parts_and_total(text: str) -> None:
    expected = expected_budget(text)
    budget = takeover_budget(load_text(text))
    got = {part.label: part.seconds for part in budget.parts}
    assert list(got) == list(expected)  # the parts, in the order they happen
    assert got == pytest.approx(expected)
    assert budget.total == pytest.approx(sum(expected.values()))
    assert all(part.detail for part in budget.parts)


def test_witness_wait_falls_back_to_the_release_bound_when_detection_outlasts_the_lease() -> None:
    # The lease rule makes L > 2D in a valid file; the budget still holds for any Cluster:
    # with the lease gone before detection ends, what is left is the release bound.
    text = with_arbitration('[arbitration]\nmode = "witness"\nwitness = "q:9"\n')
    cluster = load_text(text)
    cluster = replace(cluster, timers=replace(cluster.timers, lease=0.5))
    budget = {p.label: p.seconds for p in takeover_budget(cluster).parts}
    t = cluster.timers
    bound = 2 * t.max_drift * t.dead_time + 3 * t.interval + t.release
    assert budget["lease expiry"] == pytest.approx(bound)
    assert budget["detection"] == pytest.approx(1.002)
