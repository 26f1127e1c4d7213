"""PostgreSQL on the shared disk in the lab, and one power loss under a write workload.

Shared by the lab test (tests/postgres/test_postgres_failover.py) and the benchmark
(bench/postgres_failover.py). The cluster is the classic group: the floating IP, the shared
volume (ext4, one loop device per node) holding the data directory, and the postgres
resource, fenced through the lab. The data directory is made once by initdb on the volume
before the agents start; the client namespace runs the workload of hotstandby.lab.pg_workload
through the floating IP.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.lab._cmd import LabError, run
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.pg_workload import Outage, Verdict, outage, read_records
from hotstandby.lab.topology import CLIENT, FLOATING_IPV4, Lab
from hotstandby.lab.volume import shared_volume

BINDIR = "/usr/lib/postgresql/15/bin"
PORT = 5432
ACCOUNTS = 20
#: Room for PostgreSQL 15's cluster (about 40 MiB with its first WAL segment) and some WAL.
VOLUME_SIZE = 256 << 20
INITDB_TIMEOUT = 60.0
DSN = f"host={FLOATING_IPV4} port={PORT} dbname=postgres user=postgres"
RESOURCE = "pg"
RECOVERY = re.compile(r"crash recovery: redo ([0-9.]+)s, ready after ([0-9.]+)s")


def skip_reason() -> str | None:
    """Why PostgreSQL cannot run in the lab here, or None."""
    if not os.access(f"{BINDIR}/postgres", os.X_OK):
        return f"PostgreSQL 15 is not installed ({BINDIR}/postgres)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


def initdb_on(volume: SharedDisk, node: str, workdir: Path) -> str:
    """Make a cluster in PGDIR on the volume (mounted here for the while); returns its path."""
    mnt = workdir / "initdb"
    mnt.mkdir()
    entry = pwd.getpwnam("postgres")
    run(["mount", volume.device(node), str(mnt)], timeout=30)
    try:
        data = mnt / "pg"
        data.mkdir(mode=0o700)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [f"{BINDIR}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C"],
            user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
            capture_output=True, check=True, timeout=INITDB_TIMEOUT, cwd="/",
        )  # fmt: skip
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 192.0.2.0/24 trust\n")
    finally:
        run(["umount", str(mnt)], timeout=30)
        mnt.rmdir()
    return "pg"


def resources(lab: Lab, volume: SharedDisk) -> str:
    """The volume and postgres resources of the cluster file."""
    devices = "\n".join(f'{n} = "{volume.device(n)}"' for n in lab.node_names)
    mountpoint = lab.workdir / "srv"
    return f"""
[[resource]]
name = "data"
kind = "volume"
start_timeout = "10s"
stop_timeout = "10s"
monitor_interval = "1s"
monitor_timeout = "2s"
[resource.params]
mountpoint = "{mountpoint}"
fstype = "ext4"
kill_grace = "1s"
# No periodic journal commit: a node that loses power writes nothing after its last fsync.
options = ["noatime", "commit=600"]
[resource.params.device]
{devices}

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
        (lab.workdir / "pgsock").mkdir(mode=0o755)
        entry = pwd.getpwnam("postgres")
        os.chown(lab.workdir / "pgsock", entry.pw_uid, entry.pw_gid)
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


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def workload(lab: Lab, *argv: str, timeout: float = 30.0) -> str:
    """Run a pg_workload command in the client namespace; its output."""
    done = lab.run(
        CLIENT, [sys.executable, "-m", "hotstandby.lab.pg_workload", *argv], timeout=timeout
    )
    return done.stdout


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
    workload(lab, "prepare", DSN, str(ACCOUNTS), str(filler), timeout=120)
    out = lab.workdir / "workload.jsonl"
    stop = lab.workdir / "workload.stop"
    client = lab.spawn(
        CLIENT,
        [sys.executable, "-m", "hotstandby.lab.pg_workload", "run", DSN, str(out), str(stop),
         str(ACCOUNTS)],
    )  # fmt: skip
    keeper: subprocess.Popen[bytes] | None = None
    try:
        cluster.wait_for(
            f"{warmup} acknowledged commits",
            lambda: out.exists() and _acked(out) >= warmup,
            30,
        )
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
        cluster.wait_for(
            f"{after} commits acknowledged after the takeover",
            lambda: (
                sum(1 for r in read_records(str(out)) if r.get("t", 0) > fault and "ok" in r)
                >= after
            ),
            30,
        )
        stop.touch()
        client.wait(30)
        records = read_records(str(out))
        verdict = Verdict(**_json(workload(lab, "verify", DSN, str(ACCOUNTS), str(out))))
        redo = ready = None
        steps = _steps(cluster, standby)
        for step in steps:
            match = RECOVERY.search(step)
            if match:
                redo, ready = float(match.group(1)), float(match.group(2))
        fell = outage(records, fault)
        old_steps = _steps(cluster, active) if switchover else ()
        return Trial(active, standby, verdict, fell, took, redo, ready, steps, old_steps)
    finally:
        if client.alive():
            lab.kill(client)
        # The new active's agent first: the dead node's file system, unmounted when its
        # namespace goes, must not write under a live mount.
        for proc in lab.processes(standby):
            lab.kill(proc)
        if keeper is not None:
            keeper.kill()
            keeper.wait(10)


def _steps(cluster: LabCluster, node: str) -> tuple[str, ...]:
    return tuple(
        str(e["message"])
        for e in cluster.events(node)
        if e["kind"] == "resource.step" and str(e["message"]).startswith(f"{RESOURCE}: ")
    )


def _acked(out: Path) -> int:
    return sum(1 for r in read_records(str(out)) if "ok" in r)


def _json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return data
