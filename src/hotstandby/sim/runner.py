"""Run one seed (safety phase, then liveness phase) or many, and judge the history."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from hotstandby.core.cluster import Cluster
from hotstandby.sim.budget import liveness_budget, takeover_budget
from hotstandby.sim.chaos import schedule_random
from hotstandby.sim.checkers import Violation, check_all, good_spans
from hotstandby.sim.faults import Faults
from hotstandby.sim.history import History
from hotstandby.sim.world import EngineFactory, World

# Faults that follow from another fault rather than add one (for takeover timing).
CONSEQUENCES = frozenset({"boot", "fenced", "watchdog_reset", "self_fence"})


@dataclass(frozen=True)
class RunOptions:
    """How long each phase lasts and how hard the safety phase is."""

    safety: float = 60.0
    # L1 must hold from the deadline on for at least this long ("and staying so").
    settle: float = 30.0
    fault_gap: float = 4.0  # mean seconds between random faults
    weaken: bool = False


@dataclass
class SeedResult:
    """What one seed (or scenario run) found."""

    seed: int
    scenario: str | None
    sim_seconds: float
    events: int
    faults: dict[str, int]
    violations: list[Violation]
    takeover_times: list[float] = field(default_factory=list)
    stable_fault: str = "none"
    rejected: int = 0
    history: History | None = None  # kept only when asked (for --timeline)


def engine_factory(weaken: bool) -> EngineFactory:
    """A factory for the real engine, with the test-only weakened takeover rule if asked."""
    from hotstandby.core.engine import Engine, EngineOptions  # noqa: PLC0415

    opts = EngineOptions(weaken_takeover_rule=weaken)

    def make(cluster: Cluster, node: str) -> Engine:
        return Engine(cluster, node, opts)

    return make


def takeover_times(h: History) -> list[float]:
    """Seconds from each loss of the single active node to the next single active.

    Only clean samples count: the active was alone and complete when it died, and no
    other fault (besides the loss's own consequences) happened before the recovery.
    """
    spans = good_spans(h)
    out: list[float] = []
    for f in h.faults:
        if f.kind not in ("power_loss", "agent_crash"):
            continue
        before = [s for s in spans if s[0] < f.t <= s[1] and s[2] == f.target]
        after = [s for s in spans if s[0] >= f.t and s[0] > before[0][0]] if before else []
        if not after:
            continue
        back = after[0][0]
        others = [
            g for g in h.faults if f.t < g.t <= back and g.kind not in CONSEQUENCES and g is not f
        ]
        if not others:
            out.append(back - f.t)
    return out


def _error(seed: int, t: float, exc: BaseException) -> Violation:
    tb = traceback.format_exception(exc)
    return Violation("ENGINE", t, f"exception: {exc!r}\n" + "".join(tb[-6:]))


def run_seed(
    cluster: Cluster,
    seed: int,
    opts: RunOptions,
    factory: EngineFactory | None = None,
    keep_history: bool = False,
) -> SeedResult:
    """One seed: boot, random faults for opts.safety seconds, then heal and check liveness."""
    w = World(cluster, seed, factory or engine_factory(opts.weaken))
    f = Faults(w)
    rng = w.rng
    h = w.history
    stable = "none"
    try:
        if rng.random() < 0.25:
            f.drift_at_limit(rng.choice(w.nodes))
        for n in w.nodes:
            w.at(3.0 * rng.random(), w.power_on, n)
        schedule_random(f, 1.0, opts.safety, opts.fault_gap)
        w.run_until(opts.safety)
        f.heal_all()
        x = rng.random()
        if x < 0.25 and len(cluster.links) > 1:
            stable = "one_link_cut"
            f.cut("link_cut", float("inf"), link=rng.choice(cluster.links).name)
        elif x < 0.5:
            stable = "node_off"
            f.power_loss(rng.choice(w.nodes), None)
        h.liveness_start = opts.safety
        h.budget = liveness_budget(cluster, 0.0, max(0.0, w.busy_until - w.now))
        w.run_until(opts.safety + h.budget + opts.settle)
        violations = check_all(h)
    except Exception as exc:  # an engine crash is a finding, not a simulator crash
        violations = [_error(seed, w.now, exc)]
    return SeedResult(
        seed=seed,
        scenario=None,
        sim_seconds=w.now,
        events=w.stats["events"],
        faults=dict(f.counts),
        violations=violations,
        takeover_times=takeover_times(h),
        stable_fault=stable,
        rejected=len(h.rejected),
        history=h if keep_history else None,
    )


def run_many(
    cluster: Cluster,
    seeds: range | list[int],
    opts: RunOptions,
    factory: EngineFactory | None = None,
    progress: Callable[[SeedResult], None] | None = None,
) -> list[SeedResult]:
    """Run every seed in turn."""
    out = []
    fac = factory or engine_factory(opts.weaken)
    for s in seeds:
        r = run_seed(cluster, s, opts, fac)
        out.append(r)
        if progress is not None:
            progress(r)
    return out


def budget_of(cluster: Cluster) -> tuple[float, float]:
    """(takeover budget, liveness budget) for the report."""
    return takeover_budget(cluster), liveness_budget(cluster, 0.0)
