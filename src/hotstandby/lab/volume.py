"""A shared volume for the lab: one file system image seen by each node through its own loop device.

Like the heartbeat disk (hotstandby.lab.disk), one backing file with one loop device per node
stands for the nodes' paths to one SAN volume. Each node's kernel keeps its own file system
state for its own device, as two hosts would: a volume mounted by two nodes at once would be
corrupted here just as on real shared storage, which is what the tests must never see happen.

Each agent of the lab runs in a mount namespace of its own (`ip netns exec` gives it one), so
what a node has mounted is seen through its agent's pid: /proc/PID/mountinfo for the mounts,
/proc/PID/root/... for the files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hotstandby.lab._cmd import run
from hotstandby.lab.disk import SharedDisk

#: Size of a lab volume: large enough for ext4 with a journal, small enough to copy at once.
VOLUME_SIZE = 32 << 20
#: mkfs and fsck of a small image finish within a second; this only bounds a hang.
FORMAT_TIMEOUT = 30.0


def shared_volume(
    workdir: Path, nodes: Iterable[str], *, name: str = "volume", size: int = VOLUME_SIZE
) -> SharedDisk:
    """An ext4 file system on a new backing file in workdir, one loop device per node.

    The caller detaches it (SharedDisk.detach) once no node has it mounted.
    """
    volume = SharedDisk(workdir / f"{name}.img", size, nodes)
    volume.attach()
    try:
        first = next(iter(volume.devices.values()))
        # lazy_itable_init=0: no background zeroing thread keeps the file system busy after
        # its first mount; the lab wants every write to be the test's own.
        run(
            ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", first],
            timeout=FORMAT_TIMEOUT,
        )
    except BaseException:
        volume.detach()
        raise
    return volume


def mount_points(pid: int, device: str) -> list[str]:
    """Where the process pid (its mount namespace) sees block device `device` mounted."""
    rdev = os.stat(device).st_rdev
    wanted = f"{os.major(rdev)}:{os.minor(rdev)}"
    points = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[2] == wanted:
            points.append(fields[4].replace("\\040", " "))
    return points


def in_mount_namespace(pid: int, path: str) -> Path:
    """path as the process pid sees it (its mount namespace), for reading from outside."""
    return Path(f"/proc/{pid}/root") / path.lstrip("/")


def volume_resource(volume: SharedDisk, nodes: Iterable[str], mountpoint: Path) -> str:
    """The lab's [[resource]] table of the shared volume "data", mounted at `mountpoint`."""
    devices = "\n".join(f'{n} = "{volume.device(n)}"' for n in nodes)
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
"""
