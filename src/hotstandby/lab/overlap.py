"""The split-brain checker: who holds each exclusive resource, sampled many times a second.

A thread looks, every `period` seconds, at every node of a lab cluster:
- the floating IP: configured in the node's network namespace, read from the agent's
  /proc/PID/net/fib_trie (the namespace's local routes) so a sample costs no process start;
- the volume: mounted in the agent's mount namespace (/proc/PID/mountinfo);
- the service: a process of the service's command line among the agent's descendants.

Only a node whose agent is alive counts as a holder. A powered-off node's namespace keeps its
address, but it can neither answer nor write: the lab's power loss (and its fence agent) kills
every process of the node, and with them the agent's mount namespace. A frozen agent (SIGSTOP)
is alive: its kernel still answers ARP for the address and its mounts stay, so it holds them.

The timeline records each change; `find_overlaps` reports every stretch during which two
nodes held the same resource at once. It is a pure function, tested on bad timelines.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hotstandby.lab.power import process_tree
from hotstandby.lab.procs import process_state
from hotstandby.lab.volume import mount_points

#: Seconds between samples: well under the 100 ms heartbeat interval of the lab's timers.
PERIOD = 0.015

Holders = Mapping[str, frozenset[str]]  # resource -> nodes holding it


@dataclass(frozen=True)
class Sample:
    """Who held what at one instant (monotonic seconds)."""

    at: float
    holders: Holders


@dataclass(frozen=True)
class Overlap:
    """Two or more nodes held one exclusive resource from `start` for `duration` seconds."""

    resource: str
    nodes: frozenset[str]
    start: float
    duration: float

    def describe(self, origin: float = 0.0) -> str:
        """One line for a report, times relative to origin."""
        who = ", ".join(sorted(self.nodes))
        return (
            f"{self.resource} held by {who} from t={self.start - origin:.3f}s "
            f"for {self.duration * 1000:.0f} ms"
        )


def find_overlaps(timeline: Sequence[Sample]) -> list[Overlap]:
    """Every stretch of the timeline during which a resource had more than one holder.

    A stretch runs from the first sample showing two holders to the first later sample
    showing at most one (or the last sample, when it never ended). A single sample counts.
    """
    found: list[Overlap] = []
    open_: dict[str, tuple[float, set[str]]] = {}
    resources = sorted({r for s in timeline for r in s.holders})
    for sample in timeline:
        for resource in resources:
            nodes = sample.holders.get(resource, frozenset())
            if len(nodes) > 1:
                began, who = open_.setdefault(resource, (sample.at, set()))
                who.update(nodes)
            elif resource in open_:
                began, who = open_.pop(resource)
                found.append(Overlap(resource, frozenset(who), began, sample.at - began))
    if timeline:
        last = timeline[-1].at
        for resource, (began, who) in open_.items():
            found.append(Overlap(resource, frozenset(who), began, last - began))
    return sorted(found, key=lambda o: (o.start, o.resource))


def holds_address(pid: int, address: str) -> bool:
    """Whether the network namespace of process pid has IPv4 address configured locally."""
    wanted = str(ipaddress.IPv4Address(address))
    lines = Path(f"/proc/{pid}/net/fib_trie").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"|-- {wanted}":
            # The leaf's route lines follow, more deeply indented; "host LOCAL" is ours.
            for route in lines[i + 1 :]:
                text = route.strip()
                if not text.startswith("/"):
                    break
                if text.endswith("host LOCAL"):
                    return True
    return False


def alive(pid: int) -> bool:
    """Whether pid runs (or is frozen): not gone, not a zombie."""
    return process_state(pid) not in (None, "Z", "X")


def runs_command(pids: Sequence[int], marker: str) -> bool:
    """Whether one of pids has marker in its command line (its arguments, NUL-joined)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if marker.encode() in argv and alive(pid):
                return True
    return False


@dataclass(frozen=True)
class Watched:
    """What the checker looks for: the address, each node's volume device, the service."""

    address: str
    devices: Mapping[str, str]  # node -> its block device of the shared volume
    service_marker: str  # a string of the service's command line


class OverlapChecker:
    """Samples who holds what in a thread; `overlaps()` once stopped (or at any time)."""

    def __init__(
        self,
        agents: Callable[[], Mapping[str, int]],
        watched: Watched,
        period: float = PERIOD,
    ) -> None:
        self._agents = agents  # node -> its agent's pid now (agents are restarted)
        self.watched = watched
        self.period = period
        self.timeline: list[Sample] = []  # changes only, plus the last sample
        self.samples = 0
        self.errors: list[str] = []
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: Sample | None = None

    def __enter__(self) -> OverlapChecker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Begin sampling."""
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="overlap-checker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (after one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._last is not None and (not self.timeline or self.timeline[-1] is not self._last):
            self.timeline.append(self._last)

    def sample(self) -> Sample:
        """Who holds what now."""
        w = self.watched
        ip: set[str] = set()
        mount: set[str] = set()
        service: set[str] = set()
        for node, pid in self._agents().items():
            if not alive(pid):
                continue
            try:
                if holds_address(pid, w.address):
                    ip.add(node)
                if node in w.devices and mount_points(pid, w.devices[node]):
                    mount.add(node)
            except (OSError, IndexError):
                continue  # the agent ended while being read: it holds nothing now
            if runs_command(process_tree([pid])[1:], w.service_marker):
                service.add(node)
        holders = {"ip": frozenset(ip), "volume": frozenset(mount), "service": frozenset(service)}
        return Sample(time.monotonic(), holders)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                now = self.sample()
            except Exception as exc:  # a failed look is recorded, not fatal
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(self.period)
                continue
            self.samples += 1
            if self._last is None or now.holders != self._last.holders:
                self.timeline.append(now)
            self._last = now
            self._stop.wait(self.period)

    def holders_now(self) -> Holders:
        """The holders in the latest sample."""
        return {} if self._last is None else self._last.holders

    def overlaps(self) -> list[Overlap]:
        """Every overlap in the timeline so far."""
        timeline = list(self.timeline)
        if self._last is not None and (not timeline or timeline[-1] is not self._last):
            timeline.append(self._last)
        return find_overlaps(timeline)

    def describe(self) -> list[str]:
        """The timeline as lines, times relative to the start of sampling."""
        return [
            f"t={s.at - self.started:8.3f}s "
            + " ".join(f"{r}={','.join(sorted(n)) or '-'}" for r, n in sorted(s.holders.items()))
            for s in self.timeline
        ]
