"""`hotstandby check FILE [--json]`: exit status, budget, warnings, errors."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from hotstandby.cli import main
from hotstandby.config import load, takeover_budget

from .config_samples import BASE, edit, line_with

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "src" / "hotstandby" / "examples"
CLASSIC = EXAMPLES / "classic-database.toml"
HEARTBEAT_ONLY = EXAMPLES / "heartbeat-only.toml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _flat(text: str) -> str:
    """Text with its line wrapping undone."""
    return " ".join(text.split())


def test_classic_example_passes_and_prints_its_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(CLASSIC))
    assert (code, err) == (0, "")
    budget = takeover_budget(load(CLASSIC))
    for part in budget.parts:
        assert f"{part.seconds:10.3f}s  {part.label}" in out
    assert f"{budget.total:10.3f}s  total" in out
    assert "No warnings." in out
    assert load(CLASSIC).digest in out


def test_classic_example_is_the_cluster_asked_for() -> None:
    cluster = load(CLASSIC)
    assert cluster.node_names == ("alpha", "beta")
    assert [link.kind.value for link in cluster.links] == ["udp", "serial", "disk"]
    assert cluster.links[1].baud == 9600
    assert [r.kind.value for r in cluster.resources] == ["ip", "volume", "alias", "postgres"]
    assert cluster.arbitration.mode.value == "disk"
    assert cluster.arbitration.watchdog_timeout > 0
    assert cluster.arbitration.watchdog_device


def test_examples_use_documentation_addresses_only() -> None:
    allowed = [
        ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")
    ]
    for path in (CLASSIC, HEARTBEAT_ONLY):
        text = path.read_text()
        found = re.findall(r'"([0-9a-f:.]+:[0-9a-f:.]*|\d+\.\d+\.\d+\.\d+)(?:/\d+)?"', text)
        assert found
        for address in found:
            ip = ipaddress.ip_address(address)
            assert any(ip in net for net in allowed), (path.name, address)


def test_symlink_points_at_the_packaged_example() -> None:
    link = REPO / "examples" / "classic-database.toml"
    assert link.is_symlink()
    assert link.resolve() == CLASSIC.resolve()


def test_heartbeat_only_passes_with_a_loud_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(HEARTBEAT_ONLY))
    assert (code, err) == (0, "")
    line = line_with(HEARTBEAT_ONLY.read_text(), 'mode = "none"  ')
    assert f"WARNING: {HEARTBEAT_ONLY}:{line}: arbitration.mode:" in out
    assert "a cut between the nodes makes both active" in _flat(out)
    assert "1 WARNING:" in out


def test_several_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = edit(BASE, 'watchdog_timeout = "5s"\n', "")
    text = edit(text, 'lease = "20s"', 'lease = "10s"')
    text = text[: text.index('[[link]]\nname = "null-modem"')] + text[text.index("[[resource]]") :]
    path = tmp_path / "risky.toml"
    path.write_text(text)
    code, out, _ = _run(capsys, str(path))
    assert code == 0
    assert "2 WARNINGS:" in out
    assert f"WARNING: {path}:{line_with(text, '[[link]]')}: link:" in out


def test_bad_file_exits_2_with_the_located_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = edit(BASE, 'dead_time = "1s"', "dead_time = 1")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = _run(capsys, str(path))
    assert (code, out) == (2, "")
    expected = (
        f"{path}:{line_with(text, 'dead_time = 1')}: timers.dead_time: expected a duration "
        'with a unit ("200ms", "1.5s", "2m", "1h"), found the number 1 without a unit '
        '(write "1s")\n'
    )
    assert err == expected


def test_every_rule_violation_is_printed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = edit(BASE, 'name = "beta"', 'name = "alpha"')
    text = edit(text, 'initial_dead = "30s"', 'initial_dead = "1ms"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, _, err = _run(capsys, str(path))
    assert code == 2
    lines = err.splitlines()
    first = line_with(text, 'name = "alpha"', 2)
    assert lines[0].startswith(f"{path}:{first}: node[1].name:")
    assert any(": timers.initial_dead: expected at least dead_time" in ln for ln in lines)


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(capsys, str(tmp_path / "nope.toml"))
    assert (code, out) == (2, "")
    assert "expected a readable file, found No such file or directory" in err


def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(HEARTBEAT_ONLY), "--json")
    assert code == 0
    report = json.loads(out)
    cluster = load(HEARTBEAT_ONLY)
    budget = takeover_budget(cluster)
    assert report["ok"] is True
    assert report["cluster"]["digest"] == cluster.digest
    assert report["cluster"]["nodes"] == ["alpha", "beta"]
    assert report["budget"]["total_seconds"] == pytest.approx(budget.total)
    assert [p["label"] for p in report["budget"]["parts"]] == [p.label for p in budget.parts]
    (warning,) = report["warnings"]
    assert warning["key"] == "arbitration.mode"
    assert warning["line"] == line_with(HEARTBEAT_ONLY.read_text(), 'mode = "none"  ')


def test_json_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit(BASE, 'kind = "ip"', 'kind = "vip"'))
    code, out, err = _run(capsys, str(path), "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    (problem,) = report["errors"]
    assert problem["key"] == "resource[0].kind"
    assert problem["found"] == '"vip"'
    assert err.strip() == problem["message"]
