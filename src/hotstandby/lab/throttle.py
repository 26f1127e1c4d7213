"""A slow disk for some processes: the cgroup v1 blkio controller's throttling.

The kernel here has no dm-delay; blkio throttling delays a group of processes' reads and
writes to one block device instead. At 512 B/s every 4 KiB request waits about 8 s in the
block layer; lifting the limit releases the queued requests at once.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hotstandby.lab._cmd import LabUnsupportedError

BLKIO = Path("/sys/fs/cgroup/blkio")


def throttle_missing() -> str | None:
    """Why throttling cannot work here, or None when it can."""
    if not (BLKIO / "blkio.throttle.write_bps_device").exists():
        return "needs the cgroup v1 blkio controller with throttling (no dm-delay here)"
    return None


def _home(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "blkio" in controllers.split(","):
            return BLKIO / path.lstrip("/")
    return BLKIO


@contextlib.contextmanager
def throttled(
    device: str, pids: Sequence[int], bytes_per_second: int = 512, prefix: str = "hfs"
) -> Iterator[Callable[[], None]]:
    """Throttle pids' I/O to device (with every thread they have or start) while inside.

    Yields a function that lifts the limit early: the queued requests then go at once.
    The group is named PREFIX-PID-XXXX (this process's pid), so a later run can find and
    remove the group of a process that died inside.
    """
    reason = throttle_missing()
    if reason is not None:
        raise LabUnsupportedError(reason)
    rdev = os.stat(device).st_rdev
    key = f"{os.major(rdev)}:{os.minor(rdev)}"
    homes = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            homes[pid] = _home(pid)
    group = BLKIO / f"{prefix}-{os.getpid()}-{secrets.token_hex(2)}"
    group.mkdir()
    limits = [group / "blkio.throttle.write_bps_device", group / "blkio.throttle.read_bps_device"]

    def lift() -> None:
        for limit in limits:
            limit.write_text(f"{key} 0")

    try:
        for limit in limits:
            limit.write_text(f"{key} {bytes_per_second}")
        for pid in homes:
            with contextlib.suppress(OSError):  # it may have ended (or been fenced) meanwhile
                (group / "cgroup.procs").write_text(str(pid))
        yield lift
    finally:
        lift()
        # Children forked while throttled are in the group too: every member goes back.
        members = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        fallback = next(iter(homes.values()), BLKIO)
        for pid in members:
            with contextlib.suppress(OSError):  # it may have ended meanwhile
                (homes.get(pid, fallback) / "cgroup.procs").write_text(str(pid))
        group.rmdir()
