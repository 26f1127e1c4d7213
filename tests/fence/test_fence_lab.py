"""The lab's fence agent through the adapter, on a real lab: a node powered off and on."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent.fence import FenceAgents
from hotstandby.lab import Lab, skip_reason
from hotstandby.lab.fence_agent import write_wrapper

from .fakes import cluster

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (serial line and shared disk included); skipped without root."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab("tfence") as built:
        yield built


def lab_method(lab: Lab, tmp_path: Path) -> dict[str, Any]:
    """A fence method that powers off the lab node of the fenced node's name."""
    return {"agent": str(write_wrapper(tmp_path)), "plug": "{node}", "lab": lab.lab_id}


def reaches(lab: Lab, sender: str, receiver: str, address: str) -> int:
    """UDP datagrams out of 20 from sender that arrive at address in receiver."""
    return lab.udp_count(sender, receiver, address, count=20, interval=0.005)


def status(adapter: FenceAgents, node: str) -> int:
    """The exit code of the first method's status action for node."""
    return asyncio.run(adapter.run(adapter.methods[0], "status", node)).exit_code


def test_fence_powers_a_node_off_and_on(
    lab: Lab, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    victim = lab.spawn("a", SLEEPER)
    a = lab.node("a")
    assert reaches(lab, "b", "a", a.priv_ipv4 or "") > 0
    adapter = FenceAgents(cluster(lab_method(lab, tmp_path), nodes=("a", "b")), "b")
    assert status(adapter, "a") == 0

    began = time.monotonic()
    ok, detail = asyncio.run(adapter.fence("a"))
    took = time.monotonic() - began

    assert ok, detail
    assert detail == "method 1 (fence_hotstandby_lab): off confirmed, status reports off"
    record_property("lab_fence_seconds", round(took, 3))
    print(f"\nlab fence of a through the adapter (off + status): {took * 1000:.0f} ms")
    assert victim.wait(timeout=5.0) == -9
    assert reaches(lab, "b", "a", a.priv_ipv4 or "") == 0
    assert reaches(lab, "client", "a", a.lan_ipv4) == 0
    assert reaches(lab, "client", "b", lab.node("b").lan_ipv4) > 0  # b untouched
    assert status(adapter, "a") == 2

    assert asyncio.run(adapter.run(adapter.methods[0], "on", "a")).exit_code == 0
    assert reaches(lab, "b", "a", a.priv_ipv4 or "") > 0
    assert status(adapter, "a") == 0  # links back; nothing restarted, nothing to kill


def test_fence_from_the_other_nodes_namespace(lab: Lab, tmp_path: Path) -> None:
    victims = [lab.spawn("a", SLEEPER) for _ in range(3)]
    spec = {"method": lab_method(lab, tmp_path), "nodes": ["a", "b"], "self": "b", "target": "a"}
    argv = ["env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "tests.fence.lab_helper"]

    done = lab.run("b", [*argv, json.dumps(spec)], timeout=30.0)

    answer = json.loads(done.stdout)
    assert answer["ok"], answer["detail"]
    assert answer["netns"] != os.readlink("/proc/self/ns/net")  # really from elsewhere
    print(f"\nlab fence of a from b's namespace: {answer['seconds'] * 1000:.0f} ms")
    assert all(v.wait(timeout=5.0) == -9 for v in victims)
    assert reaches(lab, "b", "a", lab.node("a").priv_ipv4 or "") == 0


def agent(stdin: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the lab fence agent once, as any cluster manager would."""
    return subprocess.run(
        [sys.executable, "-m", "hotstandby.lab.fence_agent"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30.0,
        env=env,
        check=False,
    )


def test_power_loss_and_the_agent_agree(lab: Lab) -> None:
    lab.spawn("a", SLEEPER)
    assert agent(f"action=status\nplug=a\nlab={lab.lab_id}\n").returncode == 0
    lab.power_loss("a")
    found = agent(f"action=status\nport=a\nlab={lab.lab_id}\n")
    assert (found.returncode, found.stdout) == (2, "Status: OFF\n")
    lab.power_on("a")
    assert agent(f"action=status\nplug=a\nlab={lab.lab_id}\n").returncode == 0


def test_agent_list_reboot_and_errors(lab: Lab) -> None:
    env = {**os.environ, "HOTSTANDBY_LAB": lab.lab_id}
    listed = agent("action=list-status\n", env)
    assert listed.returncode == 0
    assert listed.stdout == f"a,{lab.node('a').ns},ON\nb,{lab.node('b').ns},ON\n"
    victim = lab.spawn("b", SLEEPER)
    rebooted = agent("action=reboot\nplug=b\n", env)
    assert rebooted.returncode == 0, rebooted.stderr
    assert victim.wait(timeout=5.0) == -9
    assert reaches(lab, "a", "b", lab.node("b").priv_ipv4 or "") > 0
    unknown = agent("action=off\nplug=zz\n", env)
    assert unknown.returncode == 1
    assert "has no node 'zz'" in unknown.stderr
