"""The lab fence agent's protocol side, without a lab: metadata, usage errors."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from hotstandby.lab.fence_agent import parse, write_wrapper


def agent(stdin: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the lab fence agent once with no lab in its environment."""
    env = {k: v for k, v in os.environ.items() if k != "HOTSTANDBY_LAB"}
    return subprocess.run(
        [sys.executable, "-m", "hotstandby.lab.fence_agent", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30.0,
        env=env,
        check=False,
    )


def test_metadata_is_fence_agents_xml() -> None:
    done = agent("action=metadata\n")
    assert done.returncode == 0
    root = ET.fromstring(done.stdout)
    assert root.tag == "resource-agent"
    assert root.get("name") == "fence_hotstandby_lab"
    params = {p.get("name"): p.get("required") for p in root.iter("parameter")}
    assert params == {"action": "1", "plug": "1", "lab": "0"}
    actions = {a.get("name") for a in root.iter("action")}
    assert {"off", "on", "reboot", "status", "monitor", "list", "metadata"} <= actions


def test_failures_exit_1_never_2() -> None:
    # For status, 2 means "off": an error must never be mistaken for a confirmed fence.
    for stdin in ("action=status\nplug=a\n", "action=status\nlab=nosuch-0000\nplug=a\n"):
        done = agent(stdin)
        assert done.returncode == 1
        assert "Failed:" in done.stderr
    assert agent("action=explode\n").returncode == 1
    assert agent("", "-o", "off").returncode == 1


def test_parse_reads_lines_like_fencing_py() -> None:
    options, warnings = parse(
        ["# comment\n", "\n", "action=off\n", 'port="a"\n', "nodename=b\n", "colour=red\n", "x"]
    )
    assert options == {"action": "off", "plug": "a"}
    assert warnings == ["ignoring unknown option 'colour'", "ignoring malformed line 'x'"]


def test_wrapper_runs_the_agent(tmp_path: Path) -> None:
    wrapper = write_wrapper(tmp_path)
    done = subprocess.run(
        [str(wrapper)],
        input="action=metadata\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "fence_hotstandby_lab" in done.stdout
