"""Sum up many runs: seeds, simulated hours, faults by kind, violations with replay commands."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from hotstandby.sim.checkers import Violation
from hotstandby.sim.history import INF, History
from hotstandby.sim.runner import RunOptions, SeedResult


@dataclass
class Summary:
    """The totals over a batch of SeedResults."""

    file: str
    opts: RunOptions
    seeds: int = 0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    events: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    violations: list[tuple[int, str | None, Violation]] = field(default_factory=list)
    takeovers: list[float] = field(default_factory=list)
    worst_takeover: tuple[float, int, str | None] | None = None
    takeover_budget: float = 0.0
    liveness_budget: float = 0.0

    def add(self, r: SeedResult) -> None:
        """Fold one result in."""
        self.seeds += 1
        self.sim_seconds += r.sim_seconds
        self.events += r.events
        for k, v in r.faults.items():
            self.faults[k] = self.faults.get(k, 0) + v
        self.violations += [(r.seed, r.scenario, v) for v in r.violations]
        for t in r.takeover_times:
            self.takeovers.append(t)
            if self.worst_takeover is None or t > self.worst_takeover[0]:
                self.worst_takeover = (t, r.seed, r.scenario)

    def replay(self, seed: int, scenario: str | None) -> str:
        """The exact command that replays one seed."""
        args = ["hotstandby", "simulate", self.file, "--seed", str(seed)]
        if scenario:
            args += ["--scenario", scenario]
        default = RunOptions()
        if self.opts.weaken:
            args.append("--weaken-takeover-rule")
        if self.opts.safety != default.safety:
            args += ["--safety-seconds", f"{self.opts.safety:g}"]
        if self.opts.settle != default.settle:
            args += ["--settle-seconds", f"{self.opts.settle:g}"]
        if self.opts.fault_gap != default.fault_gap:
            args += ["--fault-gap", f"{self.opts.fault_gap:g}"]
        return shlex.join(args)

    def by_checker(self) -> dict[str, list[tuple[int, str | None, Violation]]]:
        """Violations grouped by the checker that found them."""
        out: dict[str, list[tuple[int, str | None, Violation]]] = {}
        for item in self.violations:
            out.setdefault(item[2].checker, []).append(item)
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, as plain data."""
        return {
            "file": self.file,
            "seeds": self.seeds,
            "simulated_hours": self.sim_seconds / 3600.0,
            "wall_seconds": self.wall_seconds,
            "speed": self.sim_seconds / self.wall_seconds if self.wall_seconds else None,
            "faults": dict(sorted(self.faults.items())),
            "violations": {
                checker: [
                    {
                        "seed": seed,
                        "scenario": sc,
                        "t": v.t,
                        "message": v.message,
                        "replay": self.replay(seed, sc),
                    }
                    for seed, sc, v in items
                ]
                for checker, items in sorted(self.by_checker().items())
            },
            "takeover": {
                "samples": len(self.takeovers),
                "worst_seconds": self.worst_takeover[0] if self.worst_takeover else None,
                "worst_seed": self.worst_takeover[1] if self.worst_takeover else None,
                "budget_seconds": self.takeover_budget,
            },
            "liveness_budget_seconds": self.liveness_budget,
        }

    def text(self, limit: int = 10) -> str:
        """A human-readable report."""
        lines = [
            f"seeds run:        {self.seeds}",
            f"simulated time:   {self.sim_seconds / 3600.0:.2f} h "
            f"({self.sim_seconds / max(self.wall_seconds, 1e-9):.0f}x real time, "
            f"{self.wall_seconds:.1f}s wall)",
            f"budgets:          takeover {self.takeover_budget:.1f}s, "
            f"liveness {self.liveness_budget:.1f}s",
            "faults injected:",
        ]
        width = max((len(k) for k in self.faults), default=0)
        lines += [f"  {k:<{width}}  {v}" for k, v in sorted(self.faults.items())]
        if self.worst_takeover:
            t, seed, sc = self.worst_takeover
            where = f"seed {seed}" + (f", scenario {sc}" if sc else "")
            lines.append(
                f"worst takeover:   {t:.2f}s over {len(self.takeovers)} clean samples ({where})"
            )
        else:
            lines.append("worst takeover:   no clean sample (no isolated loss of the active)")
        groups = self.by_checker()
        if not groups:
            lines.append("violations:       none")
        for checker, items in sorted(groups.items()):
            runs = {(s, sc) for s, sc, _ in items}
            lines.append(f"violations {checker}: {len(items)} in {len(runs)} run(s)")
            shown: set[tuple[int, str | None]] = set()
            for seed, sc, v in items:
                if (seed, sc) in shown:
                    continue
                shown.add((seed, sc))
                if len(shown) > limit:
                    lines.append(f"  ... and {len(runs) - limit} more run(s)")
                    break
                first = v.message.splitlines()[0]
                lines.append(f"  seed {seed}{' ' + sc if sc else ''} at {v.t:.3f}s: {first}")
                lines.append(f"    replay: {self.replay(seed, sc)}")
        return "\n".join(lines)


def dumps(summary: Summary) -> str:
    """The JSON report."""
    return json.dumps(summary.to_json(), indent=2)


def timeline(h: History) -> str:
    """One run's roles, faults and holdings in time order, for reading a replay."""
    rows: list[tuple[float, str]] = []
    for r in h.roles:
        role = r.role.value if r.role is not None else "down"
        rows.append((r.t, f"{r.node:<10} role {role} (epoch {r.epoch})"))
    for f in h.faults:
        span = "" if f.end == f.t else f" for {f.end - f.t:g}s"
        mark = " (ridden out)" if f.benign else ""
        rows.append((f.t, f"{f.target:<10} {f.kind}{span}{mark}"))
    for res, spans in h.holdings.items():
        for s in spans:
            rows.append((s.start, f"{s.node:<10} holds {res}"))
            if s.end != INF:
                rows.append((s.end, f"{s.node:<10} releases {res}"))
    if h.liveness_start != INF:
        rows.append((h.liveness_start, f"---------- liveness phase (budget {h.budget:.1f}s)"))
    rows.sort(key=lambda x: x[0])
    return "\n".join(f"{t:10.3f}  {text}" for t, text in rows)
