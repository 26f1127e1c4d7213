"""The named scenario catalogue: small fault scripts on a timeline, read from scenarios/*.toml.

A scenario names the nodes by role ("active", "standby": whoever holds those roles
when the script starts) and the links by position ("first", "all"), so one script
fits any two-node cluster file. Each says what must happen; `run_scenario` checks
it along with S1, L1 and L2.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from hotstandby.config.durations import parse_duration
from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import Action, AdminAction
from hotstandby.sim.budget import liveness_budget, takeover_budget
from hotstandby.sim.checkers import Violation, check_all, takeovers
from hotstandby.sim.faults import Faults
from hotstandby.sim.history import INF
from hotstandby.sim.resources import Mode
from hotstandby.sim.runner import SeedResult, engine_factory, takeover_times
from hotstandby.sim.world import EngineFactory, SimNode, World

EXPECT_TAKEOVER = ("required", "forbidden", "any")
EXPECT_AT_END = ("same", "other", "any", "none")
BOOTS = ("together", "staggered", "alone")


@dataclass(frozen=True)
class Step:
    """One fault of the script, `at` seconds after the script starts."""

    at: float
    fault: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A named fault script and what must come of it."""

    name: str
    summary: str
    steps: tuple[Step, ...]
    boot: str = "together"
    settle: bool = True  # wait for one active before the script starts
    takeover: str = "any"
    active_at_end: str = "any"
    # L1 counts its budget from this long after the script starts (None: not checked).
    l1_after: float | None = 0.0
    duration: float = 60.0
    l2: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)


class ScenarioError(ValueError):
    """A scenario file that does not say what it must."""


def _dur(raw: dict[str, Any], key: str, default: float | None = None) -> float | None:
    if key not in raw:
        return default
    return parse_duration(raw[key])


def parse(name: str, text: str) -> Scenario:
    """Read one scenario from its TOML text."""
    raw = tomllib.loads(text)
    try:
        steps = tuple(
            Step(
                at=parse_duration(s.pop("at")),
                fault=str(s.pop("fault")),
                params=s,
            )
            for s in (dict(x) for x in raw.get("step", []))
        )
        sc = Scenario(
            name=str(raw.get("name", name)),
            summary=str(raw["summary"]),
            steps=steps,
            boot=str(raw.get("boot", "together")),
            settle=bool(raw.get("settle", True)),
            takeover=str(raw.get("takeover", "any")),
            active_at_end=str(raw.get("active_at_end", "any")),
            l1_after=None if raw.get("l1") is False else _dur(raw, "l1_after", 0.0),
            duration=_dur(raw, "duration", 60.0) or 60.0,
            l2=bool(raw.get("l2", True)),
        )
    except (KeyError, ValueError) as exc:
        raise ScenarioError(f"scenario {name}: {exc}") from exc
    if sc.takeover not in EXPECT_TAKEOVER or sc.active_at_end not in EXPECT_AT_END:
        raise ScenarioError(f"scenario {name}: bad takeover or active_at_end")
    if sc.boot not in BOOTS:
        raise ScenarioError(f"scenario {name}: boot must be one of {BOOTS}")
    return sc


def catalogue() -> dict[str, Scenario]:
    """Every scenario shipped in hotstandby/sim/scenarios/, by name."""
    out: dict[str, Scenario] = {}
    folder = resources.files("hotstandby.sim") / "scenarios"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            sc = parse(entry.name[:-5], entry.read_text(encoding="utf-8"))
            out[sc.name] = sc
    return out


# ---------------------------------------------------------------- running


class _Script:
    """Applies a scenario's steps to a world, resolving "active"/"standby" and link names."""

    def __init__(self, w: World, f: Faults, active: SimNode | None) -> None:
        self.w = w
        self.f = f
        self.active = active
        others = [n for n in w.nodes if n is not active]
        self.standby = others[0] if others else None

    def node(self, ref: str) -> SimNode:
        if ref == "active":
            if self.active is None:
                raise ScenarioError("the script names the active node, but none settled")
            return self.active
        if ref == "standby":
            assert self.standby is not None
            return self.standby
        return self.w.by_name[ref]

    def link(self, ref: str | None) -> str | None:
        links = self.w.cluster.links
        if ref is None or ref == "all":
            return None
        if ref == "first":
            return links[0].name
        if ref == "last":
            return links[-1].name
        return ref

    def resource(self, ref: str) -> str:
        res = self.w.cluster.resources
        return res[-1].name if ref == "last" else res[0].name if ref == "first" else ref

    def apply(self, step: Step) -> None:
        p = step.params
        f = self.f
        dur = parse_duration(p["duration"]) if "duration" in p else INF
        kind = step.fault
        if kind == "power_loss":
            after = parse_duration(p["restart_after"]) if "restart_after" in p else None
            f.power_loss(self.node(p.get("node", "active")), after)
        elif kind == "agent_crash":
            f.agent_crash(self.node(p.get("node", "active")))
        elif kind == "freeze":
            d = dur
            if "dead_times" in p:
                d = float(p["dead_times"]) * self.w.cluster.timers.dead_time
            f.freeze(self.node(p.get("node", "active")), d)
        elif kind == "cut":
            src = dst = None
            if "from" in p:
                src = self.node(p["from"]).idx
            if "to" in p:
                dst = self.node(p["to"]).idx
            label = "asymmetric_cut" if src is not None else "link_cut"
            link = self.link(p.get("link", "all"))
            if link is None and src is None:
                label = "link_cut_all"
            f.cut(label, dur, link=link, src=src, dst=dst)
        elif kind == "flap":
            link = self.link(p.get("link", "first"))
            assert link is not None
            f.flap(link, parse_duration(p.get("period", "700ms")), dur)
        elif kind == "loss":
            f.degrade(dur, self.link(p.get("link", "all")), drop=float(p["drop"]))
        elif kind == "fence":
            f.fence_device(str(p.get("mode", "failing")), dur)
        elif kind == "arbiter_unreachable":
            ref = p.get("node", "all")
            f.arbiter_unreachable(None if ref == "all" else self.node(ref), dur)
        elif kind == "disk_slow":
            f.disk_slow(self.node(p.get("node", "active")), parse_duration(p["delay"]), dur)
        elif kind == "disk_unreachable":
            f.disk_unreachable(self.node(p.get("node", "active")), dur)
        elif kind == "resource":
            f.resource_mode(
                self.node(p.get("node", "standby")),
                self.resource(p.get("resource", "last")),
                Action(p.get("action", "start")),
                Mode(p.get("mode", "failing")),
                dur,
            )
        elif kind == "admin":
            target = p.get("target")
            f.admin(
                self.node(p.get("node", "active")),
                AdminAction(p["action"]),
                self.node(target).name if target else None,
            )
        elif kind == "drift_at_limit":
            f.drift_at_limit(self.node(p.get("fast", "active")))
        else:
            raise ScenarioError(f"unknown fault {kind!r}")


def _boot(w: World, sc: Scenario) -> None:
    if sc.boot == "alone":
        # The least preferred node boots on its own: the others stay off.
        alone = max(w.nodes, key=lambda n: w.cluster.rank(n.name))
        w.at(0.0, w.power_on, alone)
        return
    for i, n in enumerate(w.nodes):
        delay = 0.0 if sc.boot == "together" else i * (1.0 + 2.0 * w.rng.random())
        w.at(delay, w.power_on, n)


def _settle(w: World, limit: float) -> SimNode | None:
    t = w.now
    while t < limit:
        t += 0.25
        w.run_until(t)
        a = w.single_active()
        if a is not None:
            # Let the standby see it and settle too.
            w.run_until(t + 2 * w.cluster.timers.dead_time)
            return w.single_active()
    return None


def run_scenario(
    cluster: Cluster,
    sc: Scenario,
    seed: int = 0,
    factory: EngineFactory | None = None,
    weaken: bool = False,
    keep_history: bool = False,
) -> SeedResult:
    """Run one scenario with `seed` driving the world; judge it by S1, L1, L2 and its own rules."""
    w = World(cluster, seed, factory or engine_factory(weaken))
    f = Faults(w)
    h = w.history
    _boot(w, sc)
    violations: list[Violation] = []
    budget = liveness_budget(cluster, 0.0, 0.0)
    try:
        first: SimNode | None = None
        if sc.settle:
            first = _settle(w, cluster.timers.initial_dead + budget)
            if first is None:
                violations.append(
                    Violation("SCENARIO", w.now, "no single active before the script")
                )
        t0 = w.now
        script = _Script(w, f, first)
        for step in sc.steps:
            w.at(t0 + step.at, lambda s, _b: script.apply(s), step)
        end = t0 + sc.duration
        if sc.l1_after is not None:
            h.liveness_start = t0 + sc.l1_after
            h.budget = budget
            end = max(end, h.liveness_start + budget + 20.0)
        w.run_until(end)
        found = check_all(h)
        if not sc.l2:
            found = [v for v in found if v.checker != "L2"]
        violations += found
        violations += _expectations(w, sc, first, t0)
    except Exception as exc:  # an engine crash is a finding
        violations.append(Violation("ENGINE", w.now, f"exception: {exc!r}"))
    return SeedResult(
        seed=seed,
        scenario=sc.name,
        sim_seconds=w.now,
        events=w.stats["events"],
        faults=dict(f.counts),
        violations=violations,
        takeover_times=takeover_times(h),
        rejected=len(h.rejected),
        history=h if keep_history else None,
    )


def _expectations(w: World, sc: Scenario, first: SimNode | None, t0: float) -> list[Violation]:
    out: list[Violation] = []
    h = w.history
    later = [t for t in takeovers(h) if t[0] >= t0]
    first_name = first.name if first else None
    if sc.takeover == "forbidden" and later:
        t, node, epoch = later[0]
        out.append(Violation("SCENARIO", t, f"takeover by {node} (epoch {epoch}) was forbidden"))
    if sc.takeover == "required":
        start = t0 + (sc.steps[0].at if sc.steps else 0.0)
        limit = start + takeover_budget(w.cluster)
        ok = [t for t in later if t[1] != first_name and t[0] <= limit]
        if not ok:
            out.append(
                Violation(
                    "SCENARIO",
                    limit,
                    f"no takeover by another node within {limit - start:.1f}s of the first fault",
                )
            )
    last = w.single_active()
    if sc.active_at_end == "none" and any(
        n.role is not None and n.role.value == "active" for n in w.nodes
    ):
        out.append(Violation("SCENARIO", w.now, "a node is active, but none should be"))
    if sc.active_at_end in ("same", "other"):
        want_same = sc.active_at_end == "same"
        if last is None or (last.name == first_name) != want_same:
            who = last.name if last else "nobody"
            out.append(
                Violation(
                    "SCENARIO",
                    w.now,
                    f"active at the end: {who}; expected the {sc.active_at_end} node"
                    f" (first active: {first_name})",
                )
            )
    return out
