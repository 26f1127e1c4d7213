"""`hotstandby check` on a witness cluster: where the witness is, and a witness on a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotstandby.cli import main
from tests.config.config_samples import checkable, with_arbitration

CHECKABLE = checkable()


def witness_file(tmp_path: Path, address: str) -> Path:
    """The sample cluster with a witness at `address`."""
    table = f'[arbitration]\nmode = "witness"\nwitness = "{address}"\nwatchdog_timeout = "5s"\n'
    path = tmp_path / "cluster.toml"
    path.write_text(with_arbitration(table, CHECKABLE))
    return path


def check(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code = main(["check", str(path)])
    out = capsys.readouterr().out
    return code, " ".join(out.split())


def test_check_says_where_the_witness_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = check(capsys, witness_file(tmp_path, "203.0.113.5:7788"))
    assert code == 0
    assert "arbitration: witness at 203.0.113.5:7788" in out
    assert "no witness" not in out


@pytest.mark.parametrize("host", ["192.0.2.11", "198.51.100.2"])
def test_a_witness_on_a_node_is_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, host: str
) -> None:
    code, out = check(capsys, witness_file(tmp_path, f"{host}:7788"))
    assert code == 0
    node = "alpha" if host.endswith(".11") else "beta"
    assert f"the witness {host}:7788 is at an address of node {node}" in out
    assert "a witness on a node is no witness" in out
