"""A tiny deterministic world for two or three real engines: the core's own test driver.

Everything runs from one heap of `(time, seq, node, event)` items; every engine's
`next_deadline()` becomes a Tick item. There is no real time, no sleep and no global
randomness: a test (or Hypothesis) decides every fault, so every run replays exactly.

The world keeps the ground truth the engines only believe in: which node holds which
resource (from the moment a START is issued, since an adapter may grab an address
before it answers, until a STOP answers OK or the machine loses power), what each
node persisted, who holds the witness lease, and what lies in the disk message slots.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from hotstandby.config import budget
from hotstandby.core import timing
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Link,
    LinkKind,
    Node,
    Policies,
    Resource,
    ResourceKind,
    Timers,
    frozen_map,
)
from hotstandby.core.engine import Engine, EngineOptions
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AdminRequest,
    ArbiterAnswer,
    ArbiterOutcome,
    ArbiterRequest,
    AskArbiter,
    Boot,
    Command,
    Event,
    Exit,
    FenceDone,
    FencePeer,
    HeartbeatReceived,
    Outcome,
    Persist,
    ResourceDone,
    Role,
    RunResource,
    SelfFence,
    SendHeartbeat,
    Tick,
)
from hotstandby.sim.arbiter import DiskSlots, Witness

# ------------------------------------------------------------------ clusters


def make_cluster(
    mode: ArbitrationMode = ArbitrationMode.FENCE,
    nodes: Iterable[tuple[str, int]] = (("alpha", 200), ("beta", 100)),
    links: Iterable[str] = ("net", "serial"),
    resources: Iterable[str] = ("ip", "vol", "db"),
    timers: Timers | None = None,
    policies: Policies | None = None,
    fence_delay: float = 2.0,
    watchdog: float = 1.0,
    monitor_interval: float = 5.0,
) -> Cluster:
    """A small valid cluster; every knob a test turns has a keyword."""
    node_t = tuple(Node(n, p) for n, p in nodes)
    names = [n.name for n in node_t]
    kinds = {
        "ip": ResourceKind.IP,
        "vol": ResourceKind.VOLUME,
        "alias": ResourceKind.ALIAS,
    }
    cluster = Cluster(
        name="test",
        secret_file="/dev/null",
        nodes=node_t,
        links=tuple(
            Link(
                name, LinkKind.UDP, frozen_map({n: f"192.0.2.{i + 1}" for i, n in enumerate(names)})
            )
            for name in links
        ),
        resources=tuple(
            Resource(r, kinds.get(r, ResourceKind.SERVICE), monitor_interval=monitor_interval)
            for r in resources
        ),
        arbitration=Arbitration(
            mode=mode,
            witness="198.51.100.9:7000" if mode is ArbitrationMode.WITNESS else None,
            device="/dev/loop7" if mode is ArbitrationMode.DISK else None,
            fence=(frozen_map({"agent": "fake"}),) if mode is ArbitrationMode.FENCE else (),
            fence_delay=fence_delay,
            watchdog_timeout=watchdog,
        ),
        # A lease long enough for the budget's lease rule with a 1 s watchdog.
        timers=timers or Timers(initial_dead=2.0, lease=6.0),
        policies=policies or Policies(),
        digest="0123456789abcdef0123",
    )
    # The engine trusts `hotstandby check` to have refused unsafe timers: test only
    # clusters the loader would run.
    broken = budget.violations(cluster)
    assert not broken, broken
    return cluster


# ------------------------------------------------------------------ network


@dataclass
class Network:
    """Per link and direction: cut, or drop every n-th heartbeat; one fixed delay."""

    delay: float = 0.001
    cuts: set[tuple[str, str, str]] = field(default_factory=set)  # (link, src, dst)
    drop_every: dict[tuple[str, str, str], int] = field(default_factory=dict)
    counters: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def cut(self, link: str, src: str, dst: str, both: bool = True) -> None:
        """Cut one link in one direction (or both)."""
        self.cuts.add((link, src, dst))
        if both:
            self.cuts.add((link, dst, src))

    def heal(self, link: str, src: str, dst: str, both: bool = True) -> None:
        """Undo `cut`."""
        self.cuts.discard((link, src, dst))
        if both:
            self.cuts.discard((link, dst, src))

    def heal_all(self) -> None:
        """End every network fault."""
        self.cuts.clear()
        self.drop_every.clear()

    def passes(self, link: str, src: str, dst: str) -> bool:
        """Whether the next heartbeat on this link and direction arrives."""
        key = (link, src, dst)
        if key in self.cuts:
            return False
        every = self.drop_every.get(key, 0)
        if every <= 0:
            return True
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key] % every != 0


# ------------------------------------------------------------------ arbiters


# ------------------------------------------------------------------ the world


@dataclass
class NodeState:
    """One machine: its engine (None while powered off or exited) and its disk."""

    name: str
    engine: Engine | None = None
    powered: bool = True
    boots: int = 0
    persisted: tuple[int, bool] = (0, False)  # (epoch, active) on its disk
    tick_at: float | None = None
    arbiter_cut: bool = False  # cannot reach the witness or the shared disk
    exited: bool = False
    self_fenced: bool = False


@dataclass(frozen=True)
class Entry:
    """One command an engine issued, when, and on which node."""

    t: float
    node: str
    command: Command


ARBITER_TIMEOUT = 0.5  # the shell's bound on one arbiter request


class World:
    """Two or three engines, the network, resources, a fence device and an arbiter."""

    def __init__(
        self, cluster: Cluster, net_delay: float = 0.001, options: EngineOptions | None = None
    ) -> None:
        self.cluster = cluster
        self.options = options
        self.now = 0.0
        self.net = Network(delay=net_delay)
        self.nodes = {n: NodeState(n) for n in cluster.node_names}
        self.holders: dict[str, set[str]] = {r.name: set() for r in cluster.resources}
        self.log: list[Entry] = []
        self.violations: list[tuple[float, str, frozenset[str]]] = []
        self.res_delay: dict[Action, float] = dict.fromkeys(Action, 0.0)
        # Scripted outcomes per (node, resource, action), used up in order; None: no answer.
        self.scripts: dict[tuple[str, str, Action], list[Outcome | None]] = {}
        self.fence_delay = 0.2
        self.fence_results: list[bool] = []  # scripted fence results, used up; then success
        self.witness = Witness(
            cluster.timers.lease + timing.drift_margin(cluster, cluster.timers.lease)
        )
        names = cluster.node_names
        self.disk = DiskSlots(names)
        self._heap: list[tuple[float, int, str, Event | Callable[[], None]]] = []
        self._seq = 0

    # -------------------------------------------------------------- control

    def boot(self, name: str, boot: int | None = None) -> None:
        """Power on (if needed) and start the agent on `name` now, from its persisted state."""
        n = self.nodes[name]
        n.powered = True
        n.exited = False
        n.self_fenced = False
        n.boots += 1
        n.engine = Engine(self.cluster, name, self.options)
        n.tick_at = None
        epoch, active = n.persisted
        ident = (
            boot if boot is not None else 1000 * (1 + self.cluster.node_names.index(name)) + n.boots
        )
        self._push(self.now, name, Boot(ident, epoch, active))

    def power_off(self, name: str) -> None:
        """Power loss now: the agent is gone and the machine holds nothing any more."""
        n = self.nodes[name]
        n.powered = False
        n.engine = None
        n.tick_at = None
        for holders in self.holders.values():
            holders.discard(name)

    def admin(self, name: str, action: AdminAction, target: str | None = None) -> list[Command]:
        """An operator's request on `name`, now; the commands it produced."""
        self._seq += 1
        return self._deliver(name, AdminRequest(f"req{self._seq}", action, target))

    def script(self, node: str, resource: str, action: Action, *outcomes: Outcome | None) -> None:
        """The next answers of one resource action on one node."""
        self.scripts.setdefault((node, resource, action), []).extend(outcomes)

    def at(self, t: float, fn: Callable[[], None]) -> None:
        """Run `fn` at world time `t` (a fault, a repair, an operator)."""
        self._push(t, "", fn)

    # -------------------------------------------------------------- queries

    def engine(self, name: str) -> Engine:
        """The running engine of `name` (AssertionError if it has none)."""
        e = self.nodes[name].engine
        assert e is not None, f"{name} runs no engine"
        return e

    def role(self, name: str) -> Role | None:
        """The role of `name`, None when its agent is not running."""
        e = self.nodes[name].engine
        return e.role if e is not None else None

    def commands(self, node: str | None = None, kind: type | None = None) -> list[Entry]:
        """Logged commands, of one node and one type when given."""
        return [
            e
            for e in self.log
            if (node is None or e.node == node) and (kind is None or isinstance(e.command, kind))
        ]

    def rules(self, node: str | None = None, kind: type | None = None) -> list[str]:
        """The Reason.rule of logged commands (SendHeartbeat left out unless asked)."""
        out = []
        for e in self.commands(node, kind):
            if kind is None and isinstance(e.command, SendHeartbeat):
                continue
            reason = getattr(e.command, "reason", None)
            out.append(reason.rule if reason is not None else "")
        return out

    def held_by(self, name: str) -> set[str]:
        """Resources `name` holds in truth."""
        return {r for r, h in self.holders.items() if name in h}

    # -------------------------------------------------------------- running

    def run_until(self, t: float, max_items: int = 200_000) -> None:
        """Process everything due up to world time `t`, then stand at `t`."""
        count = 0
        while self._heap and self._heap[0][0] <= t:
            when, _, node, item = heapq.heappop(self._heap)
            self.now = when
            count += 1
            assert count < max_items, "the world does not settle: an engine asks for ticks forever"
            if callable(item):
                item()
                continue
            if isinstance(item, Tick) and self.nodes[node].tick_at != when:
                continue  # replaced by a newer deadline
            if isinstance(item, Tick):
                self.nodes[node].tick_at = None
            self._deliver(node, item)
        self.now = max(self.now, t)

    def run_for(self, span: float) -> None:
        """Run `span` seconds past now."""
        self.run_until(self.now + span)

    # -------------------------------------------------------------- internals

    def _push(self, t: float, node: str, item: Event | Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, node, item))

    def _deliver(self, name: str, event: Event) -> list[Command]:
        n = self.nodes[name]
        if n.engine is None or not n.powered:
            return []
        engine = n.engine
        commands = engine.step(event, self.now)
        for c in commands:
            self.log.append(Entry(self.now, name, c))
            if n.engine is engine:  # not after an Exit or SelfFence in this same step
                self._carry_out(n, c)
        if n.engine is engine:
            deadline = engine.next_deadline()
            if deadline is not None and deadline != n.tick_at:
                n.tick_at = deadline
                self._push(deadline, name, Tick())
        self._check_s1()
        return commands

    def _carry_out(self, n: NodeState, c: Command) -> None:
        if isinstance(c, SendHeartbeat):
            for link in self.cluster.links:
                for dst in self.nodes:
                    if dst != n.name and self.net.passes(link.name, n.name, dst):
                        self._push(
                            self.now + self.net.delay, dst, HeartbeatReceived(link.name, c.beat)
                        )
        elif isinstance(c, RunResource):
            self._run_resource(n, c)
        elif isinstance(c, FencePeer):
            self._fence(n, c)
        elif isinstance(c, AskArbiter):
            self._ask(n, c)
        elif isinstance(c, Persist):
            n.persisted = (c.epoch, c.active)
        elif isinstance(c, SelfFence):
            n.engine = None
            n.self_fenced = True
            wd = self.cluster.arbitration.watchdog_timeout
            if wd > 0:  # the hardware watchdog resets the machine: it holds nothing after
                self.at(self.now + wd, lambda: self.power_off(n.name))
        elif isinstance(c, Exit):
            n.engine = None
            n.exited = True

    def _run_resource(self, n: NodeState, c: RunResource) -> None:
        name = n.name
        holders = self.holders[c.resource]
        if c.action is Action.START:
            holders.add(name)  # may hold from now on, whatever the answer says
        queue = self.scripts.get((name, c.resource, c.action))
        if queue:
            outcome = queue.pop(0)
        elif c.action in (Action.MONITOR, Action.PROBE):
            outcome = Outcome.OK if name in holders else Outcome.STOPPED
        else:
            outcome = Outcome.OK
        if outcome is None:
            return  # hangs: the shell's own timeout is what the test is about
        engine = n.engine

        def done() -> None:
            if n.engine is not engine:
                return  # the agent restarted or the machine died meanwhile
            if c.action is Action.STOP and outcome is Outcome.OK:
                holders.discard(name)
            self._deliver(name, ResourceDone(c.resource, c.action, outcome))

        self.at(self.now + self.res_delay[c.action], done)

    def _fence(self, n: NodeState, c: FencePeer) -> None:
        ok = self.fence_results.pop(0) if self.fence_results else True
        engine = n.engine

        def done() -> None:
            if ok:
                self.power_off(c.target)
            if n.engine is engine:
                self._deliver(n.name, FenceDone(c.target, ok, "powered off" if ok else "timeout"))

        self.at(self.now + self.fence_delay, done)

    def _ask(self, n: NodeState, c: AskArbiter) -> None:
        mode = self.cluster.arbitration.mode
        engine = n.engine
        answers: list[tuple[ArbiterOutcome, str | None, int]]
        if n.arbiter_cut:
            if c.request not in (ArbiterRequest.CLAIM, ArbiterRequest.RENEW):
                return
            answers = [(ArbiterOutcome.UNREACHABLE, None, 0)]
            delay = ARBITER_TIMEOUT
        elif mode is ArbitrationMode.WITNESS:
            outcome = self.witness.request(n.name, c.request, self.now)
            answers = [] if outcome is None else [(outcome, None, 0)]
            delay = 0.005
        elif mode is ArbitrationMode.DISK:
            answers = self.disk.request(n.name, c.request, c.peer, c.token)
            delay = 0.005
        else:
            return

        def done() -> None:
            if n.engine is not engine:
                return
            for outcome, peer, token in answers:
                self._deliver(n.name, ArbiterAnswer(outcome, c.at, peer, token=token))

        if answers:
            self.at(self.now + delay, done)

    def _check_s1(self) -> None:
        for r, h in self.holders.items():
            if len(h) > 1:
                self.violations.append((self.now, r, frozenset(h)))


def started_pair(
    cluster: Cluster,
    settle: float = 5.0,
    net_delay: float = 0.001,
    options: EngineOptions | None = None,
) -> World:
    """Both nodes booted together and settled: alpha (higher priority) active."""
    w = World(cluster, net_delay=net_delay, options=options)
    for name in cluster.node_names:
        w.boot(name)
    w.run_until(settle)
    return w


def first_at(w: World, node: str, rule: str, kind: type | None = None) -> float | None:
    """World time of the first command of `node` with this Reason.rule (None: never)."""
    for e in w.commands(node, kind):
        reason = getattr(e.command, "reason", None)
        if reason is not None and reason.rule == rule and not isinstance(e.command, SendHeartbeat):
            return e.t
    return None


def starts(w: World, node: str) -> list[str]:
    """The resources `node` was asked to start, in order."""
    return [
        e.command.resource
        for e in w.commands(node, RunResource)
        if isinstance(e.command, RunResource) and e.command.action is Action.START
    ]


C = TypeVar("C")


def of(w: World, node: str | None, kind: type[C]) -> list[tuple[float, C]]:
    """(time, command) of every logged command of one type, of one node when given."""
    return [
        (e.t, e.command)
        for e in w.log
        if (node is None or e.node == node) and isinstance(e.command, kind)
    ]
