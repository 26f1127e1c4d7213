"""Faults: named injections on a World, each recorded with its kind for the report.

Every fault says whether the configuration is meant to ride it out (benign): L2
then forbids a takeover that only benign faults could explain.
"""

from __future__ import annotations

from collections.abc import Callable

from hotstandby.core.cluster import LinkKind
from hotstandby.core.messages import Action, AdminAction
from hotstandby.sim.history import INF
from hotstandby.sim.network import Path
from hotstandby.sim.resources import Mode
from hotstandby.sim.world import SimNode, World

# A network state is ridden out when the chance that every path between two nodes
# loses a whole dead time's worth of heartbeats stays below this.
RIDE_OUT_CHANCE = 1e-9


class Faults:
    """Fault injection on one world; `gen` retires heals scheduled before heal_all."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.gen = 0
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------ bookkeeping

    def _note(self, kind: str, target: str, duration: float, benign: bool = False) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.w.record(kind, target, self.w.now + duration, benign)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        gen = self.gen

        def run(_a: object, _b: object) -> None:
            if gen == self.gen:
                fn()

        self.w.at(self.w.now + delay, run)

    def _beats(self) -> int:
        t = self.w.cluster.timers
        return max(1, int(t.dead_time / t.interval) - 1)

    def network_rides_out(self) -> bool:
        """Whether heartbeats still cross between every pair, with overwhelming odds."""
        w = self.w
        dead = w.cluster.timers.dead_time
        beats = self._beats()
        for p in w.net.paths.values():
            if p.src > p.dst:
                continue
            for s, d in ((p.src, p.dst), (p.dst, p.src)):
                chance = 1.0
                for q in w.net.pair(s, d):
                    slow = q.delay + q.jitter >= dead / 2
                    chance *= 1.0 if q.cut or slow else q.drop**beats
                if chance >= RIDE_OUT_CHANCE:
                    return False
        return True

    # ------------------------------------------------------------ node faults

    def power_loss(self, n: SimNode, restart_after: float | None) -> None:
        """Power off at once (holds nothing); back after `restart_after`, or never if None."""
        self._note("power_loss", n.name, INF if restart_after is None else restart_after)
        if n.powered:
            self.w.power_off(n, restart_after)
        else:
            n.power_token += 1  # a pending restart is cancelled
            if restart_after is not None:
                self.w.at(self.w.now + restart_after, self.w.power_on, n, n.power_token)

    def agent_crash(self, n: SimNode) -> None:
        """The agent process dies; resources stay held (the watchdog, if any, resets)."""
        self._note("agent_crash", n.name, self.w.watchdog or 5.0)
        self.w.stop_agent(n)

    def freeze(self, n: SimNode, duration: float) -> None:
        """The node processes nothing for `duration`, then catches up."""
        t = self.w.cluster.timers
        benign = duration + 2 * t.interval < t.dead_time and self.network_rides_out()
        self._note("freeze", n.name, duration, benign)
        self.w.freeze(n, duration)

    # ------------------------------------------------------------ network faults

    def _paths(self, link: str | None, src: int | None, dst: int | None) -> list[Path]:
        return [
            p
            for p in self.w.net.paths.values()
            if (link is None or p.link == link)
            and (src is None or p.src == src)
            and (dst is None or p.dst == dst)
        ]

    def cut(
        self,
        kind: str,
        duration: float,
        link: str | None = None,
        src: int | None = None,
        dst: int | None = None,
    ) -> None:
        """Cut the matching paths (None matches all) for `duration`."""
        paths = self._paths(link, src, dst)
        for p in paths:
            p.cut += 1
        self._note(kind, link or "all", duration, self.network_rides_out())

        def heal() -> None:
            for p in paths:
                p.cut = max(0, p.cut - 1)

        self._later(duration, heal)

    def degrade(
        self,
        duration: float,
        link: str | None,
        drop: float,
        delay: float = 0.0,
        jitter: float = 0.0,
        dup: float = 0.0,
    ) -> None:
        """Loss, delay, jitter (reordering) and duplicates on one link or all."""
        paths = self._paths(link, None, None)
        tokens = [
            (p, p.set_quality(drop, p.base_delay + delay, p.base_jitter + jitter, dup))
            for p in paths
        ]
        self._note("link_loss", link or "all", duration, self.network_rides_out())

        def heal() -> None:
            for p, tok in tokens:
                p.clear_quality(tok)

        self._later(duration, heal)

    def flap(self, link: str, period: float, duration: float) -> None:
        """Cut and restore one link every `period` for `duration`."""
        paths = self._paths(link, None, None)
        self._note("link_flap", link, duration, self._rides_out_without(paths))
        end = self.w.now + duration

        def toggle(down: bool) -> None:
            for p in paths:
                p.cut = max(0, p.cut + (1 if down else -1))
            if down or self.w.now + period < end:
                self._later(period, lambda: toggle(not down))

        toggle(True)

    def _rides_out_without(self, paths: list[Path]) -> bool:
        for p in paths:
            p.cut += 1
        ok = self.network_rides_out()
        for p in paths:
            p.cut -= 1
        return ok

    # ------------------------------------------------------------ devices

    def resource_mode(
        self, n: SimNode, resource: str, action: Action, mode: Mode, duration: float
    ) -> None:
        """Make a start or stop of `resource` on `n` slow, failing or hanging."""
        key = (n.idx, resource, action)
        self.w.res.modes[key] = mode
        kind = f"{action.value}_{mode.value}"
        self._note(kind, f"{n.name}:{resource}", duration)

        def heal() -> None:
            self.w.res.modes.pop(key, None)

        self._later(duration, heal)

    def monitor_fail(self, n: SimNode, resource: str, duration: float) -> None:
        """The resource's monitor on `n` reports FAILED while it is held."""
        key = (n.idx, resource)
        self.w.res.monitor_fault.add(key)
        self._note("monitor_fail", f"{n.name}:{resource}", duration)
        self._later(duration, lambda: self.w.res.monitor_fault.discard(key))

    def fence_device(self, mode: str, duration: float) -> None:
        """The fence device fails or is slow (past the fence timeout) for a while."""
        self.w.fence_mode = mode
        self._note(f"fence_{mode}", "fence", duration)

        def heal() -> None:
            self.w.fence_mode = "normal"

        self._later(duration, heal)

    def arbiter_unreachable(self, n: SimNode | None, duration: float) -> None:
        """The arbiter (witness or disk) cannot be reached by `n` (None: by anyone)."""
        idxs = [n.idx] if n else [m.idx for m in self.w.nodes]
        for i in idxs:
            self.w.arbiter_cut[i] += 1
        self._note("arbiter_unreachable", n.name if n else "all", duration)

        def heal() -> None:
            for i in idxs:
                self.w.arbiter_cut[i] = max(0, self.w.arbiter_cut[i] - 1)

        self._later(duration, heal)

    def disk_slow(self, n: SimNode, delay: float, duration: float) -> None:
        """The shared disk answers `n` only after `delay`."""
        self.w.disk_delay[n.idx] = delay
        self._note("disk_slow", n.name, duration)

        def heal() -> None:
            self.w.disk_delay[n.idx] = 0.0

        self._later(duration, heal)

    def disk_unreachable(self, n: SimNode, duration: float) -> None:
        """`n` loses the shared disk: its disk arbiter and its disk heartbeat link."""
        disk_links = {lk.name for lk in self.w.cluster.links if lk.kind is LinkKind.DISK}
        paths = [
            p for p in self.w.net.paths.values() if p.link in disk_links and n.idx in (p.src, p.dst)
        ]
        for p in paths:
            p.cut += 1
        self.w.arbiter_cut[n.idx] += 1
        self._note("disk_unreachable", n.name, duration)

        def heal() -> None:
            for p in paths:
                p.cut = max(0, p.cut - 1)
            self.w.arbiter_cut[n.idx] = max(0, self.w.arbiter_cut[n.idx] - 1)

        self._later(duration, heal)

    def drift_at_limit(self, fast: SimNode | None = None) -> None:
        """Set every clock's rate to the configured limit, `fast` ahead and the others behind."""
        rho = self.w.cluster.timers.max_drift
        for m in self.w.nodes:
            # Keep the local reading continuous when the rate changes.
            reading = m.clock.local(self.w.now)
            m.clock.rate = 1.0 + rho if (m is fast or (fast is None and m.idx == 0)) else 1.0 - rho
            m.clock.restart(self.w.now, reading)
        self._note("clock_drift_limit", "all", INF, benign=True)

    def admin(
        self, n: SimNode, action: AdminAction, target: str | None = None, undo: float = 0.0
    ) -> None:
        """An operator's request; STANDBY and MAINTENANCE_ON are undone after `undo`."""
        self._note(f"admin_{action.value}", n.name, undo)
        self.w.admin(n, action, target)
        back = {
            AdminAction.STANDBY: AdminAction.ONLINE,
            AdminAction.MAINTENANCE_ON: AdminAction.MAINTENANCE_OFF,
        }.get(action)
        if back is not None and undo > 0:
            self._later(undo, lambda: self.w.admin(n, back, target))

    # ------------------------------------------------------------ phases

    def heal_all(self) -> None:
        """End every fault: the liveness phase begins (stable faults are applied after)."""
        w = self.w
        self.gen += 1
        w.heal_world()
        for n in w.nodes:
            if n.frozen:
                w.resume(n)
            if not n.powered:
                w.power_on(n)
            elif not n.running:
                w.start_agent(n)
        for n in w.nodes:
            w.admin(n, AdminAction.MAINTENANCE_OFF)
            w.admin(n, AdminAction.ONLINE, n.name)
            w.admin(n, AdminAction.CLEANUP)
