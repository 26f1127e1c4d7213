"""The properties of DESIGN.md as pure functions over a recorded History.

Each checker returns its violations; a test may feed any hand-made history.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotstandby.core.messages import Role
from hotstandby.sim.history import INF, FaultRecord, History

# More changes of active node than this within FLAP_WINDOW, beyond one per fault
# that could justify a change, is flapping.
FLAP_ALLOWANCE = 2
FLAP_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of a property, at real time `t`."""

    checker: str
    t: float
    message: str


def check_s1(h: History) -> list[Violation]:
    """S1: no two nodes hold the same resource at the same real instant."""
    out: list[Violation] = []
    for res, spans in h.holdings.items():
        open_: list[tuple[float, str, float]] = []  # (end, node, start)
        for s in sorted(spans, key=lambda x: x.start):
            if s.end <= s.start:
                continue  # held for no time at all
            open_ = [o for o in open_ if o[0] > s.start]
            for end, node, start in open_:
                if node != s.node:
                    out.append(
                        Violation(
                            "S1",
                            s.start,
                            f"{res} held by {node} [{start:.3f}, {_fmt(end)}) and by "
                            f"{s.node} [{s.start:.3f}, {_fmt(s.end)})",
                        )
                    )
                    break
            open_.append((s.end, s.node, s.start))
    out.sort(key=lambda v: v.t)
    return out


def good_spans(h: History) -> list[tuple[float, float, str]]:
    """Spans (start, end, node) when exactly one node is ACTIVE and holds every resource."""
    changes: list[tuple[float, int, str, Role | None, int]] = []
    for r in h.roles:
        changes.append((r.t, 0, r.node, r.role, 0))
    for spans in h.holdings.values():
        for s in spans:
            changes.append((s.start, 1, s.node, None, 1))
            if s.end != INF:
                changes.append((s.end, 1, s.node, None, -1))
    changes.sort(key=lambda c: c[0])
    role: dict[str, Role | None] = dict.fromkeys(h.nodes)
    held: dict[str, int] = dict.fromkeys(h.nodes, 0)
    need = len(h.resources)
    out: list[tuple[float, float, str]] = []
    cur: str | None = None
    since = 0.0
    i = 0
    while i < len(changes):
        t = changes[i][0]
        # Apply every change at this instant before judging it.
        while i < len(changes) and changes[i][0] == t:
            _, kind, node, new_role, delta = changes[i]
            if kind == 0:
                role[node] = new_role
            else:
                held[node] = held.get(node, 0) + delta
            i += 1
        actives = [n for n, r in role.items() if r is Role.ACTIVE]
        now_good = actives[0] if len(actives) == 1 and held[actives[0]] >= need else None
        if now_good != cur:
            if cur is not None:
                out.append((since, t, cur))
            cur, since = now_good, t
    if cur is not None:
        out.append((since, INF, cur))
    return out


def check_l1(h: History) -> list[Violation]:
    """L1: from liveness_start + budget to the end, exactly one node is active with everything."""
    if h.liveness_start == INF:
        return []
    deadline = h.liveness_start + h.budget
    spans = good_spans(h)
    last = spans[-1] if spans else None
    if last is None or last[1] < h.end:
        return [
            Violation(
                "L1",
                min(deadline, h.end),
                f"no single active node holding everything at the end ({_fmt(h.end)}s); "
                f"liveness began at {h.liveness_start:.3f}s with a budget of {h.budget:.3f}s",
            )
        ]
    if last[0] > deadline:
        return [
            Violation(
                "L1",
                last[0],
                f"{last[2]} became the single active only at {last[0]:.3f}s, after the "
                f"deadline {deadline:.3f}s (liveness from {h.liveness_start:.3f}s, "
                f"budget {h.budget:.3f}s)",
            )
        ]
    return []


def _justifies(f: FaultRecord, t: float, lookback: float) -> bool:
    return not f.benign and f.t <= t <= f.end + lookback


def takeovers(h: History) -> list[tuple[float, str, int]]:
    """(t, node, epoch) each time a node goes ACTIVE with an epoch no active had before."""
    best = -1
    out: list[tuple[float, str, int]] = []
    for r in sorted(h.roles, key=lambda x: x.t):
        if r.role is Role.ACTIVE and r.epoch > best:
            best = r.epoch
            out.append((r.t, r.node, r.epoch))
    return out


def check_l2(h: History) -> list[Violation]:
    """L2: no takeover for a fault the configuration rides out, and no flapping."""
    out: list[Violation] = []
    lookback = h.budget
    for t, node, epoch in takeovers(h):
        if not any(_justifies(f, t, lookback) for f in h.faults):
            benign = sorted({f.kind for f in h.faults if f.t <= t <= f.end + lookback})
            out.append(
                Violation(
                    "L2",
                    t,
                    f"takeover by {node} (epoch {epoch}) with no fault to justify it"
                    + (
                        f"; only faults meant to be ridden out: {', '.join(benign)}"
                        if benign
                        else ""
                    ),
                )
            )
    changes: list[float] = []
    last: str | None = None
    for r in sorted(h.roles, key=lambda x: x.t):
        if r.role is Role.ACTIVE and r.node != last:
            if last is not None:
                changes.append(r.t)
            last = r.node
    for i, t0 in enumerate(changes):
        j = i
        while j + 1 < len(changes) and changes[j + 1] <= t0 + FLAP_WINDOW:
            j += 1
        count = j - i + 1
        reasons = sum(1 for f in h.faults if not f.benign and t0 - lookback <= f.t <= changes[j])
        if count > FLAP_ALLOWANCE + reasons:
            out.append(
                Violation(
                    "L2",
                    t0,
                    f"flapping: {count} changes of active node within {FLAP_WINDOW:.0f}s "
                    f"from {t0:.3f}s with {reasons} fault(s) to justify them",
                )
            )
            break
    return out


CHECKERS = {"S1": check_s1, "L1": check_l1, "L2": check_l2}


def check_all(h: History) -> list[Violation]:
    """Every checker's violations, in time order."""
    out = [v for fn in CHECKERS.values() for v in fn(h)]
    out.sort(key=lambda v: v.t)
    return out


def _fmt(t: float) -> str:
    return "end" if t == INF else f"{t:.3f}"
