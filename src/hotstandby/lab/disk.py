"""A shared disk: one sparse file, seen by each node through a loop device of its own.

Two loop devices over one file behave like two hosts' paths to one SAN volume: both loop
drivers read and write the file through its single page cache, so direct (O_DIRECT) I/O on
one device is seen at once by direct I/O on the other. A path of its own per node is what
lets the lab cut one node off the storage without touching the other.

Cutting a node's path sets its loop device read-only (the BLKROSET ioctl): from then on every
write through it fails with EPERM, also on descriptors opened before the cut, while the other
node's device keeps working. Reads still succeed; this kernel has no device-mapper, so a
device returning errors on every request (dm-error, dm-flakey) is not available here. For a
heartbeat area that is enough: the cut node can no longer write its slot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from hotstandby.lab._cmd import LabError, run

#: BLKROSET from <linux/fs.h>: set or clear a block device's read-only flag.
_BLKROSET = 0x125D
#: BLKROGET: read that flag.
_BLKROGET = 0x125E


class SharedDisk:
    """A sparse backing file and one loop device per node."""

    def __init__(self, backing: Path, size: int, nodes: Iterable[str]) -> None:
        self.backing = backing
        self.size = size
        self._nodes = list(nodes)
        self._devices: dict[str, str] = {}

    def attach(self) -> None:
        """Create the sparse file and attach one loop device per node."""
        with self.backing.open("wb") as f:
            f.truncate(self.size)
        for node in self._nodes:
            self._devices[node] = run(
                ["losetup", "--find", "--show", str(self.backing)]
            ).stdout.strip()

    def device(self, node: str) -> str:
        """The block device path node uses for the shared disk, such as /dev/loop3."""
        try:
            return self._devices[node]
        except KeyError:
            raise LabError(f"no shared-disk path for {node!r}") from None

    @property
    def devices(self) -> dict[str, str]:
        """Every node's loop device."""
        return dict(self._devices)

    def set_cut(self, node: str, cut: bool) -> None:
        """Make node's path refuse writes (cut) or accept them again."""
        set_read_only(self.device(node), cut)

    def detach(self) -> None:
        """Detach every loop device of this disk and delete the backing file."""
        errors = []
        for node, dev in list(self._devices.items()):
            with contextlib.suppress(OSError, LabError):
                self.set_cut(node, False)
            try:
                run(["losetup", "--detach", dev])
                del self._devices[node]
            except LabError as exc:
                errors.append(str(exc))
        # Also catch devices attached by a losetup call whose answer we never read.
        for dev in attached_devices(self.backing):
            try:
                run(["losetup", "--detach", dev])
            except LabError as exc:
                errors.append(str(exc))
        self.backing.unlink(missing_ok=True)
        if errors:
            raise LabError("; ".join(errors))


def set_read_only(device: str, read_only: bool) -> None:
    """Set or clear a block device's read-only flag; open descriptors are affected too."""
    fd = os.open(device, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, _BLKROSET, struct.pack("i", 1 if read_only else 0))
    finally:
        os.close(fd)


def is_read_only(device: str) -> bool:
    """Whether a block device's read-only flag is set (a cut path to the shared disk)."""
    fd = os.open(device, os.O_RDONLY)
    try:
        flag = fcntl.ioctl(fd, _BLKROGET, struct.pack("i", 0))
    finally:
        os.close(fd)
    return bool(struct.unpack("i", flag)[0])


def attached_devices(backing: Path) -> list[str]:
    """Loop devices currently attached to backing."""
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(backing)]).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]
