"""Two real agents (fenced, as in tests/agentlab) managing a service and OCF agents.

1. A command-mode service whose process the test kills on the active node: each kill fails
   the monitor, the active node restarts it in place while the failures within the restart
   window stay within max_restarts, and the next one moves the group to the other node.
2. ocf:heartbeat:Dummy and ocf:heartbeat:IPaddr2 (an address of the lab's LAN) moved by
   `hotstandby switchover` and back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration

from .conftest import PREFIX
from .svc_lab import ECHO_CHECK

pytestmark = pytest.mark.lab

PORT = 7070
OCF_VIP = "192.0.2.78"
HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
POLICIES = '[policies]\nmax_restarts = 2\nrestart_window = "60s"\nfailure_expiry = "10m"\n'


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, a serial line and a shared disk."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def children(parent: int, needle: str) -> list[int]:
    """Pids of parent's children whose command line holds needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and needle in cmdline:
            found.append(int(entry.name))
    return found


def echo_pid(cluster: LabCluster, node: str) -> int | None:
    """The pid of the echo service node's agent runs, if exactly one."""
    pids = children(cluster.agents[node].pid, f"serve {PORT}")
    return pids[0] if len(pids) == 1 else None


def echo_answers(lab: Lab, address: str) -> bool:
    """Whether the echo service answers the client at address."""
    done = lab.run(CLIENT, [sys.executable, ECHO_CHECK, address, str(PORT)], check=False)
    return done.returncode == 0


def print_events(cluster: LabCluster, node: str, kinds: tuple[str, ...]) -> None:
    """Show node's events of these kinds (pytest -s)."""
    print(f"\n-- {node}'s events")
    for e in cluster.events(node):
        if e["kind"].startswith(kinds):
            print(f"  {e['kind']:24} {e['rule']:24} {e['message']}")


def test_a_killed_service_restarts_in_place_then_moves_the_group(lab: Lab) -> None:
    echo = f"""
[[resource]]
name = "echo"
kind = "service"
start_timeout = "10s"
stop_timeout = "5s"
monitor_timeout = "2s"
monitor_interval = "300ms"
[resource.params]
start = ["{sys.executable}", "-m", "hotstandby.lab.prober", "serve", "{PORT}"]
monitor = ["{sys.executable}", "{ECHO_CHECK}", "127.0.0.1", "{PORT}"]
not_running_code = 7
stop_grace = "2s"
log = "{lab.workdir}/echo-{{node}}.log"
"""
    cluster = LabCluster(
        lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=echo + POLICIES)
    )
    cluster.write()
    active = cluster.up()
    assert echo_answers(lab, FLOATING_IPV4)
    killed: list[int] = []
    for round in (1, 2):
        pid = echo_pid(cluster, active)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

        def restarted() -> bool:
            new = echo_pid(cluster, active)
            return new is not None and new not in killed and cluster.active() == active

        cluster.wait_for(f"restart in place number {round}", restarted, 15)
        assert echo_answers(lab, FLOATING_IPV4)
        kinds = [(e["kind"], e["rule"]) for e in cluster.events(active)]
        assert kinds.count(("alarm.resource_failed", "resource.monitor_failed")) == round
        assert kinds.count(("resource", "restart.start")) == round
        assert kinds.count(("alarm.resource_recovered", "restart.done")) == round
    # The third failure within the window is one more than max_restarts: the group moves.
    pid = echo_pid(cluster, active)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    standby = other(active)
    assert cluster.wait_active(30, other_than=active) == standby
    cluster.wait_for("the echo service on the new active", lambda: echo_pid(cluster, standby), 10)
    assert echo_pid(cluster, active) is None
    assert echo_answers(lab, FLOATING_IPV4)
    history = cluster.events(active)
    moved = [e for e in history if (e["kind"], e["rule"]) == ("role", "group.move")]
    assert [e["message"] for e in moved] == ["active -> releasing"]
    assert moved[0]["detail"] == "echo: 3 failures within 60s"
    status = cluster.status(standby)
    assert status is not None and status["role"] == "active"
    print_events(cluster, active, ("alarm.resource", "resource", "role"))
    print_events(cluster, standby, ("resource", "role"))


@pytest.mark.skipif(
    not (HEARTBEAT / "IPaddr2").exists(), reason="Debian's resource-agents is not installed"
)
def test_ocf_dummy_and_ipaddr2_follow_a_switchover_and_back(lab: Lab) -> None:
    lan = lab.node("alpha").lan_if
    assert lab.node("beta").lan_if == lan
    extra = f"""
[[resource]]
name = "dummy"
kind = "ocf"
start_timeout = "10s"
stop_timeout = "10s"
monitor_interval = "1s"
[resource.params]
agent = "ocf:heartbeat:Dummy"
rsctmp = "{lab.workdir}/rsc-{{node}}"

[[resource]]
name = "ocfvip"
kind = "ocf"
start_timeout = "10s"
stop_timeout = "10s"
monitor_interval = "1s"
[resource.params]
agent = "heartbeat:IPaddr2"
rsctmp = "{lab.workdir}/rsc-{{node}}"
params = {{ ip = "{OCF_VIP}", cidr_netmask = "24", nic = "{lan}" }}
"""
    cluster = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=extra))
    cluster.write()
    checked = subprocess.run(
        [sys.executable, "-m", "hotstandby", "check", str(cluster.config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    first = cluster.up()

    def holds(node: str) -> bool:
        state = lab.workdir / f"rsc-{node}" / "Dummy-dummy.state"
        gone = lab.workdir / f"rsc-{other(node)}" / "Dummy-dummy.state"
        return lab.holders(OCF_VIP) == [node] and state.exists() and not gone.exists()

    assert holds(first)
    assert lab.ping(CLIENT, OCF_VIP)
    for source, target in ((first, other(first)), (other(first), first)):
        done = subprocess.run(
            [sys.executable, "-m", "hotstandby", "switchover", "--socket", cluster.socket(source)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert cluster.wait_active(30, other_than=source) == target
        cluster.wait_for(f"Dummy and IPaddr2 on {target} only", partial(holds, target), 10)
        assert lab.ping(CLIENT, OCF_VIP)
    print_events(cluster, first, ("resource", "role"))


PICKY = """
import os, sys, time
from pathlib import Path
if os.environ["HOTSTANDBY_NODE"] == "beta" and Path(sys.argv[1]).exists():
    print("cannot start on beta: its data directory is missing", flush=True)
    sys.exit(1)
time.sleep(3600)
"""


def control(cluster: LabCluster, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run a hotstandby control command against node's agent."""
    return subprocess.run(
        [sys.executable, "-m", "hotstandby", *argv, "--socket", cluster.socket(node)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_failed_start_on_the_standby_leaves_the_group_where_it_runs(lab: Lab) -> None:
    picky = lab.workdir / "picky.py"
    picky.write_text(PICKY)
    broken = lab.workdir / "beta-is-broken"
    extra = f"""
[[resource]]
name = "picky"
kind = "service"
start_timeout = "10s"
stop_timeout = "5s"
monitor_interval = "500ms"
[resource.params]
start = ["{sys.executable}", "{picky}", "{broken}"]
settle = "300ms"
stop_grace = "1s"
log = "{lab.workdir}/picky-{{node}}.log"
"""
    cluster = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=extra))
    cluster.write()
    active = cluster.up()
    assert active == "alpha"  # the higher priority
    broken.write_text("")
    done = control(cluster, "alpha", "switchover")
    assert done.returncode == 0, done.stderr
    # beta's start fails: it gives the group back, and alpha, which can run it, takes it.
    cluster.wait_for(
        "beta to report its failed start",
        lambda: any(
            e["kind"] == "alarm.resource_failed" and e["message"] == "picky failed to start on beta"
            for e in cluster.events("beta")
        ),
        30,
    )
    cluster.wait_for(
        "the group back on alpha, beta standing by",
        lambda: cluster.active() == "alpha" and cluster.roles()["beta"] == "standby",
        30,
    )
    failed = next(e for e in cluster.events("beta") if e["kind"] == "alarm.resource_failed")
    assert failed["rule"] == "resource.start_failed"
    start = next(
        e
        for e in cluster.events("beta")
        if e["kind"] == "resource" and "picky start" in e["message"]
    )
    assert start["message"].endswith(
        "exited at once: exit status 1: cannot start on beta: its data directory is missing"
    )
    # beta failed the group: it is not chosen again until its failure expires or is cleared.
    refused = control(cluster, "alpha", "switchover")
    assert refused.returncode != 0
    assert "no other node is reachable and ready to take over" in refused.stdout + refused.stderr
    broken.unlink()
    cleared = control(cluster, "beta", "cleanup", "picky")
    assert cleared.returncode == 0, cleared.stderr

    def switched() -> bool:
        return control(cluster, "alpha", "switchover").returncode == 0

    # The cleared failure reaches alpha in beta's next heartbeats.
    cluster.wait_for("alpha to accept a switchover to beta again", switched, 10)
    assert cluster.wait_active(30, other_than="alpha") == "beta"
    print_events(cluster, "beta", ("alarm.resource", "resource", "role"))
