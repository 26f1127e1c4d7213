"""Service and OCF adapters on real kernel objects: a lab node's namespace, its LAN, a client.

Each adapter runs in its own process inside the node's namespace (adapter_helper.py), as the
agent does. The figures each test prints (`pytest -s`) are the actions' times in this lab.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from hotstandby.lab import CLIENT, Lab, skip_reason

from .conftest import PREFIX
from .svc_helpers import wait_for
from .svc_lab import ECHO_CHECK, AdapterHost

pytestmark = pytest.mark.lab

PORT = 7070
#: The address IPaddr2 moves: in the lab's LAN (192.0.2.0/24), unused by the lab itself.
OCF_VIP = "192.0.2.77"
HEARTBEAT = "/usr/lib/ocf/resource.d/heartbeat"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Nodes a and b and a client on one bridged LAN (no serial line, no disk)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, serial=False, disk_size=0) as built:
        yield built


def echo_answers(lab: Lab, address: str) -> int:
    """The echo check's exit status, run from the client against address."""
    done = lab.run(CLIENT, [sys.executable, ECHO_CHECK, address, str(PORT)], check=False)
    return done.returncode


def test_a_command_mode_service_serves_the_lan(lab: Lab) -> None:
    node = lab.node("a")
    a = AdapterHost(
        lab,
        "a",
        "service",
        {
            "start": [sys.executable, "-m", "hotstandby.lab.prober", "serve", str(PORT)],
            "monitor": [sys.executable, ECHO_CHECK, "127.0.0.1", str(PORT)],
            "not_running_code": 7,
            "log": str(lab.workdir / "echo-{node}.log"),
        },
        "echo",
    )
    try:
        probe = a.run("probe")
        assert probe.outcome == "stopped", probe.detail
        assert echo_answers(lab, node.lan_ipv4) == 7
        for _ in range(3):
            started = a.run("start")
            assert started.outcome == "ok", started.detail
            assert echo_answers(lab, node.lan_ipv4) == 0
            for _ in range(5):
                assert a.run("monitor").outcome == "ok"
            stopped = a.run("stop")
            assert stopped.outcome == "ok", stopped.detail
            assert echo_answers(lab, node.lan_ipv4) == 7
            assert a.run("monitor").outcome == "stopped"
        print(f"\nservice (command mode, foreground, TCP echo): {a.summary()}")
    finally:
        a.close()


@pytest.mark.skipif(
    not __import__("os").path.exists(f"{HEARTBEAT}/IPaddr2"),
    reason="Debian's resource-agents is not installed",
)
def test_ocf_ipaddr2_and_dummy_on_a_node(lab: Lab) -> None:
    node = lab.node("a")
    rsctmp = str(lab.workdir / "rsc-{node}")
    vip = AdapterHost(
        lab,
        "a",
        "ocf",
        {
            "agent": "heartbeat:IPaddr2",
            "params": {"ip": OCF_VIP, "cidr_netmask": 24, "nic": node.lan_if},
            "rsctmp": rsctmp,
        },
        "ocfvip",
    )
    dummy = AdapterHost(lab, "a", "ocf", {"agent": "heartbeat:Dummy", "rsctmp": rsctmp}, "dummy")
    try:
        assert vip.run("probe").outcome == "stopped"
        assert lab.holders(OCF_VIP) == []
        for _ in range(3):
            started = vip.run("start")
            assert started.outcome == "ok", started.detail
            assert lab.holders(OCF_VIP) == ["a"]
            shown = lab.run("a", ["ip", "-br", "addr", "show", "dev", node.lan_if]).stdout
            assert f"{OCF_VIP}/24" in shown
            assert lab.ping(CLIENT, OCF_VIP)
            for _ in range(5):
                assert vip.run("monitor").outcome == "ok"
            assert vip.run("stop").outcome == "ok"
            assert lab.holders(OCF_VIP) == []
            assert vip.run("monitor").outcome == "stopped"

            state = lab.workdir / "rsc-a" / "Dummy-dummy.state"
            assert dummy.run("start").outcome == "ok"
            assert state.exists()
            for _ in range(5):
                assert dummy.run("monitor").outcome == "ok"
            assert dummy.run("stop").outcome == "ok"
            assert not state.exists()
        print(f"\nocf:heartbeat:IPaddr2: {vip.summary()}")
        print(f"ocf:heartbeat:Dummy: {dummy.summary()}")
        # IPaddr2 leaves send_arp running in the background after start; none outlives stop.
        wait_for(
            "send_arp to end",
            lambda: not (lab.workdir / "rsc-a" / f"send_arp-{OCF_VIP}").exists(),
            5,
        )
    finally:
        vip.close()
        dummy.close()
