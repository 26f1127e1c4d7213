"""The README's demo command: the example cluster through a power loss and the takeover."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hotstandby.cli import main
from hotstandby.cli.demo_cmd import example_path
from hotstandby.config import load, takeover_budget
from hotstandby.core.cluster import Timers
from hotstandby.lab import skip_reason

DEAD_TIME_DEFAULT = Timers().dead_time


def test_simulated_demo_shows_the_standby_taking_over_within_the_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--simulated"]) == 0
    out = capsys.readouterr().out
    first = re.search(r"(\w+) is active \(epoch (\d+)\)", out)
    assert first is not None
    old, new = first.group(1), "beta" if first.group(1) == "alpha" else "alpha"
    assert f"{old}    *** POWER LOSS ***" in out
    assert f"ALARM {new} takes over" in out
    outage = re.search(r"outage from power loss to the last resource up: ([\d.]+)s", out)
    assert outage is not None
    cluster = load(example_path())
    # No faster than detection allows, no slower than the worst case `check` prints.
    assert cluster.timers.dead_time < float(outage.group(1)) <= takeover_budget(cluster).total


def test_demo_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster]\nname = 1\n")
    assert main(["demo", "-c", str(bad)]) == 2
    assert "bad.toml" in capsys.readouterr().err


@pytest.mark.lab
def test_real_demo_moves_the_service_and_measures_the_client_outage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    cut = re.search(r"cutting the power of (\w+)", out)
    assert cut is not None
    new = "beta" if cut.group(1) == "alpha" else "alpha"
    assert f"{new} took over" in out
    assert f"{new} takes over" in out  # the takeover alarm in its event history
    gap = re.search(r"the client went (\d+) ms without an answer", out)
    assert gap is not None
    # At least the dead time (nothing can notice sooner), and a takeover, not a timeout.
    assert 1000 * DEAD_TIME_DEFAULT <= int(gap.group(1)) < 10_000
