"""The fault suite: faults that try to make two nodes active at once, on the whole classic group.

Each case builds a fresh lab with the classic group (hotstandby.lab.classic) in one
arbitration mode, brings one node up active, starts the overlap checker
(hotstandby.lab.overlap), injects its fault, heals it, waits for the cluster to converge, and
gives a verdict: the overlaps seen (there must be none), the takeover time (from the fault to
a new active with every resource running, when the active changed), and whether the cluster
ended with exactly one active node.

A seed chooses the jitter: which node is active first, when in the heartbeat interval the
fault hits, how long a freeze or a cut lasts. `run_case(name, mode, seed)` replays a failure.

A heartbeat-only cluster (mode "none") on a full cut is expected to overlap: that case passes
when the checker DOES see the overlap, which shows the checker can see one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.lab.classic import DEAD_TIME, MODES, ClassicGroup, classic_group, other
from hotstandby.lab.disk import set_read_only
from hotstandby.lab.overlap import OverlapChecker, Sample
from hotstandby.lab.power import freeze_tree, process_tree
from hotstandby.lab.throttle import throttled
from hotstandby.lab.topology import FLOATING_IPV4

#: Seconds a cluster has to reach one active node with every resource running.
CONVERGE = 40.0
#: Seconds the end state must hold (one active, nothing overlapping) to count as settled.
SETTLE = 1.5
INTERVAL = 0.1  # the heartbeat interval of the suite's timers


@dataclass
class Run:
    """One repetition of a case: the group, the seeded random source and what happened."""

    group: ClassicGroup
    rng: random.Random
    first: str  # the node made active before the fault
    notes: list[str] = field(default_factory=list)
    fault_at: float = 0.0  # monotonic time of the fault
    restarted: set[str] = field(default_factory=set)

    @property
    def standby(self) -> str:
        """The node standing by before the fault."""
        return other(self.first)

    def note(self, text: str) -> None:
        """Record a step, with its time since the fault."""
        at = time.monotonic() - self.fault_at if self.fault_at else 0.0
        self.notes.append(f"t={at:7.3f}s {text}")

    def hold(self, low: float, high: float) -> float:
        """Wait a seeded time within [low, high] seconds; return it."""
        seconds = self.rng.uniform(low, high)
        time.sleep(seconds)
        return seconds


@dataclass(frozen=True)
class Case:
    """One fault of the suite."""

    name: str
    about: str
    modes: tuple[str, ...]  # the arbitration modes it applies to
    quick_mode: str  # the mode the CI quick set runs it with
    fault: Callable[[Run], None]
    boot_together: bool = False  # the fault is the start itself
    expect_overlap: frozenset[str] = frozenset()  # modes in which an overlap is expected
    fence_failing: bool = False


@dataclass(frozen=True)
class Result:
    """The verdict on one repetition."""

    case: str
    mode: str
    seed: int
    overlaps: tuple[str, ...]
    takeover: float | None  # seconds from the fault to a new active, when the active changed
    one_active: bool  # the cluster ended with exactly one active node
    expected_overlap: bool
    error: str = ""
    notes: tuple[str, ...] = ()
    timeline: tuple[str, ...] = ()
    seconds: float = 0.0
    arbitration_warnings: tuple[str, ...] = ()  # what `hotstandby check` warned of

    @property
    def passed(self) -> bool:
        """No overlap (or the expected one) and one active at the end, without error."""
        if self.error:
            return False
        if self.expected_overlap:
            return bool(self.overlaps) and self.one_active
        return not self.overlaps and self.one_active

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "case": self.case,
            "mode": self.mode,
            "seed": self.seed,
            "overlaps": list(self.overlaps),
            "takeover": self.takeover,
            "one_active": self.one_active,
            "expected_overlap": self.expected_overlap,
            "passed": self.passed,
            "error": self.error,
            "notes": list(self.notes),
            "timeline": list(self.timeline),
            "seconds": round(self.seconds, 3),
            "arbitration_warnings": list(self.arbitration_warnings),
        }


# ---------------------------------------------------------------------------- faults


def full_cut(run: Run, cut: bool) -> None:
    """Cut (or heal) every link between the nodes: heartbeat links and the LAN.

    In witness mode the LAN is the nodes' path to the witness, a third site both still
    reach: there only the heartbeat links are cut (the witness's own failure is a case).
    """
    lab, group = run.group.lab, run.group
    names = ["private"]
    if group.mode != "witness":
        names += [f"lan-{node}" for node in lab.node_names]
    for name in names:
        (lab.cut if cut else lab.heal)(name)
    (lab.cut_serial if cut else lab.heal_serial)()
    if "disk" in group.cluster.spec.links:
        for node in lab.node_names:
            (lab.cut_disk if cut else lab.heal_disk)(node)


def _private_cut(run: Run) -> None:
    run.group.lab.cut("private")
    run.note("private link cut")
    run.hold(2.0, 3.0)
    run.group.lab.heal("private")
    run.note("private link healed")


def _every_link_cut(run: Run) -> None:
    full_cut(run, True)
    run.note("every link cut")
    run.hold(5.0, 6.0)  # longer than a lease and a claim wait
    full_cut(run, False)
    run.note("healed")


def _asymmetric_cut(run: Run) -> None:
    # The standby hears nothing from the active; the active still hears the standby.
    # The serial line cannot drop one direction only, so it stays up: then only the private
    # link is cut, one way, and the serial line is cut both ways for the second half.
    lab = run.group.lab
    lab.cut("private", to=run.standby)
    run.note(f"private link cut toward {run.standby} only")
    run.hold(1.0, 2.0)
    lab.cut_serial()
    run.note("serial line cut")
    run.hold(3.0, 4.0)
    lab.heal_serial()
    lab.heal("private", to=run.standby)
    run.note("healed")


def _agent_tree(run: Run, node: str) -> list[int]:
    proc = run.group.cluster.agents[node]
    return process_tree([proc.pid]) if proc.alive() else []


def _freeze(run: Run) -> None:
    node = run.first
    frozen = freeze_tree(lambda: _agent_tree(run, node))
    run.note(f"{node} frozen ({len(frozen)} processes)")
    run.hold(3 * DEAD_TIME, 3 * DEAD_TIME + 0.3)
    for pid in frozen:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            continue  # fenced (powered off) while frozen
    run.note(f"{node} resumed")


def _power_loss_during_switchover(run: Run) -> None:
    group = run.group
    try:
        group.cluster.admin(run.first, "switchover", run.standby)
    except ControlError as exc:
        run.note(f"switchover refused: {exc}")
    run.note(f"switchover {run.first} -> {run.standby} asked")
    run.hold(0.0, 0.6)
    victim = run.rng.choice([run.first, run.standby])
    group.lab.power_loss(victim)
    run.note(f"{victim} lost power")


def _fence_fails(run: Run) -> None:
    _every_link_cut(run)


def _witness_down_cut(run: Run) -> None:
    group = run.group
    group.stop_witness()
    run.note("witness killed")
    run.hold(0.2, 0.5)
    full_cut(run, True)
    run.note("every link cut")
    run.hold(4.0, 5.0)  # beyond the lease: the active gives the group up, nobody may take it
    full_cut(run, False)
    group.start_witness()
    run.note("healed, witness restarted")


def _disk_slow(run: Run) -> None:
    group = run.group
    assert group.arbitration_device is not None
    with throttled(group.arbitration_device, _agent_tree(run, run.first)):
        run.note(f"arbitration disk throttled for {run.first}")
        full_cut(run, True)
        run.note("every link cut")
        run.hold(5.0, 6.0)
    full_cut(run, False)
    run.note("healed, throttle lifted")


def _disk_gone(run: Run) -> None:
    group = run.group
    assert group.arbitration_device is not None
    set_read_only(group.arbitration_device, True)
    run.note("arbitration disk gone (refuses writes)")
    try:
        run.hold(1.0, 2.0)
        full_cut(run, True)
        run.note("every link cut")
        run.hold(5.0, 6.0)
        full_cut(run, False)
    finally:
        set_read_only(group.arbitration_device, False)
    run.note("healed, disk back")


def _both_boot(run: Run) -> None:
    run.group.cluster.start_all()
    run.note("both agents started at once")


def _older_epoch(run: Run) -> None:
    group, node = run.group, run.first
    group.lab.power_loss(node)
    run.note(f"{node} lost power")
    group.cluster.wait_active(CONVERGE, other_than=node)
    run.note(f"{run.standby} active")
    group.lab.power_on(node)
    # A power cycle forgets the addresses; the lab's namespace keeps them (power_on only
    # reconnects), so take the floating IP off as the reboot would have.
    address = f"{FLOATING_IPV4}/24"
    group.lab.run(
        node, ["ip", "addr", "del", address, "dev", group.lab.node(node).lan_if], check=False
    )
    run.hold(0.0, 0.5)
    group.cluster.start(node)
    run.restarted.add(node)
    run.note(f"{node} back with its older epoch")


CASES: dict[str, Case] = {
    c.name: c
    for c in [
        Case("private_cut", "the private link cut", MODES, "fence", _private_cut),
        Case(
            "full_cut",
            "every link cut",
            MODES,
            "fence",
            _every_link_cut,
            expect_overlap=frozenset({"none"}),
        ),
        Case("asymmetric_cut", "a cut in one direction only", MODES, "witness", _asymmetric_cut),
        Case("freeze", "the active frozen for 3x the dead time, resumed", MODES, "disk", _freeze),
        Case(
            "power_loss_switchover",
            "power loss during a switchover",
            MODES,
            "fence",
            _power_loss_during_switchover,
        ),
        Case(
            "fence_fails",
            "the fence agent failing, every link cut",
            ("fence",),
            "fence",
            _fence_fails,
            fence_failing=True,
        ),
        Case(
            "witness_down_cut",
            "the witness down during a cut",
            ("witness",),
            "witness",
            _witness_down_cut,
        ),
        Case("disk_slow", "the shared disk slow during a cut", ("disk",), "disk", _disk_slow),
        Case("disk_gone", "the shared disk gone during a cut", ("disk",), "disk", _disk_gone),
        Case("both_boot", "both nodes booting at once", MODES, "fence", _both_boot, True),
        Case("older_epoch", "a node returning with an older epoch", MODES, "fence", _older_epoch),
    ]
}


# ---------------------------------------------------------------------------- running


def bring_up(run: Run) -> None:
    """Start the witness if any and both agents; wait for `run.first` (preferred) active."""
    group = run.group
    cluster = group.cluster
    if group.mode == "witness":
        group.start_witness()
    active = cluster.up(CONVERGE)
    if active != run.first:
        raise AssertionError(f"{active} became active, not the preferred {run.first}")
    if group.mode == "witness":
        cluster.wait_for(
            "the active node to hold the witness's lease",
            lambda: (s := cluster.status(run.first)) is not None and (s["lease_left"] or 0) > 1.5,
            CONVERGE,
        )


def actives(group: ClassicGroup) -> list[str]:
    """Nodes whose agent says it is active."""
    return [n for n, role in group.cluster.roles().items() if role == "active"]


def events(group: ClassicGroup, node: str) -> list[str]:
    """node's event history as lines (empty when its agent does not answer)."""
    try:
        answer = call(group.cluster.socket(node), {"op": "events", "limit": 400})
    except (ControlError, OSError, ValueError):
        return []
    return [
        f"{e.get('kind', '')} {e.get('rule', '')}: {e.get('message', '')}" for e in answer["events"]
    ]


def arbitration_warnings(config: Path) -> tuple[str, ...]:
    """The warnings `hotstandby check` gives about the file's arbitration."""
    done = subprocess.run(
        [sys.executable, "-m", "hotstandby", "check", "--json", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode not in (0, 2):
        raise RuntimeError(f"hotstandby check {config} failed: {done.stderr.strip()}")
    warnings = json.loads(done.stdout).get("warnings", [])
    return tuple(str(w["message"]) for w in warnings if str(w.get("key", "")).startswith("arb"))


def run_case(
    name: str, mode: str, seed: int, prefix: str = "hfs", *, history: bool = False
) -> Result:
    """Run one repetition of case `name` in arbitration mode `mode`, jittered by `seed`.

    A lab that could not be built or removed is a failed repetition, with the error. The
    notes hold both nodes' event histories when it failed, or always with `history`.
    """
    case = CASES[name]
    if mode not in case.modes:
        raise ValueError(f"case {name} does not apply to mode {mode} (only {case.modes})")
    began = time.monotonic()
    try:
        return _run_case(case, mode, seed, prefix, history)
    except Exception as exc:  # the lab itself failed: reported with the seed
        return Result(
            case=name,
            mode=mode,
            seed=seed,
            overlaps=(),
            takeover=None,
            one_active=False,
            expected_overlap=mode in case.expect_overlap,
            error=f"lab: {type(exc).__name__}: {exc}"[:2000],
            seconds=time.monotonic() - began,
        )


def _run_case(case: Case, mode: str, seed: int, prefix: str, history: bool) -> Result:
    name = case.name
    rng = random.Random(f"{name}/{mode}/{seed}")
    began = time.monotonic()
    first = rng.choice(["alpha", "beta"])
    with classic_group(prefix, mode, fence_failing=case.fence_failing, preferred=first) as group:
        # Booting together, no node is active before the fault: any active one took over.
        run = Run(group, rng, first="" if case.boot_together else first)
        checker = OverlapChecker(group.agent_pids, group.watched())
        warned = arbitration_warnings(group.cluster.config)
        takeover: float | None = None
        error = ""
        one = False
        try:
            if not case.boot_together:
                bring_up(run)
            checker.start()
            time.sleep(rng.uniform(0.2, 0.2 + INTERVAL))  # where in the interval it hits
            run.fault_at = time.monotonic()
            case.fault(run)
            one = converge(run, checker)
        except Exception as exc:  # a failed repetition is reported with its seed
            error = f"{type(exc).__name__}: {exc}"[:2000]
        finally:
            checker.stop()
        if not error:
            takeover = takeover_time(checker.timeline, run.fault_at, run.first)
        overlaps = tuple(o.describe(run.fault_at or checker.started) for o in checker.overlaps())
        notes = list(run.notes)
        if history or error or not one or (bool(overlaps) != (mode in case.expect_overlap)):
            for node in group.lab.node_names:
                notes += [f"{node}: {line}" for line in events(group, node)[-60:]]
        return Result(
            case=name,
            mode=mode,
            seed=seed,
            overlaps=overlaps,
            takeover=takeover,
            one_active=one,
            expected_overlap=mode in case.expect_overlap,
            error=error,
            notes=tuple(notes),
            timeline=tuple(checker.describe()),
            seconds=time.monotonic() - began,
            arbitration_warnings=warned,
        )


def takeover_time(timeline: Sequence[Sample], fault_at: float, first: str) -> float | None:
    """Seconds from the fault to the first sample in which the node holding every resource
    at the end (not `first`) held them all; None when the active node did not change."""
    if not timeline:
        return None
    final = timeline[-1].holders
    ends = set.intersection(*(set(n) for n in final.values())) if final else set()
    if len(ends) != 1 or first in ends:
        return None
    node = ends.pop()
    for sample in timeline:
        if sample.at >= fault_at and all(node in n for n in sample.holders.values()):
            return sample.at - fault_at
    return None


def converge(run: Run, checker: OverlapChecker) -> bool:
    """Wait for one active node with every resource running, alone, for SETTLE seconds.

    Returns whether the cluster ended with exactly one active node holding every resource.
    """
    group = run.group
    deadline = time.monotonic() + CONVERGE
    stable_since: float | None = None
    while time.monotonic() < deadline:
        node = group.cluster.active()
        now = time.monotonic()
        if node is not None and actives(group) == [node]:
            if stable_since is None:
                stable_since = now
            holders = checker.holders_now()
            alone = all(h == frozenset({node}) for h in holders.values())
            if alone and now - stable_since >= SETTLE:
                run.note(f"settled: {node} active alone")
                return True
            if not alone:
                stable_since = now
        else:
            stable_since = None
        time.sleep(0.05)
    run.note(f"not settled: roles {group.cluster.roles()}, holders {checker.holders_now()}")
    return False
