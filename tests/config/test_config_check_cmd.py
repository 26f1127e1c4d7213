"""`hotstandby check FILE [--json]`: exit status, budget, warnings, errors."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent import resources
from hotstandby.agent.resources import KINDS
from hotstandby.cli import main
from hotstandby.config import load, takeover_budget
from hotstandby.config.budget import evidence_time
from hotstandby.config.durations import format_duration
from hotstandby.core.cluster import ResourceKind

from .config_samples import BASE, checkable, edit, line_with

CHECKABLE = checkable()

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "src" / "hotstandby" / "examples"
CLASSIC = EXAMPLES / "classic-database.toml"
HEARTBEAT_ONLY = EXAMPLES / "heartbeat-only.toml"
REPLICATED = EXAMPLES / "replicated-database.toml"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _waiting(path: Path) -> list[str]:
    """Resources of the file whose kinds have no adapter yet: check warns about each."""
    return [r.name for r in load(path).resources if r.kind not in KINDS]


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
    # The only warnings are for kinds whose adapters are still to come (postgres, say).
    waiting = _waiting(CLASSIC)
    flat = _flat(out)
    # Each warning's own line, not the "1 WARNING:" heading above a single one.
    assert out.count("  WARNING: ") == len(waiting)
    for name in waiting:
        assert f"resource {name!r}: kind" in flat and "has no adapter in this version" in flat
    if not waiting:
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
    for path in (CLASSIC, HEARTBEAT_ONLY, REPLICATED):
        text = path.read_text()
        # An IPv4 address, with a port or a prefix length; or an IPv6 address with a prefix.
        found = re.findall(
            r'"(\d+\.\d+\.\d+\.\d+|[0-9a-f:.]+:[0-9a-f:.]*)(?::\d+)?(?:/\d+)?"', text
        )
        assert found
        for address in found:
            ip = ipaddress.ip_address(address)
            assert any(ip in net for net in allowed), (path.name, address)


def test_symlink_points_at_the_packaged_example() -> None:
    for example in (CLASSIC, REPLICATED):
        link = REPO / "examples" / example.name
        assert link.is_symlink()
        assert link.resolve() == example.resolve()


def test_replicated_example_passes_and_says_its_replication_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, str(REPLICATED))
    assert (code, err) == (0, "")
    assert "No warnings." in out
    evidence = evidence_time(load(REPLICATED))
    assert (
        "replication: pg, synchronous; a lost replica: commits go on without it after 30s "
        f"(a takeover has its evidence within {format_duration(evidence)})" in out
    )
    assert "/health/ on" in out


def test_heartbeat_only_passes_with_a_loud_warning(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(HEARTBEAT_ONLY))
    assert (code, err) == (0, "")
    line = line_with(HEARTBEAT_ONLY.read_text(), 'mode = "none"  ')
    assert f"WARNING: {HEARTBEAT_ONLY}:{line}: arbitration.mode:" in out
    assert "a cut between the nodes makes both active" in _flat(out)
    waiting = _waiting(HEARTBEAT_ONLY)
    assert f"{1 + len(waiting)} WARNING" in out


def test_several_warnings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = edit(CHECKABLE, 'watchdog_timeout = "5s"\n', "")
    text = edit(text, 'lease = "20s"', 'lease = "10s"')
    text = text[: text.index('[[link]]\nname = "null-modem"')] + text[text.index("[[resource]]") :]
    path = tmp_path / "risky.toml"
    path.write_text(text)
    code, out, _ = _run(capsys, str(path))
    assert code == 0
    assert f"{2 + len(_waiting(path))} WARNINGS:" in out
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
    warning, *rest = report["warnings"]
    assert [w["key"] for w in rest] == [
        f"resource[{i}]" for i, r in enumerate(cluster.resources) if r.kind not in KINDS
    ]
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


def test_bad_resource_parameter_is_an_error_at_its_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = edit(CHECKABLE, 'interface = "eth0"', 'interface = "eth0"\nannounce_count = -1')
    path = tmp_path / "bad-param.toml"
    path.write_text(text)
    code, out, err = _run(capsys, str(path))
    assert (code, out) == (2, "")
    line = line_with(text, "announce_count = -1")
    assert err.startswith(f"{path}:{line}: resource 'vip': key 'announce_count': expected an")


def test_host_risks_are_warnings_for_the_named_node(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def risky(resource: Any, node: str) -> list[tuple[str | None, str]]:
        seen.append(node)
        return [("interface", "the interface is down here")]

    kind = resources.KINDS[ResourceKind.IP]
    monkeypatch.setitem(resources.KINDS, ResourceKind.IP, replace(kind, host_risks=risky))
    path = tmp_path / "risky.toml"
    path.write_text(CHECKABLE)
    code, out, _ = _run(capsys, str(path), "--node", "beta")
    assert code == 0
    assert seen == ["beta"]
    line = line_with(CHECKABLE, 'interface = "eth0"')
    assert f"WARNING: {path}:{line}: resource[0].params.interface:" in out
    assert "on beta: resource 'vip': the interface is down here" in _flat(out)
