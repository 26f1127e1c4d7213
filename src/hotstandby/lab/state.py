"""A record of each running lab on disk, so a later run can remove what a crashed one left.

Before a lab creates anything it writes /run/hotstandby-lab/<lab id>.json naming every
namespace, its work directory (pty links, disk backing file) and, once started, socat's pid,
together with the owner's pid and that process's start time. The leftover finder removes only
what such a record names, and only when its owner is gone, so labs running at the same time in
other processes are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotstandby.lab import disk, netns
from hotstandby.lab._cmd import LabError, run

STATE_DIR = Path("/run/hotstandby-lab")


def process_start_time(pid: int) -> int | None:
    """The start time of pid in clock ticks since boot (tells a pid from a reused one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class LabRecord:
    """What one lab owns, written before it is created."""

    lab_id: str
    owner_pid: int
    owner_start: int
    workdir: str
    namespaces: list[str] = field(default_factory=list)
    backing: str | None = None
    socat_pid: int | None = None
    # Per node, what its power loss cuts (see hotstandby.lab.power.NodeWiring), so that
    # another process, such as the lab's fence agent, can power it off and on.
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Where the record lives."""
        return STATE_DIR / f"{self.lab_id}.json"

    def save(self) -> None:
        """Write the record atomically (write, fsync, rename)."""
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(asdict(self), f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    def remove(self) -> None:
        """Delete the record once everything it names is gone."""
        self.path.unlink(missing_ok=True)

    def owner_alive(self) -> bool:
        """Whether the process that made this lab still runs."""
        return process_start_time(self.owner_pid) == self.owner_start


def _load(path: Path) -> LabRecord | None:
    try:
        return LabRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def load(lab_id: str) -> LabRecord:
    """The record of the running lab lab_id; LabError when there is none."""
    if not lab_id or "/" in lab_id or lab_id.startswith("."):
        raise LabError(f"not a lab id: {lab_id!r}")
    record = _load(STATE_DIR / f"{lab_id}.json")
    if record is None:
        raise LabError(f"no readable lab record {STATE_DIR / lab_id}.json")
    return record


def socat_pid(record: LabRecord) -> int | None:
    """The pid of the lab's socat, None when it is not running (or the pid was reused)."""
    pid = record.socat_pid
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # Only a socat whose arguments name this lab's work directory: the pid may be reused.
    if b"socat" in cmdline and record.workdir.encode() in cmdline:
        return pid
    return None


def _kill_socat(record: LabRecord) -> None:
    pid = socat_pid(record)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def destroy(record: LabRecord) -> list[str]:
    """Remove everything record names; return the errors met (empty when all went)."""
    errors: list[str] = []
    _kill_socat(record)
    for ns in record.namespaces:
        # Processes inside the lab's own namespaces can only be the lab's (or their children).
        for pid in netns.namespace_pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    if record.backing is not None:
        backing = Path(record.backing)
        try:
            for dev in disk.attached_devices(backing):
                with contextlib.suppress(OSError):
                    disk.set_read_only(dev, False)
                run(["losetup", "--detach", dev])
        except (LabError, OSError) as exc:
            errors.append(str(exc))
    for ns in record.namespaces:
        try:
            netns.delete_namespace(ns)
        except LabError as exc:
            errors.append(str(exc))
    shutil.rmtree(record.workdir, ignore_errors=True)
    if not errors:
        record.remove()
    return errors


def cleanup_leftovers(prefix: str = "") -> list[str]:
    """Remove labs whose id starts with prefix and whose owner process is gone; return their ids."""
    if not STATE_DIR.is_dir():
        return []
    removed = []
    for path in sorted(STATE_DIR.glob(f"{prefix}*.json")):
        record = _load(path)
        if record is None or record.owner_alive():
            continue
        if not destroy(record):
            removed.append(record.lab_id)
    return removed
