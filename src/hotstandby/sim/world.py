"""The simulated world: a discrete-event loop that carries out every node's commands.

Real (simulated) time runs in a priority queue; each node's engine sees only its own
drifting local clock. The world keeps the ground truth the checkers judge: which node
holds which resource, and when (see History).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any, Protocol

from hotstandby.core import timing
from hotstandby.core.cluster import ArbitrationMode, Cluster
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
    RaiseAlarm,
    Rejected,
    ResourceDone,
    Role,
    RunResource,
    SelfFence,
    SendHeartbeat,
    Tick,
)
from hotstandby.sim.arbiter import DiskSlots, Witness
from hotstandby.sim.clock import LocalClock
from hotstandby.sim.history import FaultRecord, History, Holding, RoleSample
from hotstandby.sim.network import Network, jittered
from hotstandby.sim.resources import ResourceBehaviour

# The shell's bound on one arbiter request (witness round trip or disk I/O).
ARBITER_TIMEOUT = 0.5
# systemd restarts a crashed agent after this long (when no watchdog resets the machine).
AGENT_RESTART = (1.0, 5.0)
# A machine reset by a fence or the watchdog is back this long later.
REBOOT_DELAY = (5.0, 15.0)
# Ticks at one real instant beyond this mean the engine asks for a deadline it never clears.
MAX_TICKS_AT_ONE_INSTANT = 1000


class EngineLike(Protocol):
    """What the world needs of an engine (the real one, or a test's fake)."""

    role: Role
    epoch: int

    def step(self, event: Event, now: float) -> list[Command]:
        """Feed one event at local time `now`."""
        ...

    def next_deadline(self) -> float | None:
        """Local time of the next wanted Tick."""
        ...


EngineFactory = Callable[[Cluster, str], EngineLike]


class EngineStuckError(RuntimeError):
    """The engine keeps asking for a deadline that has already passed."""


class SimNode:
    """One machine: power, agent, clock, persisted state and what it holds now."""

    __slots__ = (
        "boots",
        "clock",
        "engine",
        "epoch",
        "frozen",
        "holds",
        "idx",
        "inc",
        "last_now",
        "name",
        "p_active",
        "p_epoch",
        "pending",
        "power_token",
        "powered",
        "role",
        "running",
        "tick_gen",
        "tick_local",
        "tick_real",
        "ticks_here",
    )

    def __init__(self, name: str, idx: int, clock: LocalClock) -> None:
        self.name = name
        self.idx = idx
        self.clock = clock
        self.engine: EngineLike | None = None
        self.powered = False
        self.running = False
        self.frozen = False
        self.pending: list[Event] = []
        # Bumped whenever the agent stops: answers addressed to an old agent are dropped.
        self.inc = 0
        self.power_token = 0
        self.tick_gen = 0
        self.tick_local: float | None = None
        self.tick_real = -1.0
        self.ticks_here = 0
        self.last_now = 0.0
        self.role: Role | None = None
        self.epoch = 0
        self.p_epoch = 0
        self.p_active = False
        self.boots = 0  # the persisted boot counter
        self.holds: dict[str, Holding] = {}


class World:
    """Every node, the network, the resources, the fence device and the arbiter."""

    def __init__(self, cluster: Cluster, seed: int, factory: EngineFactory) -> None:
        self.cluster = cluster
        self.seed = seed
        self.factory = factory
        self.rng = random.Random(seed)
        self.now = 0.0
        self._q: list[tuple[float, int, Callable[[Any, Any], None], Any, Any]] = []
        self._seq = 0
        names = cluster.node_names
        self.history = History(nodes=names, resources=tuple(r.name for r in cluster.resources))
        max_drift = cluster.timers.max_drift
        self.nodes = [
            SimNode(n, i, LocalClock(1.0 + max_drift * (2 * self.rng.random() - 1), 0.0))
            for i, n in enumerate(names)
        ]
        self.by_name = {n.name: n for n in self.nodes}
        self.net = Network(cluster)
        self.res = ResourceBehaviour(cluster.resources, len(names))
        self.mode = cluster.arbitration.mode
        lease = cluster.timers.lease
        self.witness = Witness(lease + timing.drift_margin(cluster, lease))
        self.disk = DiskSlots(names)
        # Per node: the arbiter (witness or disk) cannot be reached; extra disk delay.
        self.arbiter_cut = [0] * len(names)
        # A node's requests reach the arbiter in the order sent (one connection, or
        # sequence numbers the arbiter checks): a RELEASE overtaken by a later CLAIM
        # would otherwise free a lease its holder believes it kept.
        self.arbiter_last = [0.0] * len(names)
        self.disk_delay = [0.0] * len(names)
        self.fence_mode = "normal"  # normal | failing | slow
        self.fence_gen = 0
        self.watchdog = cluster.arbitration.watchdog_timeout
        self.admin_seq = 0
        # When the last start or stop issued so far finishes (for the liveness budget).
        self.busy_until = 0.0
        self.stats: dict[str, int] = {"events": 0, "replies_failed": 0, "self_fence": 0}
        self.handlers: dict[type, Callable[[SimNode, Any, float], None]] = {
            SendHeartbeat: self._send_heartbeat,
            RunResource: self._run_resource,
            FencePeer: self._fence,
            AskArbiter: self._ask_arbiter,
            Persist: self._persist,
            SelfFence: self._self_fence,
            RaiseAlarm: self._alarm,
            Rejected: self._rejected,
            Exit: self._exit,
        }

    # ------------------------------------------------------------ loop

    def at(self, t: float, fn: Callable[[Any, Any], None], a: Any = None, b: Any = None) -> None:
        """Run fn(a, b) at real time t."""
        self._seq += 1
        heapq.heappush(self._q, (t, self._seq, fn, a, b))

    def run_until(self, t_end: float) -> None:
        """Process every event up to real time t_end."""
        q = self._q
        pop = heapq.heappop
        n = 0
        while q and q[0][0] <= t_end:
            t, _, fn, a, b = pop(q)
            self.now = t
            fn(a, b)
            n += 1
        self.stats["events"] += n
        self.now = t_end
        self.history.end = t_end

    # ------------------------------------------------------------ feeding the engine

    def _step(self, n: SimNode, ev: Event, floor: float = 0.0) -> None:
        eng = n.engine
        assert eng is not None
        local = n.clock.local(self.now)
        # A tick must see at least its deadline despite rounding, and time never goes back.
        local = max(local, floor)
        local = max(local, n.last_now)
        n.last_now = local
        cmds = eng.step(ev, local)
        if eng.role is not n.role or eng.epoch != n.epoch:
            n.role, n.epoch = eng.role, eng.epoch
            self.history.roles.append(RoleSample(self.now, n.name, eng.role, eng.epoch))
        handlers = self.handlers
        for c in cmds:
            h = handlers.get(c.__class__)
            if h is not None:
                h(n, c, local)
                if not n.running:
                    return  # it stopped itself: the rest was never carried out
        self._arm(n)

    def _arm(self, n: SimNode) -> None:
        assert n.engine is not None
        d = n.engine.next_deadline()
        if d == n.tick_local:
            return
        n.tick_gen += 1
        n.tick_local = d
        if d is not None:
            rt = n.clock.real_at(d)
            self.at(rt if rt > self.now else self.now, self._tick, n, n.tick_gen)

    def _tick(self, n: SimNode, gen: int) -> None:
        if gen != n.tick_gen or not n.running or n.frozen:
            return  # superseded, or the resume re-arms it
        deadline = n.tick_local
        assert deadline is not None
        n.tick_local = None
        if self.now == n.tick_real:
            n.ticks_here += 1
            if n.ticks_here > MAX_TICKS_AT_ONE_INSTANT:
                raise EngineStuckError(f"{n.name} asks for Tick at {deadline} again and again")
        else:
            n.tick_real, n.ticks_here = self.now, 0
        self._step(n, Tick(), deadline)

    def deliver(self, n: SimNode, ev: Event) -> None:
        """Hand an event to the node's agent now (queued while frozen, lost while down)."""
        if not n.running:
            return
        if n.frozen:
            n.pending.append(ev)
            return
        self._feed(n, ev)

    def _feed(self, n: SimNode, ev: Event) -> None:
        if ev.__class__ is ResourceDone and ev.action is Action.STOP and ev.outcome is Outcome.OK:
            self._release(n, ev.resource)
        self._step(n, ev)

    def _answer(self, n: SimNode, inc_ev: tuple[int, Event]) -> None:
        inc, ev = inc_ev
        if inc == n.inc:
            self.deliver(n, ev)

    def _later(self, n: SimNode, delay: float, ev: Event) -> None:
        """Answer the current agent of n after `delay` (dropped if it stops meanwhile)."""
        self.at(self.now + delay, self._answer, n, (n.inc, ev))

    # ------------------------------------------------------------ ground truth

    def _hold(self, n: SimNode, res: str) -> None:
        if res not in n.holds:
            h = Holding(n.name, self.now)
            self.history.holdings[res].append(h)
            n.holds[res] = h

    def _release(self, n: SimNode, res: str) -> None:
        h = n.holds.pop(res, None)
        if h is not None:
            h.end = self.now

    def _note_down(self, n: SimNode) -> None:
        if n.role is not None:
            n.role = None
            self.history.roles.append(RoleSample(self.now, n.name, None, n.epoch))

    # ------------------------------------------------------------ commands

    def _send_heartbeat(self, n: SimNode, c: SendHeartbeat, _local: float) -> None:
        rng = self.rng
        nodes = self.nodes
        now = self.now
        for p in self.net.out[n.idx]:
            if p.cut or (p.drop and rng.random() < p.drop):
                continue
            ev = HeartbeatReceived(p.link, c.beat)
            dst = nodes[p.dst]
            self.at(now + jittered(rng, p), self.deliver, dst, ev)
            if p.dup and rng.random() < p.dup:
                self.at(now + jittered(rng, p) + p.delay, self.deliver, dst, ev)

    def _run_resource(self, n: SimNode, c: RunResource, _local: float) -> None:
        if c.action is Action.START or c.action is Action.STOP:
            if c.action is Action.START:
                # Held from the moment its start is issued: the conservative reading.
                self._hold(n, c.resource)
            delay, outcome = self.res.plan(self.rng, n.idx, c.resource, c.action)
            self.busy_until = max(self.busy_until, self.now + delay)
            self._later(n, delay, ResourceDone(c.resource, c.action, outcome))
            return
        # Monitor and probe read the ground truth when they finish.
        self.at(self.now + 0.001 + 0.02 * self.rng.random(), self._monitor_done, n, (n.inc, c))

    def _monitor_done(self, n: SimNode, inc_c: tuple[int, RunResource]) -> None:
        inc, c = inc_c
        if inc != n.inc:
            return
        if c.resource not in n.holds:
            outcome = Outcome.STOPPED
        elif (n.idx, c.resource) in self.res.monitor_fault:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.OK
        self.deliver(n, ResourceDone(c.resource, c.action, outcome))

    def _fence(self, n: SimNode, c: FencePeer, _local: float) -> None:
        target = self.by_name.get(c.target)
        timeout = self.cluster.timers.fence_timeout
        rng = self.rng
        if target is None or target is n or self.fence_mode == "failing":
            self._later(n, 0.2 + 1.8 * rng.random(), FenceDone(c.target, False, "fence failed"))
            return
        if self.fence_mode == "slow":
            self._later(n, timeout, FenceDone(c.target, False, "fence timed out"))
            act = timeout + 0.1 + 2.0 * rng.random()
        else:
            act = min(0.2 + 1.8 * rng.random(), timeout * 0.9)
        slow = self.fence_mode == "slow"
        self.at(self.now + act, self._fence_act, n, (self.fence_gen, target, slow))

    def _fence_act(self, n: SimNode, gen_target: tuple[int, SimNode, bool]) -> None:
        gen, target, slow = gen_target
        if not n.powered:
            return  # the fencing machine died before the device acted
        if gen != self.fence_gen:
            # The device was reset (the world healed) mid-fence: as the shell's
            # timeout would, report the attempt failed so the engine tries again.
            self._later(n, 0.01, FenceDone(target.name, False, "fence device reset"))
            return
        self.record("fenced", target.name, self.now, benign=False)
        self.power_off(
            target, REBOOT_DELAY[0] + (REBOOT_DELAY[1] - REBOOT_DELAY[0]) * self.rng.random()
        )
        if not slow:  # a slow device acts after the shell gave up on it (answered already)
            self._later(n, 0.01, FenceDone(target.name, True, "powered off"))

    def _ask_arbiter(self, n: SimNode, c: AskArbiter, _local: float) -> None:
        rng = self.rng
        local = c.at  # the answer's sent_at echoes the engine's own clock
        if self.mode is ArbitrationMode.WITNESS:
            delay = 0.001 + 0.01 * rng.random()
        elif self.mode is ArbitrationMode.DISK:
            delay = 0.002 + 0.01 * rng.random() + self.disk_delay[n.idx]
        else:
            delay = ARBITER_TIMEOUT + 1.0  # no arbiter configured: never answers
        if self.arbiter_cut[n.idx] or delay >= ARBITER_TIMEOUT:
            if c.request in (ArbiterRequest.CLAIM, ArbiterRequest.RENEW):
                self._later(n, ARBITER_TIMEOUT, ArbiterAnswer(ArbiterOutcome.UNREACHABLE, local))
            if delay < ARBITER_TIMEOUT + 1.0 and not self.arbiter_cut[n.idx]:
                # A slow disk still performs the write, after the shell gave up on it.
                self.at(self._in_order(n, delay), self._arbiter_arrive, n, (n.inc, c, local, False))
            return
        self.at(self._in_order(n, delay), self._arbiter_arrive, n, (n.inc, c, local, True))

    def _in_order(self, n: SimNode, delay: float) -> float:
        """When a request sent now with `delay` arrives, after every earlier one of n."""
        arrive = max(self.now + delay, self.arbiter_last[n.idx] + 1e-6)
        self.arbiter_last[n.idx] = arrive
        return arrive

    def _arbiter_arrive(self, n: SimNode, args: tuple[int, AskArbiter, float, bool]) -> None:
        inc, c, sent, answer = args
        if inc != n.inc or not n.powered:
            return
        if self.arbiter_cut[n.idx]:
            if answer and c.request in (ArbiterRequest.CLAIM, ArbiterRequest.RENEW):
                self._later(n, ARBITER_TIMEOUT, ArbiterAnswer(ArbiterOutcome.UNREACHABLE, sent))
            return
        back = 0.001 + 0.005 * self.rng.random()
        if self.mode is ArbitrationMode.WITNESS:
            outcome = self.witness.request(n.name, c.request, self.now)
            # RELEASE (and the disk's ACK) are fire-and-forget: no answer.
            if answer and outcome is not None:
                self._later(n, back, ArbiterAnswer(outcome, sent))
            return
        answers = self.disk.request(n.name, c.request, c.peer, c.token)
        if answer:
            for outcome, peer, token in answers:
                self._later(n, back, ArbiterAnswer(outcome, sent, peer, token=token))

    def _persist(self, n: SimNode, c: Persist, _local: float) -> None:
        n.p_epoch, n.p_active = c.epoch, c.active

    def _self_fence(self, n: SimNode, _c: SelfFence, _local: float) -> None:
        self.stats["self_fence"] += 1
        self.record("self_fence", n.name, self.now, benign=False)
        self.stop_agent(n)

    def _alarm(self, _n: SimNode, c: RaiseAlarm, _local: float) -> None:
        kind = c.kind.value
        self.history.alarms[kind] = self.history.alarms.get(kind, 0) + 1

    def _rejected(self, n: SimNode, c: Rejected, _local: float) -> None:
        if len(self.history.rejected) < 50:
            self.history.rejected.append((self.now, n.name, f"{c.event!r}: {c.reason}"))

    def _exit(self, n: SimNode, _c: Exit, _local: float) -> None:
        self.stop_agent(n)

    # ------------------------------------------------------------ machines and agents

    def record(self, kind: str, target: str, end: float, benign: bool = False) -> None:
        """Note a fault (or boot, or admin request) in the history."""
        self.history.faults.append(FaultRecord(self.now, kind, target, end, benign))

    def power_on(self, n: SimNode, token: int | None = None) -> None:
        """Switch the machine on (if off and `token` still current) and boot its agent."""
        if n.powered or (token is not None and token != n.power_token):
            return
        n.powered = True
        n.clock.restart(self.now, 10.0 + 50.0 * self.rng.random())
        self.start_agent(n)

    def start_agent(self, n: SimNode, token: int | None = None) -> None:
        """Start the agent on a powered machine: a new engine, a Boot event."""
        if not n.powered or n.running or (token is not None and token != n.inc):
            return
        self.record("boot", n.name, self.now)
        n.inc += 1
        n.engine = self.factory(self.cluster, n.name)
        n.running, n.frozen, n.pending = True, False, []
        n.tick_local, n.tick_gen = None, n.tick_gen + 1
        n.last_now = 0.0
        # Boot ids grow per node, as the agent's persisted boot counter makes them.
        n.boots += 1
        ident = (n.boots << 32) | self.rng.getrandbits(32)
        boot = Boot(boot=ident, epoch=n.p_epoch, was_active=n.p_active)
        self._step(n, boot)

    def power_off(self, n: SimNode, restart_after: float | None) -> None:
        """Cut the machine's power: it holds nothing from this instant; back later if asked."""
        if not n.powered:
            return
        n.powered = False
        self.stop_agent(n)
        for res in list(n.holds):
            self._release(n, res)
        n.power_token += 1
        if restart_after is not None:
            self.at(self.now + restart_after, self.power_on, n, n.power_token)

    def stop_agent(self, n: SimNode) -> None:
        """The agent process is gone; resources stay as they are."""
        if not n.running:
            return
        n.running = False
        n.frozen = False
        n.pending = []
        n.engine = None
        n.inc += 1
        n.tick_gen += 1
        self._note_down(n)
        if not n.powered:
            return
        if self.watchdog > 0:
            # Nobody feeds the watchdog any more: it resets the machine.
            self.at(self.now + self.watchdog, self._watchdog_reset, n, n.inc)
        else:
            lo, hi = AGENT_RESTART
            self.at(self.now + lo + (hi - lo) * self.rng.random(), self.start_agent, n, n.inc)

    def _watchdog_reset(self, n: SimNode, inc: int) -> None:
        if inc == n.inc and n.powered and not n.running:
            self.record("watchdog_reset", n.name, self.now)
            lo, hi = REBOOT_DELAY
            self.power_off(n, lo + (hi - lo) * self.rng.random())

    def freeze(self, n: SimNode, duration: float) -> None:
        """Stop the agent processing anything for `duration`; it keeps what it holds."""
        if not n.running or n.frozen:
            return
        n.frozen = True
        n.tick_gen += 1
        self.at(self.now + duration, self.resume, n, n.inc)
        if 0 < self.watchdog < duration:
            self.at(self.now + self.watchdog, self._watchdog_frozen, n, n.inc)

    def _watchdog_frozen(self, n: SimNode, inc: int) -> None:
        if n.frozen and inc == n.inc and n.powered:
            self.record("watchdog_reset", n.name, self.now)
            lo, hi = REBOOT_DELAY
            self.power_off(n, lo + (hi - lo) * self.rng.random())

    def resume(self, n: SimNode, inc: int | None = None) -> None:
        """End a freeze: queued events first (asyncio reads sockets before timers), then ticks."""
        if not n.frozen or (inc is not None and inc != n.inc):
            return
        n.frozen = False
        pending, n.pending = n.pending, []
        for ev in pending:
            if not n.running or n.frozen:
                return
            self._feed(n, ev)
        if n.running:
            n.tick_local = None
            self._arm(n)

    def admin(self, n: SimNode, action: AdminAction, target: str | None = None) -> None:
        """An operator's request to node n's control API."""
        self.admin_seq += 1
        self.deliver(n, AdminRequest(f"sim-{self.admin_seq}", action, target))

    def heal_world(self) -> None:
        """End every network, resource, fence and arbiter fault."""
        self.net.heal()
        self.res.heal()
        self.fence_mode = "normal"
        self.fence_gen += 1
        self.arbiter_cut = [0] * len(self.nodes)
        self.disk_delay = [0.0] * len(self.nodes)

    def single_active(self) -> SimNode | None:
        """The one node that is ACTIVE and holds everything, if exactly one is."""
        actives = [n for n in self.nodes if n.running and n.role is Role.ACTIVE]
        if len(actives) != 1:
            return None
        a = actives[0]
        return a if len(a.holds) == len(self.history.resources) else None
