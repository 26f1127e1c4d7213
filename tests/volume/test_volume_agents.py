"""Two real agents move a shared volume: data written on the active node before its power loss
is read on the new active after the takeover, and a switchover stops a process that holds the
volume, unmounts it and mounts it on the other node.

The volume is one ext4 image with a loop device per node (hotstandby.lab.volume). Each agent
has a mount namespace of its own, as a separate machine has: its mounts are read through
/proc/AGENT_PID/mountinfo and its files through /proc/AGENT_PID/root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, LabError, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.volume import in_mount_namespace, mount_points, shared_volume

from .volume_lab import ANSWER_TIMEOUT, HOLDER_CODE, PROGRAMS, _read_line

pytestmark = pytest.mark.lab

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hvo"


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, a serial line and a heartbeat disk."""
    reason = skip_reason()
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if reason is None and missing:
        reason = f"programs missing: {', '.join(missing)}"
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built


@pytest.fixture
def volume(lab: Lab) -> Iterator[SharedDisk]:
    """The shared volume: ext4, one loop device per node, detached once the agents are gone."""
    made = shared_volume(lab.workdir, lab.node_names)
    try:
        yield made
    finally:
        # Agents first: their mount namespaces, and the mounts in them, go with them.
        for proc in lab.processes():
            lab.kill(proc)
        made.detach()


@pytest.fixture
def cluster(lab: Lab, volume: SharedDisk) -> LabCluster:
    """The lab's cluster (fencing through the lab) with the volume after the floating IP."""
    devices = "\n".join(f'{n} = "{volume.device(n)}"' for n in lab.node_names)
    extra = (
        '[[resource]]\nname = "data"\nkind = "volume"\nstart_timeout = "10s"\n'
        'stop_timeout = "10s"\nmonitor_interval = "1s"\nmonitor_timeout = "2s"\n'
        f'[resource.params]\nmountpoint = "{lab.workdir / "srv"}"\nfstype = "ext4"\n'
        # commit=600: no periodic journal commit, so a node that loses power writes nothing
        # after its last fsync (see the power loss test).
        f'kill_grace = "1s"\noptions = ["noatime", "commit=600"]\n'
        f"[resource.params.device]\n{devices}\n"
    )
    c = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=extra))
    c.write()
    return c


def messages(cluster: LabCluster, node: str, kind: str) -> list[str]:
    """The messages of node's events of one kind."""
    return [str(e["message"]) for e in cluster.events(node) if e["kind"] == kind]


def test_data_written_before_a_power_loss_is_read_after_the_takeover(
    lab: Lab, cluster: LabCluster, volume: SharedDisk
) -> None:
    active = cluster.up()
    standby = other(active)
    mountpoint = str(lab.workdir / "srv")
    pid = cluster.agents[active].pid
    assert mount_points(pid, volume.device(active)) == [mountpoint]
    assert mount_points(cluster.agents[standby].pid, volume.device(standby)) == []
    # Synced, as a database commits: what a client saw acknowledged must survive.
    with in_mount_namespace(pid, f"{mountpoint}/committed.txt").open("w") as f:
        f.write("acknowledged before the power loss\n")
        f.flush()
        os.fsync(f.fileno())
    # A real power loss writes nothing more; in the lab, the mount namespace of the dead
    # agent would be torn down and its kernel would unmount the file system cleanly. This
    # process keeps that namespace, and the idle mount in it, as the power loss left them
    # (nothing is written: no process uses it, and commit=600 defers any journal commit), so
    # the new active finds the file system as a crash leaves it: in use, its journal to replay.
    keeper = subprocess.Popen(["nsenter", "-t", str(pid), "-m", "--", "sleep", "600"])
    try:
        lab.power_loss(active)
        assert cluster.wait_active(20, other_than=active) == standby
        new_pid = cluster.agents[standby].pid
        assert mount_points(new_pid, volume.device(standby)) == [mountpoint]
        text = in_mount_namespace(new_pid, f"{mountpoint}/committed.txt").read_text()
        assert text == "acknowledged before the power loss\n"
        steps = messages(cluster, standby, "resource.step")
        fsck = [s for s in steps if s.startswith(f"data: start: fsck -p {volume.device(standby)}")]
        assert len(fsck) == 1 and "recovering journal" in fsck[0], steps
        assert "exit 0" in fsck[0] or "exit 1" in fsck[0]
    finally:
        # The new active's agent first: the dead node's file system, unmounted when its
        # namespace goes, must not write under a live mount.
        for proc in lab.processes(standby):
            lab.kill(proc)
        keeper.kill()
        keeper.wait(10)


def test_a_switchover_stops_a_holder_and_moves_the_volume(
    lab: Lab, cluster: LabCluster, volume: SharedDisk
) -> None:
    active = cluster.up()
    target = other(active)
    mountpoint = str(lab.workdir / "srv")
    pid = cluster.agents[active].pid
    in_mount_namespace(pid, f"{mountpoint}/moved.txt").write_text("moves with the volume\n")
    # A process of the active node working on the volume, as a service left running would.
    holder = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-m", "--", sys.executable, "-c", HOLDER_CODE,
         "default", mountpoint, "held.log"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        if _read_line(holder, ANSWER_TIMEOUT).strip() != "ready":
            raise LabError("the holder did not start")
        assert cluster.admin(active, "switchover")["ok"]
        assert cluster.wait_active(20, other_than=active) == target
        assert holder.wait(10) == -signal.SIGTERM
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        assert holder.stdout is not None
        holder.stdout.close()
    assert mount_points(pid, volume.device(active)) == []
    new_pid = cluster.agents[target].pid
    assert mount_points(new_pid, volume.device(target)) == [mountpoint]
    moved = in_mount_namespace(new_pid, f"{mountpoint}/moved.txt").read_text()
    assert moved == "moves with the volume\n"
    steps = messages(cluster, active, "resource.step")
    busy = [s for s in steps if f"data: stop: {mountpoint} is busy" in s]
    assert busy and f"sent SIGTERM to {holder.pid}" in busy[0], steps
    assert f"data: stop: unmounted {mountpoint} after SIGTERM" in steps
    stops = [m for m in messages(cluster, active, "resource") if m.startswith("data stop: ok")]
    assert stops, messages(cluster, active, "resource")
