"""The classic group, whole, through a power loss: floating IP, shared volume, floating hostname
and a service, in that order, on two real agents (fenced).

Before the power loss a file is synced on the active node's volume; after it, the new active
node holds the address, has replayed the volume's journal and reads the file, a client's DNS
lookup returns the new node's address, and the service answers through the floating IP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab.classic import ORDER, SERVICE_PORT, ClassicGroup, classic_group, other
from hotstandby.lab.dns import named_missing
from hotstandby.lab.volume import in_mount_namespace, mount_points

from ..alias.alias_lab import lookup
from ..service.svc_lab import ECHO_CHECK

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hcl"


@pytest.fixture
def classic() -> Iterator[ClassicGroup]:
    """Nodes alpha and beta, named on the client, the volume, and the cluster file (fenced)."""
    reason = skip_reason() or named_missing()
    if reason is not None:
        pytest.skip(reason)
    # The LAN is a heartbeat link too, and the agents keep their default timers.
    with classic_group(PREFIX, "fence", links=("lan", "private", "serial"), timers={}) as group:
        yield group


def echo_answers(lab: Lab) -> bool:
    """Whether the service answers a client at the floating address."""
    done = lab.run(
        CLIENT, [sys.executable, ECHO_CHECK, FLOATING_IPV4, str(SERVICE_PORT)], check=False
    )
    return done.returncode == 0


def test_power_loss_moves_the_whole_group_in_order(classic: ClassicGroup) -> None:
    lab, cluster, volume = classic.lab, classic.cluster, classic.volume
    active = cluster.up()
    standby = other(active)
    status = cluster.status(active)
    assert status is not None
    assert [r["name"] for r in status["resources"]] == list(ORDER)
    assert lookup(lab, CLIENT, classic.dns) == [lab.node(active).lan_ipv4]
    assert echo_answers(lab)
    pid = cluster.agents[active].pid
    # Synced, as a database commits: what a client saw acknowledged must survive.
    with in_mount_namespace(pid, f"{classic.mountpoint}/committed.txt").open("w") as f:
        f.write("acknowledged before the power loss\n")
        f.flush()
        os.fsync(f.fileno())
    # Keep the dead node's mount namespace as the power loss leaves it (tests/volume says
    # why): the new active must find the file system in use, with a journal to replay.
    keeper = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "--", "sleep", "600"])
    try:
        lab.power_loss(active)
        assert cluster.wait_active(30, other_than=active) == standby
        # The powered-off node's namespace keeps its address, but it is cut off and dead.
        assert standby in lab.holders(FLOATING_IPV4)
        new_pid = cluster.agents[standby].pid
        assert mount_points(new_pid, volume.device(standby)) == [classic.mountpoint]
        text = in_mount_namespace(new_pid, f"{classic.mountpoint}/committed.txt").read_text()
        assert text == "acknowledged before the power loss\n"
        assert lookup(lab, CLIENT, classic.dns) == [lab.node(standby).lan_ipv4]
        assert echo_answers(lab)
        # Started in order, each once, after the fence was confirmed.
        history = cluster.events(standby)
        starts = [
            e["resource"]
            for e in history
            if e["kind"] == "resource" and e["rule"] == "takeover.start"
        ]
        assert starts == list(ORDER)
        kinds = [(e["kind"], e["rule"]) for e in history]
        fenced = kinds.index(("alarm.takeover", "takeover.fenced"))
        assert fenced < kinds.index(("resource", "takeover.start"))
        for e in history:
            if e["kind"] in ("resource", "resource.step", "takeover.timeline"):
                print(f"{e['kind']:18} {e['message']}")
    finally:
        for proc in lab.processes(standby):
            lab.kill(proc)
        keeper.kill()
        keeper.wait(10)
