"""PostgreSQL on the shared disk in the lab, and one power loss under a write workload.

Shared by the lab test (tests/postgres/test_postgres_failover.py) and the benchmark
(bench/postgres_failover.py). The cluster is the classic group: the floating IP, the shared
volume (ext4, one loop device per node) holding the data directory, and the postgres
resource, fenced through the lab. The data directory is made once by initdb on the volume
before the agents start; the client namespace runs the workload of hotstandby.lab.pg_workload
through the floating IP.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hotstandby.lab._cmd import LabError, run
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.pg_common import (
    BINDIR,
    PORT,
    RESOURCE,
    Workload,
    initdb,
    other,
    postgres_dir,
    skip_reason,
    steps,
)
from hotstandby.lab.pg_workload import Outage, Verdict, outage
from hotstandby.lab.topology import Lab
from hotstandby.lab.volume import shared_volume, volume_resource

__all__ = ["PgCluster", "Trial", "other", "pg_cluster", "power_loss_trial", "skip_reason"]

#: Room for PostgreSQL 15's cluster (about 40 MiB with its first WAL segment) and some WAL.
VOLUME_SIZE = 256 << 20
RECOVERY = re.compile(r"crash recovery: redo ([0-9.]+)s, ready after ([0-9.]+)s")


def initdb_on(volume: SharedDisk, node: str, workdir: Path) -> str:
    """Make a cluster in PGDIR on the volume (mounted here for the while); returns its path."""
    mnt = workdir / "initdb"
    mnt.mkdir()
    run(["mount", volume.device(node), str(mnt)], timeout=30)
    try:
        initdb(postgres_dir(mnt / "pg"), ["host all all 192.0.2.0/24 trust"])
    finally:
        run(["umount", str(mnt)], timeout=30)
        mnt.rmdir()
    return "pg"


def resources(lab: Lab, volume: SharedDisk) -> str:
    """The volume and postgres resources of the cluster file."""
    mountpoint = lab.workdir / "srv"
    return (
        volume_resource(volume, lab.node_names, mountpoint)
        + f"""
[[resource]]
name = "{RESOURCE}"
kind = "postgres"
start_timeout = "30s"
stop_timeout = "20s"
monitor_interval = "1s"
monitor_timeout = "4s"
[resource.params]
pgdata = "{mountpoint}/pg"
bindir = "{BINDIR}"
port = {PORT}
socket_dir = "{lab.workdir / "pgsock"}"
"""
    )


@dataclass
class PgCluster:
    """The lab, its volume and the cluster (agents not started)."""

    lab: Lab
    volume: SharedDisk
    cluster: LabCluster


@contextmanager
def pg_cluster(prefix: str) -> Iterator[PgCluster]:
    """A two-node lab (alpha, beta) with PostgreSQL's data on the shared volume."""
    with Lab(prefix, nodes=("alpha", "beta")) as lab:
        # The postgres user walks through the lab's directory to its socket and its data.
        lab.workdir.chmod(0o755)
        postgres_dir(lab.workdir / "pgsock", 0o755)
        volume = shared_volume(lab.workdir, lab.node_names, size=VOLUME_SIZE)
        try:
            initdb_on(volume, lab.node_names[0], lab.workdir)
            spec = ClusterSpec(arbitration=fence_arbitration(lab), extra=resources(lab, volume))
            cluster = LabCluster(lab, spec)
            cluster.write()
            yield PgCluster(lab, volume, cluster)
        finally:
            # Agents first: their mount namespaces, and the mounts in them, go with them.
            for proc in lab.processes():
                lab.kill(proc)
            volume.detach()


@dataclass(frozen=True)
class Trial:
    """One power loss of the active node under the write workload."""

    old: str
    new: str
    verdict: Verdict
    outage: Outage
    takeover: float  # from the power loss until the new node reported itself active
    redo: float | None  # the crash recovery's redo time the new node's server logged
    ready: float | None  # the new server's start until it answered (recovery included)
    steps: tuple[str, ...]  # the new node's steps of the postgres resource
    old_steps: tuple[str, ...] = ()  # the old node's (after a switchover: its stop)


def power_loss_trial(
    pg: PgCluster,
    *,
    warmup: int = 200,
    after: int = 200,
    filler: int = 0,
    switchover: bool = False,
) -> Trial:
    """Start the agents, run the workload, power the active node off mid-way, verify.

    With `switchover`, the group is moved by a switchover instead (a clean stop).
    """
    lab, cluster = pg.lab, pg.cluster
    active = cluster.up()
    standby = other(active)
    load = Workload(lab, cluster)
    load.prepare(filler)
    load.start()
    keeper: subprocess.Popen[bytes] | None = None
    try:
        load.wait_acked(warmup)
        pid = cluster.agents[active].pid
        fault = time.monotonic()
        if switchover:
            if not cluster.admin(active, "switchover")["ok"]:
                raise LabError("the switchover was refused")
        else:
            # Keep the dead node's mount namespace as the power loss leaves it
            # (tests/volume says why): the new node finds the file system in use, with a
            # journal to replay, and the data directory as the killed server left it.
            keeper = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "--", "sleep", "600"])
            fault = time.monotonic()
            lab.power_loss(active)
        if cluster.wait_active(30, other_than=active) != standby:
            raise LabError("the standby did not take over")
        took = time.monotonic() - fault
        load.wait_acked(after, after=fault)
        records = load.stop()
        verdict = load.verify()
        redo = ready = None
        new_steps = steps(cluster, standby)
        for step in new_steps:
            match = RECOVERY.search(step)
            if match:
                redo, ready = float(match.group(1)), float(match.group(2))
        fell = outage(records, fault)
        old_steps = steps(cluster, active) if switchover else ()
        return Trial(active, standby, verdict, fell, took, redo, ready, new_steps, old_steps)
    finally:
        load.close()
        # The new active's agent first: the dead node's file system, unmounted when its
        # namespace goes, must not write under a live mount.
        for proc in lab.processes(standby):
            lab.kill(proc)
        if keeper is not None:
            keeper.kill()
            keeper.wait(10)
