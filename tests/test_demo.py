"""The README's demo command: the example cluster through a power loss and the takeover."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hotstandby.cli import main
from hotstandby.cli.demo_cmd import example_path
from hotstandby.config import load, takeover_budget


def test_demo_shows_the_standby_taking_over_within_the_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
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
