"""Golden scenarios: a small text format of timed events for ONE engine, and its rendering.

A scenario file::

    # what it shows
    cluster mode=fence nodes=alpha:200,beta:100 links=net,serial resources=ip,vol,db
    timers interval=0.5 warn=1 dead=2 initial_dead=4 lease=6
    policies failback=yes failback_delay=10
    arbitration fence_delay=2 watchdog=1
    node beta
    ---
    0.000 boot 42 [epoch=N] [was_active]
    0.000 auto probe=stopped [hold=db:stop,monitor]   answer every RunResource at once,
                                        but those held for explicit `resource` lines
    0.100 peer alpha role=active epoch=1 holds=yes [links=net] [every=0.5] [lease_ok=yes ...]
    0.100 peer alpha silent             the peer stops sending
    0.200 heartbeat net alpha role=standby holds=no [heard=none] [seq=N]
    1.000 run 5.0                       Tick at every deadline (and peer beats) up to 5.0
    1.000 tick
    1.000 resource ip start ok
    1.000 fence alpha ok|failed
    1.000 arbiter granted [peer=alpha]  (sent_at: the engine's latest AskArbiter.at)
    1.000 admin switchover [target]

The output holds, per step, the commands it produced, one a line with the reason;
explicit input lines are echoed with a leading `>`, so the file reads as a timeline.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace
from pathlib import Path

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
from hotstandby.core.engine import Engine
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AdminRequest,
    ArbiterAnswer,
    ArbiterOutcome,
    AskArbiter,
    Boot,
    Command,
    Event,
    Exit,
    FenceDone,
    FencePeer,
    Heartbeat,
    HeartbeatReceived,
    Intent,
    Outcome,
    Persist,
    RaiseAlarm,
    Rejected,
    Reply,
    ResourceDone,
    Role,
    RoleChanged,
    RunResource,
    SelfFence,
    SendHeartbeat,
    Tick,
)


class ScenarioError(ValueError):
    """A scenario file that does not parse."""


def _kv(words: list[str]) -> dict[str, str]:
    out = {}
    for w in words:
        if "=" not in w:
            out[w] = "yes"
        else:
            k, v = w.split("=", 1)
            out[k] = v
    return out


def _yes(v: str) -> bool:
    if v not in ("yes", "no"):
        raise ScenarioError(f"expected yes or no, found {v!r}")
    return v == "yes"


def parse_cluster(header: list[str]) -> tuple[Cluster, str]:
    """The cluster and the node the scenario drives, from the lines above `---`."""
    kv: dict[str, dict[str, str]] = {}
    node = ""
    for line in header:
        words = line.split()
        if words[0] == "node":
            node = words[1]
        elif words[0] in ("cluster", "timers", "policies", "arbitration"):
            kv[words[0]] = _kv(words[1:])
        else:
            raise ScenarioError(f"unknown header line: {line}")
    c = kv.get("cluster", {})
    nodes = tuple(
        Node(n.split(":")[0], int(n.split(":")[1]))
        for n in c.get("nodes", "alpha:200,beta:100").split(",")
    )
    names = [n.name for n in nodes]
    links = tuple(
        Link(name, LinkKind.UDP, frozen_map({n: f"192.0.2.{i + 1}" for i, n in enumerate(names)}))
        for name in c.get("links", "net,serial").split(",")
    )
    kinds = {"ip": ResourceKind.IP, "vol": ResourceKind.VOLUME}
    resources = tuple(
        Resource(r, kinds.get(r, ResourceKind.SERVICE), monitor_interval=5.0)
        for r in c.get("resources", "ip,vol,db").split(",")
    )
    mode = ArbitrationMode(c.get("mode", "fence"))
    a = kv.get("arbitration", {})
    arbitration = Arbitration(
        mode=mode,
        witness="198.51.100.9:7000" if mode is ArbitrationMode.WITNESS else None,
        device="/dev/loop7" if mode is ArbitrationMode.DISK else None,
        fence=(frozen_map({"agent": "fake"}),) if mode is ArbitrationMode.FENCE else (),
        fence_delay=float(a.get("fence_delay", "2")),
        watchdog_timeout=float(a.get("watchdog", "0")),
    )
    timers = Timers()
    t = kv.get("timers", {})
    names_map = {"warn": "warn_time", "dead": "dead_time"}
    timers = replace(timers, **{names_map.get(k, k): float(v) for k, v in t.items()})
    policies = Policies()
    for k, v in kv.get("policies", {}).items():
        current = getattr(policies, k)  # AttributeError names an unknown policy
        value: bool | int | float
        if isinstance(current, bool):
            value = _yes(v)
        elif isinstance(current, int):
            value = int(v)
        else:
            value = float(v)
        policies = replace(policies, **{k: value})  # type: ignore[arg-type]
    cluster = Cluster(
        name="golden",
        secret_file="/dev/null",
        nodes=nodes,
        links=links,
        resources=resources,
        arbitration=arbitration,
        timers=timers,
        policies=policies,
    )
    if node not in names:
        raise ScenarioError(f"`node` must name one of {names}")
    return cluster, node


@dataclass
class PeerScript:
    """What the driven engine hears from one peer, automatically."""

    fields: dict[str, str]
    every: float
    links: tuple[str, ...]
    next_at: float


@dataclass
class Runner:
    """Feeds one engine and writes what it did."""

    cluster: Cluster
    engine: Engine
    lines: list[str] = field(default_factory=list)
    now: float = 0.0
    peers: dict[str, PeerScript] = field(default_factory=dict)
    peer_seq: dict[str, int] = field(default_factory=dict)
    last_seq: int = 0
    last_ask: float = 0.0
    auto: bool = False
    probe_running: bool = False
    hold: tuple[str, ...] = ()  # "res:action" or "action" left for explicit answers
    outstanding: list[tuple[str, Action]] = field(default_factory=list)
    counter: int = 0

    # -------------------------------------------------------------- steps

    def step(self, event: Event, at: float) -> None:
        """Step the engine; render and auto-answer what it says."""
        self.now = at
        out = self.engine.step(event, at)
        for c in out:
            self.lines.append(f"{at:.3f} {render(c)}")
            if isinstance(c, SendHeartbeat):
                self.last_seq = c.beat.seq
            elif isinstance(c, AskArbiter):
                self.last_ask = c.at
            elif isinstance(c, RunResource):
                self.outstanding.append((c.resource, c.action))
        if self.auto:
            self.answer(at)

    def answer(self, at: float) -> None:
        """Answer every outstanding resource action that is not held for the script."""
        for res, action in list(self.outstanding):
            if (res, action) not in self.outstanding:
                continue  # answered meanwhile, by a nested step
            if action.value in self.hold or f"{res}:{action.value}" in self.hold:
                continue
            self.outstanding.remove((res, action))
            running = action is not Action.PROBE or self.probe_running
            outcome = Outcome.OK if running else Outcome.STOPPED
            self.step(ResourceDone(res, action, outcome), at)

    def beat(self, peer: str, link: str, fields: dict[str, str], at: float) -> None:
        """One heartbeat from `peer` on `link`."""
        self.peer_seq[peer] = int(fields.get("seq", self.peer_seq.get(peer, 0) + 1))
        heard = (
            ()
            if fields.get("heard") == "none" or not self.last_seq
            else ((self.engine.name, self.last_seq),)
        )
        intents: tuple[Intent, ...] = ()
        if "intent" in fields:
            self.counter += 1
            action, _, target = fields["intent"].partition(":")
            intents = (Intent(f"{peer}.i{self.counter}", AdminAction(action), target or None),)
        hb = Heartbeat(
            sender=peer,
            boot=int(fields.get("boot", "7")),
            seq=self.peer_seq[peer],
            epoch=int(fields.get("epoch", "0")),
            role=Role(fields.get("role", "standby")),
            holds=_yes(fields.get("holds", "no")),
            heard=heard,
            lease_ok=_yes(fields.get("lease_ok", "no")),
            offline=_yes(fields.get("offline", "no")),
            failed=_yes(fields.get("failed", "no")),
            maintenance=_yes(fields.get("maintenance", "no")),
            leaving=_yes(fields.get("leaving", "no")),
            handover_to=fields.get("handover_to"),
            intents=intents,
        )
        self.step(HeartbeatReceived(link, hb), at)

    def run(self, until: float) -> None:
        """Ticks at every deadline and the peers' heartbeats, in time order, up to `until`."""
        while True:
            queue: list[tuple[float, int, str]] = []
            deadline = self.engine.next_deadline()
            if deadline is not None:
                queue.append((max(deadline, self.now), 1, ""))
            for name, p in self.peers.items():
                queue.append((max(p.next_at, self.now), 0, name))
            heapq.heapify(queue)
            if not queue or queue[0][0] > until + 1e-9:
                break
            at, _, name = queue[0]
            if name:
                p = self.peers[name]
                p.next_at = at + p.every
                for link in p.links:
                    self.beat(name, link, p.fields, at)
            else:
                self.step(Tick(), at)
        self.now = until

    # -------------------------------------------------------------- lines

    def line(self, at: float, words: list[str]) -> None:
        """Apply one scenario line."""
        verb, args = words[0], words[1:]
        if at < self.now - 1e-9:
            raise ScenarioError(f"time goes back at {at}: {' '.join(words)}")
        self.run(at)  # whatever was due before this line happens first
        if verb == "run":
            self.run(float(args[0]))
            return
        self.lines.append(f"> {at:.3f} {' '.join(words)}")
        if verb == "boot":
            kv = _kv(args[1:])
            self.step(Boot(int(args[0]), int(kv.get("epoch", "0")), "was_active" in kv), at)
        elif verb == "auto":
            kv = _kv(args)
            self.auto = True
            self.probe_running = kv.get("probe", "stopped") == "ok"
            self.hold = tuple(h for h in kv.get("hold", "").split(",") if h)
            self.answer(at)
        elif verb == "peer":
            name = args[0]
            if args[1:] == ["silent"]:
                self.peers.pop(name, None)
                return
            fields = _kv(args[1:])
            links = tuple(
                fields.pop("links", ",".join(li.name for li in self.cluster.links)).split(",")
            )
            every = float(fields.pop("every", str(self.cluster.timers.interval)))
            self.peers[name] = PeerScript(fields, every, links, at)
            self.run(at)
        elif verb == "heartbeat":
            self.beat(args[1], args[0], _kv(args[2:]), at)
        elif verb == "tick":
            self.step(Tick(), at)
        elif verb == "resource":
            res, action, outcome = args
            act = Action(action)
            if (res, act) in self.outstanding:
                self.outstanding.remove((res, act))
            self.step(ResourceDone(res, act, Outcome(outcome)), at)
        elif verb == "fence":
            self.step(FenceDone(args[0], args[1] == "ok", args[1]), at)
        elif verb == "arbiter":
            kv = _kv(args[1:])
            sent = float(kv["sent_at"]) if "sent_at" in kv else self.last_ask
            self.step(ArbiterAnswer(ArbiterOutcome(args[0]), sent, kv.get("peer")), at)
        elif verb == "admin":
            self.counter += 1
            target = args[1] if len(args) > 1 else None
            self.step(AdminRequest(f"op{self.counter}", AdminAction(args[0]), target), at)
        else:
            raise ScenarioError(f"unknown event {verb!r}")


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def render(c: Command) -> str:
    """One command as a line: what, then its reason in brackets."""
    if isinstance(c, SendHeartbeat):
        b = c.beat
        flags = [
            name
            for name, on in (
                ("lease_ok", b.lease_ok),
                ("offline", b.offline),
                ("failed", b.failed),
                ("maintenance", b.maintenance),
                ("leaving", b.leaving),
            )
            if on
        ]
        extra = f" handover_to={b.handover_to}" if b.handover_to else ""
        extra += "".join(f" intent={i.action.value}" for i in b.intents)
        what = f"SendHeartbeat role={b.role.value} epoch={b.epoch} holds={_yn(b.holds)}"
        what += "".join(f" {f}" for f in flags) + extra
    elif isinstance(c, RunResource):
        what = f"RunResource {c.resource} {c.action.value}" + (" released" if c.released else "")
    elif isinstance(c, FencePeer):
        what = f"FencePeer {c.target} attempt={c.attempt}"
    elif isinstance(c, AskArbiter):
        what = f"AskArbiter {c.request.value} epoch={c.epoch}"
        what += f" peer={c.peer}" if c.peer else ""
    elif isinstance(c, RaiseAlarm):
        what = f"RaiseAlarm {c.severity.value} {c.kind.value} {c.message!r}"
    elif isinstance(c, Persist):
        what = f"Persist epoch={c.epoch} active={_yn(c.active)}"
    elif isinstance(c, Reply):
        what = f"Reply {'ok' if c.ok else 'refused'} {c.message!r}"
    elif isinstance(c, Rejected):
        what = f"Rejected {type(c.event).__name__}"
    elif isinstance(c, RoleChanged):
        what = f"RoleChanged {c.old.value} -> {c.new.value} epoch={c.epoch}"
    else:
        assert isinstance(c, SelfFence | Exit)
        what = type(c).__name__
    return f"{what}  [{c.reason}]"


def run_scenario(path: Path) -> str:
    """The rendered output of one scenario file."""
    text = path.read_text()
    header, sep, body = text.partition("\n---\n")
    if not sep:
        raise ScenarioError(f"{path}: no `---` line between the cluster and the events")
    strip = [ln.split("#", 1)[0].strip() for ln in header.splitlines()]
    cluster, node = parse_cluster([ln for ln in strip if ln])
    runner = Runner(cluster, Engine(cluster, node))
    for raw in body.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        runner.line(float(words[0]), words[1:])
    e = runner.engine
    runner.lines.append(f"end role={e.role.value} epoch={e.epoch}")
    return "\n".join(runner.lines) + "\n"
