"""Powering a lab node off and on, from the Lab that built it or from any other process.

`Lab.power_loss` and the lab's fence agent share these steps. The fence agent runs in another
process (typically the other node's agent, inside that node's namespace), so it works from
the lab's state record alone: each node's namespace, both ends of each of its links, whether
it is on the serial line, and its path to the shared disk (`NodeWiring`, written by the Lab).

The order follows DESIGN.md: freeze every process first, then cut, then kill, or a dying
daemon gets a last message out and the power loss looks like a graceful handover.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.lab import disk, netns, state
from hotstandby.lab._cmd import LabError
from hotstandby.lab.faults import FaultInjector, ingress_cut
from hotstandby.lab.procs import await_gone, await_stopped, process_state

End = tuple[str, str]  # (namespace, interface name)


@dataclass(frozen=True)
class NodeWiring:
    """What a power loss of one node cuts, as the lab's state record keeps it."""

    ns: str
    # Both ends of every link of the node: a cut drops arriving frames at each end.
    ends: tuple[End, ...]
    serial: bool = False
    disk: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data for the lab record."""
        return {
            "ns": self.ns,
            "ends": [list(e) for e in self.ends],
            "serial": self.serial,
            "disk": self.disk,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeWiring:
        """The wiring from the lab record's data."""
        return cls(
            ns=str(data["ns"]),
            ends=tuple((str(ns), str(ifname)) for ns, ifname in data["ends"]),
            serial=bool(data.get("serial", False)),
            disk=None if data.get("disk") is None else str(data["disk"]),
        )


def wiring(record: state.LabRecord, node: str) -> NodeWiring:
    """The recorded wiring of node; LabError when the record does not know it."""
    try:
        return NodeWiring.from_json(record.nodes[node])
    except KeyError:
        known = sorted(record.nodes)
        raise LabError(f"lab {record.lab_id} has no node {node!r} (nodes: {known})") from None
    except (TypeError, ValueError) as exc:
        raise LabError(f"lab {record.lab_id}: bad wiring record for {node!r}: {exc}") from None


def process_tree(roots: Iterable[int]) -> list[int]:
    """roots (those still alive) and all their descendants, parents before children."""
    # This kernel has no /proc/PID/task/TID/children, so build the tree from ppids.
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
    alive = {pid for kids in children.values() for pid in kids}
    order: list[int] = []
    queue = [pid for pid in roots if pid in alive]
    while queue:
        pid = queue.pop(0)
        if pid not in order:
            order.append(pid)
            queue += children.get(pid, [])
    return order


def freeze_tree(roots: Callable[[], Iterable[int]], exclude: Collection[int] = ()) -> list[int]:
    """SIGSTOP the processes roots() names and their descendants; return once all stopped."""
    frozen: list[int] = []
    # Repeat until nothing new turns up: a process may fork between listing and freezing.
    while True:
        fresh = [p for p in process_tree(roots()) if p not in frozen and p not in exclude]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)
    # SIGSTOP takes effect asynchronously; cut only once nothing of the node still runs.
    await_stopped(frozen)
    return frozen


def _lineage() -> set[int]:
    """This process and its ancestors: never to be frozen, whatever namespace they are in."""
    found: set[int] = set()
    pid = os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def node_pids(ns: str, exclude: Collection[int] = ()) -> list[int]:
    """Processes running in namespace ns (zombies run nothing and do not count)."""
    return [
        pid
        for pid in netns.namespace_pids(ns)
        if pid not in exclude and process_state(pid) not in (None, "Z", "X")
    ]


def cut_ends(ends: Iterable[End], cut: bool) -> None:
    """Drop (or stop dropping) every frame arriving at each end."""
    # A fresh injector: this process knows nothing of loss rules another set on these ends,
    # and a cut replaces them anyway; healing therefore also clears such loss.
    faults = FaultInjector()
    for ns, ifname in ends:
        faults.set_cut(ns, ifname, cut)


def power_off(record: state.LabRecord, node: str) -> list[int]:
    """Power node off from any process: freeze its processes, cut everything, kill them.

    Returns the pids killed. Every process in the node's namespace goes, not only those the
    Lab started, except this process and its ancestors (a node cannot unplug the caller).
    """
    w = wiring(record, node)
    mine = _lineage()
    frozen = freeze_tree(lambda: node_pids(w.ns, mine), exclude=mine)
    cut_ends(w.ends, True)
    if w.serial:
        socat = state.socat_pid(record)
        if socat is not None:
            os.kill(socat, signal.SIGSTOP)
            await_stopped([socat])
    if w.disk is not None:
        disk.set_read_only(w.disk, True)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Killed children of another process stay zombies until it reaps them: they count as gone.
    if not await_gone(frozen):
        raise LabError(f"processes of {node} survived SIGKILL: {frozen}")
    return frozen


def power_on(record: state.LabRecord, node: str) -> None:
    """Reconnect node's links, serial line and disk; no process is restarted."""
    w = wiring(record, node)
    cut_ends(w.ends, False)
    if w.serial:
        socat = state.socat_pid(record)
        if socat is not None:
            os.kill(socat, signal.SIGCONT)
    if w.disk is not None:
        disk.set_read_only(w.disk, False)


@dataclass(frozen=True)
class PowerState:
    """What is left of a node: its running processes and which link ends still pass frames."""

    processes: tuple[int, ...]
    open_ends: tuple[End, ...]

    @property
    def off(self) -> bool:
        """No process runs and every link end drops: the node can neither act nor talk."""
        return not self.processes and not self.open_ends


def power_state(record: state.LabRecord, node: str) -> PowerState:
    """The node's state as the kernel has it now, whoever changed it."""
    w = wiring(record, node)
    return PowerState(
        processes=tuple(node_pids(w.ns, _lineage())),
        open_ends=tuple(e for e in w.ends if not ingress_cut(*e)),
    )
