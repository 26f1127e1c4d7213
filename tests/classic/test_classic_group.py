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
from dataclasses import dataclass

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.dns import DnsServer, named_missing
from hotstandby.lab.volume import in_mount_namespace, mount_points, shared_volume

from ..alias.alias_lab import HOSTNAME, lookup
from ..service.svc_lab import ECHO_CHECK

pytestmark = [pytest.mark.lab, pytest.mark.slow]

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hcl"
PORT = 7171  # the service: the lab's TCP echo service
ORDER = ["vip", "data", "db-name", "echo"]


@dataclass
class Classic:
    """The lab, its DNS server and shared volume, and the cluster file (agents not started)."""

    lab: Lab
    dns: DnsServer
    volume: SharedDisk
    cluster: LabCluster

    @property
    def mountpoint(self) -> str:
        """Where the volume is mounted on the active node."""
        return str(self.lab.workdir / "srv")


def _resources(lab: Lab, dns: DnsServer, volume: SharedDisk) -> str:
    devices = "\n".join(f'{n} = "{volume.device(n)}"' for n in lab.node_names)
    return f"""
[[resource]]
name = "data"
kind = "volume"
start_timeout = "10s"
stop_timeout = "10s"
monitor_interval = "1s"
monitor_timeout = "2s"
[resource.params]
mountpoint = "{lab.workdir / "srv"}"
fstype = "ext4"
kill_grace = "1s"
# No periodic journal commit: a node that loses power writes nothing after its last fsync.
options = ["noatime", "commit=600"]
[resource.params.device]
{devices}

[[resource]]
name = "db-name"
kind = "alias"
start_timeout = "5s"
monitor_interval = "1s"
monitor_timeout = "2s"
[resource.params]
hostname = "{HOSTNAME}"
zone = "{dns.zone}"
server = "{dns.address}"
key_file = "{dns.key.path}"
ttl = 5
timeout = "1s"

[[resource]]
name = "echo"
kind = "service"
start_timeout = "10s"
stop_timeout = "5s"
monitor_timeout = "2s"
monitor_interval = "1s"
[resource.params]
start = ["{sys.executable}", "-m", "hotstandby.lab.prober", "serve", "{PORT}"]
monitor = ["{sys.executable}", "{ECHO_CHECK}", "127.0.0.1", "{PORT}"]
not_running_code = 7
stop_grace = "2s"
"""


@pytest.fixture
def classic() -> Iterator[Classic]:
    """Nodes alpha and beta, named on the client, the volume, and the cluster file."""
    reason = skip_reason() or named_missing()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as lab:
        dns = DnsServer(lab, CLIENT, lab.node(CLIENT).lan_ipv4)
        dns.start()
        volume = shared_volume(lab.workdir, lab.node_names)
        try:
            extra = _resources(lab, dns, volume)
            cluster = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=extra))
            text = cluster.render()
            for name in lab.node_names:
                # The hostname follows the node: each node's own LAN address.
                head = f'[[node]]\nname = "{name}"\n'
                text = text.replace(head, f'{head}address = "{lab.node(name).lan_ipv4}"\n')
            cluster.write(text)
            yield Classic(lab, dns, volume, cluster)
        finally:
            # Agents first: their mount namespaces, and the mounts in them, go with them.
            for proc in lab.processes():
                lab.kill(proc)
            volume.detach()


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def echo_answers(lab: Lab) -> bool:
    """Whether the service answers a client at the floating address."""
    done = lab.run(CLIENT, [sys.executable, ECHO_CHECK, FLOATING_IPV4, str(PORT)], check=False)
    return done.returncode == 0


def test_power_loss_moves_the_whole_group_in_order(classic: Classic) -> None:
    lab, cluster, volume = classic.lab, classic.cluster, classic.volume
    cluster.start_all()
    active = cluster.wait_active(30)
    standby = other(active)
    cluster.wait_for(
        "the standby to confirm the active node",
        lambda: (
            (s := cluster.status(standby)) is not None
            and s["role"] == "standby"
            and all(p["confirmed"] for p in s["peers"])
        ),
        15,
    )
    status = cluster.status(active)
    assert status is not None
    assert [r["name"] for r in status["resources"]] == ORDER
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
        assert starts == ORDER
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
