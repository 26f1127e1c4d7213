"""The safety phase's random faults: one every few seconds, each drawn from the world's RNG."""

from __future__ import annotations

from collections.abc import Callable

from hotstandby.core.messages import Action, AdminAction
from hotstandby.sim.faults import Faults
from hotstandby.sim.resources import Mode
from hotstandby.sim.world import SimNode


def _victim(f: Faults) -> SimNode:
    """Mostly the active node (faults there matter most), otherwise any node."""
    w = f.w
    active = [n for n in w.nodes if n.role is not None and n.role.value == "active"]
    if active and w.rng.random() < 0.6:
        return w.rng.choice(active)
    return w.rng.choice(w.nodes)


def _u(f: Faults, lo: float, hi: float) -> float:
    return lo + (hi - lo) * f.w.rng.random()


def _link(f: Faults) -> str:
    return f.w.rng.choice(f.w.cluster.links).name


def _power(f: Faults) -> None:
    f.power_loss(_victim(f), _u(f, 3.0, 30.0))


def _crash(f: Faults) -> None:
    f.agent_crash(_victim(f))


def _freeze(f: Faults) -> None:
    t = f.w.cluster.timers
    if f.w.rng.random() < 0.5:
        d = _u(f, 0.01, max(0.02, t.dead_time - 2 * t.interval - 0.01))
    else:
        d = _u(f, t.dead_time, 6 * t.dead_time)
    f.freeze(_victim(f), d)


def _cut_one(f: Faults) -> None:
    f.cut("link_cut", _u(f, 0.5, 20.0), link=_link(f))


def _cut_all(f: Faults) -> None:
    f.cut("link_cut_all", _u(f, 0.5, 15.0))


def _asymmetric(f: Faults) -> None:
    src = _victim(f).idx
    link = _link(f) if f.w.rng.random() < 0.3 else None
    f.cut("asymmetric_cut", _u(f, 0.5, 15.0), link=link, src=src)


def _loss(f: Faults) -> None:
    link = _link(f) if f.w.rng.random() < 0.6 else None
    f.degrade(
        _u(f, 2.0, 20.0),
        link,
        drop=_u(f, 0.05, 0.5),
        delay=_u(f, 0.0, 0.05),
        jitter=_u(f, 0.0, 0.1),
        dup=_u(f, 0.0, 0.1),
    )


def _flap(f: Faults) -> None:
    f.flap(_link(f), _u(f, 0.2, 2.0), _u(f, 3.0, 20.0))


def _resource(f: Faults) -> None:
    rng = f.w.rng
    res = rng.choice(f.w.cluster.resources).name
    action = rng.choice((Action.START, Action.STOP))
    mode = rng.choice((Mode.SLOW, Mode.FAILING, Mode.HANGING))
    f.resource_mode(rng.choice(f.w.nodes), res, action, mode, _u(f, 5.0, 40.0))


def _monitor(f: Faults) -> None:
    res = f.w.rng.choice(f.w.cluster.resources).name
    f.monitor_fail(_victim(f), res, _u(f, 1.0, 30.0))


def _fence(f: Faults) -> None:
    f.fence_device(f.w.rng.choice(("failing", "slow")), _u(f, 5.0, 40.0))


def _arbiter(f: Faults) -> None:
    n = _victim(f) if f.w.rng.random() < 0.7 else None
    f.arbiter_unreachable(n, _u(f, 0.5, 15.0))


def _disk_slow(f: Faults) -> None:
    f.disk_slow(_victim(f), _u(f, 0.05, 1.0), _u(f, 2.0, 20.0))


def _disk_lost(f: Faults) -> None:
    f.disk_unreachable(_victim(f), _u(f, 0.5, 15.0))


def _admin(f: Faults) -> None:
    rng = f.w.rng
    n = rng.choice(f.w.nodes)
    action = rng.choice((AdminAction.SWITCHOVER, AdminAction.STANDBY, AdminAction.MAINTENANCE_ON))
    target = n.name if action is AdminAction.STANDBY else None
    f.admin(n, action, target, undo=_u(f, 2.0, 20.0))


# (weight, fault): link faults are the commonest in the field, so they weigh most.
FAULTS: tuple[tuple[float, Callable[[Faults], None]], ...] = (
    (1.0, _power),
    (1.0, _crash),
    (1.5, _freeze),
    (2.0, _cut_one),
    (0.8, _cut_all),
    (0.8, _asymmetric),
    (1.5, _loss),
    (0.5, _flap),
    (0.8, _resource),
    (0.5, _monitor),
    (0.6, _fence),
    (1.0, _arbiter),
    (0.4, _disk_slow),
    (0.4, _disk_lost),
    (0.7, _admin),
)
_TOTAL = sum(w for w, _ in FAULTS)


def random_fault(f: Faults) -> None:
    """Inject one fault drawn by weight."""
    x = f.w.rng.random() * _TOTAL
    for weight, fn in FAULTS:
        x -= weight
        if x <= 0:
            fn(f)
            return
    FAULTS[-1][1](f)


def schedule_random(f: Faults, start: float, end: float, mean_gap: float) -> None:
    """Inject faults from `start` to `end`, `mean_gap` seconds apart on average."""
    w = f.w
    gen = f.gen

    def fire(_a: object, _b: object) -> None:
        if gen != f.gen:
            return
        random_fault(f)
        nxt = w.now + w.rng.expovariate(1.0 / mean_gap)
        if nxt < end:
            w.at(nxt, fire)

    first = start + w.rng.expovariate(1.0 / mean_gap)
    if first < end:
        w.at(first, fire)
