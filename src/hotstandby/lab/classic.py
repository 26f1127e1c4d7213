"""The classic group on a lab: floating IP, shared volume, floating hostname and a service.

Builds, on a two-node lab (alpha, beta), a real DNS server in the client namespace, an ext4
shared volume (a loop device per node) and the cluster file of the whole group, with one
arbitration mode of:
- fence: the lab's fence agent powers the other node off (`fence_failing`: a fence agent
  that always fails, for the case where fencing cannot be confirmed);
- disk: "release or die" cells on a loop device of its own over the lab's shared-disk file
  (the heartbeat slots lie at offset 0, the arbitration area at 1 MiB of the same file);
- witness: `hotstandby witness` in the client namespace, on the LAN;
- none: heartbeat-only, asked for by name: a full cut makes both nodes active.

Heartbeats go over the private link and the serial line (and the disk slots in disk mode);
the LAN carries the clients, DNS and the witness, so "every heartbeat link cut" leaves both
nodes reachable by clients, as a real split brain would. The classic-group lab test keeps
the LAN among its heartbeat links (`links`).

Used by tests/classic, the fault suite (hotstandby.lab.fault_suite) and bench/fault_suite.py.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hotstandby.lab._cmd import LabError, run
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.disk import SharedDisk, attached_devices
from hotstandby.lab.dns import DnsServer
from hotstandby.lab.overlap import Watched
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.topology import CLIENT, FLOATING_IPV4, Lab
from hotstandby.lab.volume import shared_volume, volume_resource

MODES = ("fence", "disk", "witness", "none")
HOSTNAME = "db.example.org."
SERVICE_PORT = 7171  # the lab's TCP echo service
ORDER = ("vip", "data", "db-name", "echo")
WITNESS_PORT = 7788
#: A string of the service's command line, for finding it among an agent's processes.
SERVICE_MARKER = f"hotstandby.lab.prober serve {SERVICE_PORT}"

#: Small timers `check` accepts for every mode; the witness's lease is the shortest its lease
#: rule allows with them, the disk's the one tests/diskarb uses.
BASE_TIMERS = {"interval": "100ms", "warn_time": "300ms", "dead_time": "500ms"}
MODE_TIMERS: dict[str, dict[str, str]] = {
    "fence": {**BASE_TIMERS, "initial_dead": "2s"},
    "none": {**BASE_TIMERS, "initial_dead": "2s"},
    "disk": {**BASE_TIMERS, "initial_dead": "2s", "lease": "4s"},
    "witness": {**BASE_TIMERS, "initial_dead": "2s", "lease": "3s", "release": "500ms"},
}
#: Seconds a node is dead for after its last heartbeat, with these timers.
DEAD_TIME = 0.5


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def resources_toml(lab: Lab, dns: DnsServer, volume: SharedDisk) -> str:
    """The [[resource]] tables of the group after the floating IP: volume, alias, service."""
    python = sys.executable
    volume_toml = volume_resource(volume, lab.node_names, lab.workdir / "srv")
    return (
        volume_toml
        + f"""
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
start = ["{python}", "-m", "hotstandby.lab.prober", "serve", "{SERVICE_PORT}"]
monitor = ["{python}", "-m", "hotstandby.lab.prober", "check", "127.0.0.1", "{SERVICE_PORT}"]
not_running_code = 7
stop_grace = "2s"
"""
    )


@dataclass
class ClassicGroup:
    """The lab, its DNS server and shared volume, the cluster file, and the arbiter's parts."""

    lab: Lab
    dns: DnsServer
    volume: SharedDisk
    cluster: LabCluster
    mode: str
    arbitration_device: str | None = None
    witness_address: str | None = None
    witness: LabProcess | None = None

    @property
    def mountpoint(self) -> str:
        """Where the volume is mounted on the active node."""
        return str(self.lab.workdir / "srv")

    def agent_pids(self) -> dict[str, int]:
        """Each node's current agent pid (restarted agents replace the old ones)."""
        return {node: proc.pid for node, proc in self.cluster.agents.items()}

    def watched(self) -> Watched:
        """What the overlap checker looks for in this group."""
        return Watched(FLOATING_IPV4, self.volume.devices, SERVICE_MARKER)

    def start_witness(self) -> None:
        """Start `hotstandby witness` in the client namespace."""
        assert self.witness_address is not None
        argv = [
            sys.executable, "-m", "hotstandby", "witness",
            "-c", str(self.cluster.config), "--listen", self.witness_address,
            "--state-dir", str(self.cluster.dir / "witness-state"),
        ]  # fmt: skip
        with (self.cluster.dir / "witness.log").open("ab") as log:
            self.witness = self.lab.spawn(CLIENT, argv, stdout=log, stderr=log)

    def stop_witness(self) -> None:
        """Kill the witness (SIGKILL: a crash, not a clean stop)."""
        if self.witness is not None:
            self.lab.kill(self.witness)
            self.witness = None


def arbitration(lab: Lab, mode: str, *, fence_failing: bool = False) -> tuple[str, str | None]:
    """The [arbitration] body for mode, and the disk arbitration device it needs (if any)."""
    if mode == "fence":
        body = fence_arbitration(lab)
        if fence_failing:
            # A lab id no lab has: the fence agent fails every request, as a dead PDU would.
            body = body.replace(f'lab = "{lab.lab_id}"', 'lab = "no-such-lab"')
        return body, None
    if mode == "disk":
        assert lab.disk is not None
        device = run(["losetup", "--find", "--show", str(lab.disk.backing)]).stdout.strip()
        return f'mode = "disk"\ndevice = "{device}"', device
    if mode == "witness":
        address = f"{lab.node(CLIENT).lan_ipv4}:{WITNESS_PORT}"
        return f'mode = "witness"\nwitness = "{address}"', None
    if mode == "none":
        return 'mode = "none"', None
    raise ValueError(f"unknown arbitration mode {mode!r} (one of {', '.join(MODES)})")


def detach_volume(volume: SharedDisk, timeout: float = 10.0) -> None:
    """Detach the volume's loop devices once no dying agent's mount holds them.

    A killed agent's mount namespace is torn down after it exits; until then its mount
    keeps the device open, and `losetup --detach` only marks it to go when closed (then a
    second look finds it gone, which is no error). Only a device still attached is one.
    """
    try:
        volume.detach()
    except LabError:
        deadline = time.monotonic() + timeout
        while attached_devices(volume.backing):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def classic_group(
    prefix: str,
    mode: str = "fence",
    *,
    links: Sequence[str] | None = None,
    timers: dict[str, str] | None = None,
    fence_failing: bool = False,
    preferred: str = "alpha",
) -> Iterator[ClassicGroup]:
    """A two-node lab with the classic group's cluster file written (agents not started).

    `preferred` has the higher priority: it becomes active when both nodes boot together.
    Everything is removed on exit, agents first: their mount namespaces, and the mounts in
    them, go with them.
    """
    if mode not in MODES:
        raise ValueError(f"unknown arbitration mode {mode!r} (one of {', '.join(MODES)})")
    if links is None:
        links = ("private", "serial", "disk") if mode == "disk" else ("private", "serial")
    with Lab(prefix, nodes=("alpha", "beta")) as lab:
        dns = DnsServer(lab, CLIENT, lab.node(CLIENT).lan_ipv4)
        dns.start()
        volume = shared_volume(lab.workdir, lab.node_names)
        device: str | None = None
        try:
            body, device = arbitration(lab, mode, fence_failing=fence_failing)
            spec = ClusterSpec(
                name=f"classic-{mode}",
                arbitration=body,
                links=tuple(links),
                timers=MODE_TIMERS[mode] if timers is None else timers,
                extra=resources_toml(lab, dns, volume),
            )
            cluster = LabCluster(lab, spec)
            text = cluster.render()
            if preferred != lab.node_names[0]:
                text = text.replace("priority = 200", "priority = 0").replace(
                    "priority = 100", "priority = 200"
                )
            for name in lab.node_names:
                # The hostname follows the node: each node's own LAN address.
                head = f'[[node]]\nname = "{name}"\n'
                text = text.replace(head, f'{head}address = "{lab.node(name).lan_ipv4}"\n')
            cluster.write(text)
            witness = f"{lab.node(CLIENT).lan_ipv4}:{WITNESS_PORT}" if mode == "witness" else None
            yield ClassicGroup(lab, dns, volume, cluster, mode, device, witness)
        finally:
            for proc in lab.processes():
                lab.kill(proc)
            detach_volume(volume)
            if device is not None:
                run(["losetup", "--detach", device], check=False)
