"""What a client sees when the active node fails: hotstandby and keepalived side by side.

    python bench/failover.py [--reps N] [--quick] [--only hotstandby|keepalived] [--json]
                             [--soak SECONDS] [--idle-seconds S] [--idle-only] [--prefix P]

Needs root (network namespaces). Every repetition builds a fresh lab (namespaces "hsb-..."),
starts the system under test on nodes a and b, a TCP echo service on both, and a client that
probes tcp://192.0.2.10:7777 every 10 ms; then injects one fault into the active node and
measures the outage: the longest gap between two answers that ends after the fault. See
bench/README.md for what every figure means and which settings each profile uses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab, LabProcess, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster
from hotstandby.lab.faults import ingress_cut
from hotstandby.lab.power import process_tree
from hotstandby.lab.prober import outage
from idle_floor import run_floor
from keepalived_lab import (
    DEFAULTS,
    TUNED,
    KeepalivedProfile,
    LabKeepalived,
    drop_on_lan,
    holds,
    keepalived_missing,
    keepalived_version,
)

PREFIX = "hsb"  # the labs' namespace prefix (--prefix)
FLOOR = "bare asyncio floor"  # the idle table's row of bench/idle_floor.py
NODES = ("a", "b")
SERVICE_PORT = 7777
HEARTBEAT_PORT = 694  # hotstandby's default UDP heartbeat port (both udp links use it)
SCENARIOS = ("power", "kill9", "stop", "switchover")
SCENARIO_TITLES = {
    "power": "power loss",
    "kill9": "agent kill -9",
    "stop": "graceful stop",
    "switchover": "switchover",
}
#: How long a fault may take to move the address before the rep counts as "not moved".
MOVE_DEADLINE = 10.0
#: Answers in a row, after the move, that end a repetition: 300 ms of a settled client.
SETTLED_OKS = 30
POLL = 0.02
#: A probe unanswered this long counts as failed. Short, because during an outage the
#: prober probes back to back, so this is the resolution of the outage figures; a LAN
#: answer takes about a millisecond here.
PROBE_TIMEOUT = 0.02
#: The observation window of the LAN-only cut: 10 dead times of hotstandby's defaults, and
#: more than keepalived's default master-down interval (3 x 1 s + skew).
CUT_WINDOW = 5.0

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- profiles


@dataclass(frozen=True)
class HsProfile:
    """A hotstandby configuration: timers, ip parameters, arbitration."""

    name: str
    timers: dict[str, str] = field(default_factory=dict)
    ip_params: dict[str, Any] = field(default_factory=dict)
    fence: bool = False

    def spec(self, lab: Lab, workdir: Path) -> ClusterSpec:
        """The cluster file's extras for this profile in lab."""
        arbitration = 'mode = "none"'
        if self.fence:
            # Imported here: the lab fence agent is newer than this benchmark's other
            # needs, and its absence only removes the fence column (see fence_available).
            from hotstandby.lab.fence_agent import write_wrapper  # noqa: PLC0415

            agent = write_wrapper(workdir)
            arbitration = (
                'mode = "fence"\n[[arbitration.fence]]\n'
                f'agent = "{agent}"\nplug = "{{node}}"\nlab = "{lab.lab_id}"\n'
            )
        return ClusterSpec(
            name="bench",
            arbitration=arbitration,
            timers=dict(self.timers),
            ip_params=dict(self.ip_params),
        )


HS_DEFAULT = HsProfile("hs default")
HS_DEFAULT_NOPROBE = HsProfile("hs default, no probe", ip_params={"check_conflict": False})
# The documented fast profile: 30 ms heartbeats, dead after 150 ms (5 intervals), and the
# conflict probe kept but shortened: on a LAN an answer comes within a millisecond.
FAST_TIMERS = {"interval": "30ms", "warn_time": "90ms", "dead_time": "150ms"}
HS_FAST = HsProfile("hs fast", FAST_TIMERS, {"conflict_timeout": "50ms"})
HS_FAST_NOPROBE = HsProfile("hs fast, no probe", FAST_TIMERS, {"check_conflict": False})
HS_FENCE = HsProfile("hs fence", fence=True)

Profile = HsProfile | KeepalivedProfile


def fence_available() -> bool:
    """Whether the lab fence agent and the agent's fence adapter both exist."""
    src = REPO / "src/hotstandby"
    return (src / "lab/fence_agent.py").exists() and (src / "agent/fence.py").exists()


# ---------------------------------------------------------------- the client


class Client:
    """The prober in the client's namespace, its lines collected by a thread."""

    def __init__(self, lab: Lab) -> None:
        argv = [
            sys.executable,
            "-m",
            "hotstandby.lab.prober",
            "probe",
            FLOATING_IPV4,
            str(SERVICE_PORT),
            "--interval",
            "0.01",
            "--timeout",
            str(PROBE_TIMEOUT),
        ]
        self.proc = lab.spawn(CLIENT, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        pipe = self.proc.popen.stdout
        assert pipe is not None
        for raw in pipe:
            with self._cond:
                self.lines.append(raw.decode().strip())
                self._cond.notify_all()

    def snapshot(self) -> list[str]:
        """Every probe line so far."""
        with self._cond:
            return list(self.lines)

    def await_oks(self, count: int, after: float, timeout: float) -> bool:
        """Wait for `count` answers in a row, all probed after `after` (CLOCK_MONOTONIC)."""

        def run_length() -> int:
            n = 0
            for line in reversed(self.lines):
                kind, _, stamp = line.partition(" ")
                if kind != "ok" or float(stamp) <= after:
                    break
                n += 1
            return n

        with self._cond:
            return self._cond.wait_for(lambda: run_length() >= count, timeout)

    def stop(self) -> None:
        """Close its stdin (it ends after the probe in flight) and collect the rest."""
        stdin = self.proc.popen.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5.0)
        self._thread.join(5.0)


def start_services(lab: Lab) -> dict[str, LabProcess]:
    """The echo service on every node, each awaited until it listens."""
    services = {}
    for node in lab.node_names:
        argv = [sys.executable, "-m", "hotstandby.lab.prober", "serve", str(SERVICE_PORT)]
        proc = lab.spawn(node, argv, stdout=subprocess.PIPE)
        pipe = proc.popen.stdout
        assert pipe is not None
        if pipe.readline().strip() != b"ready":
            raise RuntimeError(f"echo service on {node} did not start")
        services[node] = proc
    return services


# ---------------------------------------------------------------- systems under test


class System(Protocol):
    """One system (hotstandby or keepalived) running on a lab's two nodes."""

    def up(self) -> str:
        """Start it, wait for a settled active node and standby; return the active's name."""
        ...

    def fault(self, scenario: str, active: str) -> None:
        """Inject the scenario's fault into the active node."""
        ...

    def agent_pids(self, node: str) -> list[int]:
        """The agent's processes on node (for CPU and memory)."""
        ...

    def alarms_since(self, node: str, wall: float) -> list[str]:
        """Alarm kinds node raised since wall-clock time `wall` (what went on, for notes)."""
        ...

    def close(self) -> None:
        """End what it started (by pid)."""
        ...


def other(node: str) -> str:
    """The other node of the pair."""
    return NODES[1] if node == NODES[0] else NODES[0]


class Hotstandby:
    """hotstandby's agents through the lab cluster."""

    def __init__(self, lab: Lab, profile: HsProfile) -> None:
        self.lab = lab
        self.profile = profile
        self.cluster = LabCluster(lab, profile.spec(lab, lab.workdir))
        self.cluster.write()

    def up(self) -> str:
        """Both agents, one active, the other a standby that has confirmed it."""
        c = self.cluster
        c.start_all()
        active = c.wait_active(30)
        c.wait_for(
            "the standby to confirm the active node",
            lambda: (
                (s := c.status(other(active))) is not None
                and s["role"] == "standby"
                and all(p["confirmed"] for p in s["peers"])
            ),
            15,
        )
        return active

    def fault(self, scenario: str, active: str) -> None:
        """power: lab power loss; kill9: SIGKILL the agent; stop: SIGTERM; switchover: CLI."""
        agent = self.cluster.agents[active]
        if scenario == "power":
            self.lab.power_loss(active)
        elif scenario == "kill9":
            self.lab.kill(agent)
        elif scenario == "stop":
            self.lab.kill(agent, signal.SIGTERM)
        elif scenario == "switchover":
            # The command line, as an operator types it (it includes the CLI's own start).
            argv = [
                sys.executable,
                "-m",
                "hotstandby",
                "switchover",
                "--socket",
                self.cluster.socket(active),
            ]
            subprocess.run(argv, capture_output=True, timeout=30, check=True)
        else:
            raise ValueError(scenario)

    def agent_pids(self, node: str) -> list[int]:
        """The agent process and anything it started."""
        proc = self.cluster.agents.get(node)
        return process_tree([proc.pid]) if proc is not None and proc.alive() else []

    def alarms_since(self, node: str, wall: float) -> list[str]:
        """Alarms in node's event history since `wall`, link noise left out."""
        return [
            str(e["kind"])
            for e in self.events(node)
            if e["at"] >= wall
            and str(e["kind"]).startswith("alarm.")
            and not str(e["kind"]).startswith(("alarm.link_", "alarm.peer_lost"))
        ]

    def close(self) -> None:
        """The lab ends the agents (they are its tracked processes)."""

    def events(self, node: str) -> list[dict[str, Any]]:
        """node's event history (empty when its agent does not answer)."""
        try:
            answer = call(self.cluster.socket(node), {"op": "events", "limit": 5000})
        except (ControlError, OSError, ValueError):
            return []
        history: list[dict[str, Any]] = answer["events"]
        return history


class Keepalived:
    """keepalived on both nodes (bench/keepalived_lab.py)."""

    def __init__(self, lab: Lab, profile: KeepalivedProfile, services: dict[str, int]) -> None:
        self.lab = lab
        self.ka = LabKeepalived(lab, profile, services)
        self.ka.write()

    def up(self) -> str:
        """First node master, second a backup that hears its adverts."""
        return self.ka.up()

    def fault(self, scenario: str, active: str) -> None:
        """power: lab power loss; kill9: SIGKILL parent and VRRP child; stop: SIGTERM;
        switchover: lower the master's priority by 150 through its track file."""
        if scenario == "power":
            self.lab.power_loss(active)
        elif scenario == "kill9":
            self.ka.kill9(active)
        elif scenario == "stop":
            self.ka.stop(active)
        elif scenario == "switchover":
            self.ka.lower_priority(active)
        else:
            raise ValueError(scenario)

    def agent_pids(self, node: str) -> list[int]:
        """Parent and VRRP child (and a check script, when one runs)."""
        return self.ka.pids(node)

    def alarms_since(self, node: str, wall: float) -> list[str]:
        """keepalived raises no alarms of the kind; its state lines are in its log."""
        return []

    def close(self) -> None:
        """End keepalived by pid."""
        self.ka.close()


def set_prefix(prefix: str) -> None:
    """Name this run's labs `PREFIX-XXXX-*` (another run on the machine may use the default)."""
    global PREFIX  # one setting for the whole run, read where the labs are made
    PREFIX = prefix


@contextlib.contextmanager
def running(profile: Profile) -> Iterator[tuple[Lab, System, dict[str, LabProcess]]]:
    """A fresh lab with the echo services and the system under test, removed on exit."""
    is_hs = isinstance(profile, HsProfile)
    # No shared disk in these labs (no link uses it); the serial line only for hotstandby.
    with Lab(PREFIX, nodes=NODES, serial=is_hs, disk_size=0) as lab:
        services = start_services(lab)
        system: System
        if isinstance(profile, HsProfile):
            system = Hotstandby(lab, profile)
        else:
            system = Keepalived(lab, profile, {n: p.pid for n, p in services.items()})
        try:
            yield lab, system, services
        finally:
            system.close()


# ---------------------------------------------------------------- one repetition


@dataclass
class Rep:
    """One fault, as the client and the kernel saw it."""

    outage: float | None  # seconds; None: no answer came back
    moved: float | None  # seconds from the fault until the standby held the address
    live_holders: list[str]  # at the end, nodes holding the address and not cut off
    alarms: list[str] = field(default_factory=list)  # the standby's, when the IP did not move
    error: str = ""


def live_holders(lab: Lab) -> list[str]:
    """Nodes holding the floating IP whose LAN end is not cut (a powered-off node is)."""
    found = []
    for name in lab.holders(FLOATING_IPV4):
        node = lab.node(name)
        if not ingress_cut(node.ns, node.lan_if):
            found.append(name)
    return found


def await_true(check: Callable[[], bool], timeout: float) -> bool:
    """Poll check (kernel state, nothing to subscribe to) until true or timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def one_rep(profile: Profile, scenario: str) -> Rep:
    """A fresh lab, one fault, the outage the client saw."""
    with running(profile) as (lab, system, _):
        active = system.up()
        standby = other(active)
        client = Client(lab)
        try:
            if not client.await_oks(SETTLED_OKS, 0.0, 15.0):
                raise RuntimeError("the client never reached the service before the fault")
            began = time.monotonic()
            wall = time.time()
            system.fault(scenario, active)
            moved_ok = await_true(lambda: holds(lab, standby), MOVE_DEADLINE)
            moved = time.monotonic() - began if moved_ok else None
            # Settled: enough answers in a row after the move (or after giving up on it).
            client.await_oks(SETTLED_OKS, time.monotonic(), 15.0)
        finally:
            client.stop()
        gap = outage(client.snapshot(), began)
        alarms = system.alarms_since(standby, wall) if moved is None else []
        return Rep(gap.seconds if gap else None, moved, live_holders(lab), alarms)


# ---------------------------------------------------------------- idle cost


@dataclass
class Idle:
    """An idle agent's cost on one node."""

    cpu_percent: float
    rss_mib: float


def cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of pid: its own CPU and that of children it reaped
    (keepalived's check scripts are short-lived children, reaped by its VRRP process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def cpu_percent(before: dict[int, int], pids: Sequence[int], took: float) -> float:
    """CPU of `pids` since `before` (their cpu_ticks then) over `took` seconds, as % of a core.

    Only processes alive at both ends count (a script running at either end does not); the
    ones that came and went are in their reaper's cutime/cstime.
    """
    ticks = sum(cpu_ticks(p) - before[p] for p in pids if p in before)
    return 100.0 * ticks / os.sysconf("SC_CLK_TCK") / took


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure_idle(profiles: Sequence[Profile], seconds: float) -> dict[str, dict[str, Idle]]:
    """Every profile's idle agents, all in their own labs during the same window."""
    with contextlib.ExitStack() as stack:
        setups = [(p, *stack.enter_context(running(p))) for p in profiles]
        roles: dict[str, dict[str, str]] = {}
        for profile, _, system, _ in setups:
            active = system.up()
            roles[profile.name] = {active: "active", other(active): "standby"}
        start: dict[tuple[str, str], dict[int, int]] = {}
        for profile, _, system, _ in setups:
            for node in NODES:
                start[(profile.name, node)] = {p: cpu_ticks(p) for p in system.agent_pids(node)}
        # The floor in the same window, so a loaded machine shows in both: a bare asyncio
        # loop moving the same datagrams (bench/idle_floor.py, on the host's loopback).
        floor: list[tuple[float, int]] = []
        floor_thread = threading.Thread(
            target=lambda: floor.extend(run_floor(0.1, 3, seconds)), daemon=True
        )
        floor_thread.start()
        began = time.monotonic()
        # A fixed measuring window: nothing to await, the point is to let time pass.
        time.sleep(seconds)
        took = time.monotonic() - began
        floor_thread.join(timeout=60)
        out: dict[str, dict[str, Idle]] = {}
        for profile, _, system, _ in setups:
            out[profile.name] = {}
            for node in NODES:
                pids = system.agent_pids(node)
                cpu = cpu_percent(start[(profile.name, node)], pids, took)
                rss = sum(_rss_kib(p) for p in pids)
                out[profile.name][roles[profile.name][node]] = Idle(cpu, rss / 1024)
        if len(floor) == 2:
            # Its two processes are peers, not an active and a standby: a and b, no memory.
            out[FLOOR] = {"active": Idle(floor[0][0], 0.0), "standby": Idle(floor[1][0], 0.0)}
        return out


# ---------------------------------------------------------------- the LAN-only cut


@dataclass
class CutResult:
    """Heartbeats (or adverts) dropped on the LAN only; the other links, and the client, fine."""

    takeover: bool  # did the standby take the address?
    dual_after: float | None  # seconds until both nodes held the address, if they did
    live_holders: list[str]  # at the end of the window
    client_gap: float | None  # longest gap the client saw during the window
    detail: str = ""


def lan_cut(profile: Profile) -> CutResult:
    """Drop only the system's own LAN traffic (UDP 694, or IP protocol 112) on both nodes."""
    with running(profile) as (lab, system, _):
        active = system.up()
        standby = other(active)
        client = Client(lab)
        try:
            client.await_oks(SETTLED_OKS, 0.0, 15.0)
            began = time.monotonic()
            wall = time.time()
            match = (
                f"udp dport {HEARTBEAT_PORT}"
                if isinstance(system, Hotstandby)
                else "ip protocol vrrp"
            )
            for node in NODES:
                drop_on_lan(lab, node, match)
            detail = ""
            if isinstance(system, Hotstandby):
                # Evidence the cut works: the standby sees the LAN link down, the others up.
                c = system.cluster
                c.wait_for(
                    "the standby to see the lan link down",
                    lambda: (
                        (s := c.status(standby)) is not None
                        and s["peers"][0]["links"]["lan"]["state"] == "down"
                    ),
                    10,
                )
                s = c.status(standby)
                assert s is not None
                links = s["peers"][0]["links"]
                detail = ", ".join(f"{k} {v['state']}" for k, v in sorted(links.items()))
            dual_ok = await_true(lambda: holds(lab, standby), CUT_WINDOW)
            dual = time.monotonic() - began if dual_ok else None
            # The rest of the window, fixed: a takeover that does not happen cannot be awaited.
            time.sleep(max(0.0, began + CUT_WINDOW - time.monotonic()))
            holders = live_holders(lab)
            if isinstance(system, Hotstandby):
                kinds = [e["kind"] for n in NODES for e in system.events(n) if e["at"] >= wall]
                detail += f"; alarm.takeover events: {kinds.count('alarm.takeover')}"
        finally:
            client.stop()
        lines = [x for x in client.snapshot() if float(x.partition(" ")[2] or 0) >= began]
        gap = outage(lines, began)
        return CutResult(dual is not None, dual, holders, gap.seconds if gap else None, detail)


# ---------------------------------------------------------------- the soak


@dataclass
class SoakResult:
    """A long run with loss on one link and busy cores."""

    seconds: float
    loss_link: str
    busy_loops: int
    takeovers: int
    epoch_start: int
    epoch_end: int
    active_start: str
    active_end: str | None
    link_down_alarms: int
    live_holders: list[str]


def soak(seconds: float) -> SoakResult:
    """hotstandby defaults, 30% loss on the private link, every core busy, for `seconds`."""
    busy = os.cpu_count() or 2
    with running(HS_DEFAULT) as (lab, system, _):
        assert isinstance(system, Hotstandby)
        c = system.cluster
        active = system.up()
        status = c.status(active)
        assert status is not None
        epoch0 = int(status["epoch"])
        lab.loss("private", 30)
        # Busy loops in the client's namespace: tracked by the lab, on no node's links.
        for _ in range(busy):
            lab.spawn(CLIENT, [sys.executable, "-c", "while True: pass"])
        seen: set[tuple[str, float, str]] = set()
        began = time.monotonic()
        # Only what happens under load counts: the start-up takeover is in the history too.
        wall = time.time()
        while True:
            # The history is a ring of 2000 records: read it often enough to miss nothing.
            for node in NODES:
                for e in system.events(node):
                    if e["at"] >= wall:
                        seen.add((node, float(e["at"]), str(e["kind"])))
            left = began + seconds - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(5.0, left))
        for proc in lab.processes(CLIENT):
            lab.kill(proc)
        epochs = [s["epoch"] for n in NODES if (s := c.status(n)) is not None]
        return SoakResult(
            seconds=seconds,
            loss_link="private",
            busy_loops=busy,
            takeovers=sum(1 for _, _, k in seen if k == "alarm.takeover"),
            epoch_start=epoch0,
            epoch_end=max(epochs, default=-1),
            active_start=active,
            active_end=c.active(),
            link_down_alarms=sum(1 for _, _, k in seen if k == "alarm.link_down"),
            live_holders=live_holders(lab),
        )


# ---------------------------------------------------------------- reporting


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms(value: float | None) -> str:
    """Seconds as whole milliseconds, '-' for none."""
    return "-" if value is None else f"{value * 1000:.0f}"


def summarize(reps: Sequence[Rep]) -> dict[str, Any]:
    """p50 / p95 / max outage, p50 move time, and what went unusual."""
    outs = [r.outage for r in reps if r.outage is not None]
    moves = [r.moved for r in reps if r.moved is not None]
    return {
        "reps": len(reps),
        "p50": percentile(outs, 50) if outs else None,
        "p95": percentile(outs, 95) if outs else None,
        "max": max(outs) if outs else None,
        "moved_p50": percentile(moves, 50) if moves else None,
        "not_moved": sum(1 for r in reps if r.moved is None),
        "no_answer": sum(1 for r in reps if r.outage is None),
        "both_hold": sum(1 for r in reps if len(r.live_holders) > 1),
        "errors": [r.error for r in reps if r.error],
        "alarms": sorted({a for r in reps for a in r.alarms}),
    }


def render(results: dict[str, Any]) -> str:
    """The printed tables."""
    out: list[str] = []
    reps = results["reps"]
    if any(results["outage"].values()):
        out.append(
            f"Outage seen by the client (ms), {reps} fresh labs per cell; client probes "
            f"tcp://{FLOATING_IPV4}:{SERVICE_PORT} every 10 ms"
        )
        head = f"{'scenario':<15} {'system':<22} {'p50':>6} {'p95':>6} {'max':>6} "
        head += f"{'moved p50':>10}  notes"
        out += [head, "-" * len(head)]
    for scenario in SCENARIOS:
        rows = 0
        for name, by_scenario in results["outage"].items():
            s = by_scenario.get(scenario)
            if s is None:
                continue
            rows += 1
            notes = []
            if s["not_moved"]:
                notes.append(f"address not moved in {s['not_moved']}/{s['reps']}")
            if s["both_hold"]:
                notes.append(f"both nodes hold it in {s['both_hold']}/{s['reps']}")
            if s["no_answer"]:
                notes.append(f"client never answered again in {s['no_answer']}/{s['reps']}")
            if s["alarms"]:
                notes.append(f"standby alarms: {' '.join(s['alarms'])}")
            if s["errors"]:
                notes.append(f"errors: {'; '.join(s['errors'])}")
            out.append(
                f"{SCENARIO_TITLES[scenario]:<15} {name:<22} {ms(s['p50']):>6} {ms(s['p95']):>6} "
                f"{ms(s['max']):>6} {ms(s['moved_p50']):>10}  {', '.join(notes)}"
            )
        if rows:
            out.append("")
    if results.get("idle"):
        secs = results["idle_seconds"]
        out.append(
            f"Idle agent over {secs:g} s (CPU: % of one core, utime+stime incl. reaped "
            "children; memory: VmRSS summed over the agent's processes)"
        )
        head = (
            f"{'system':<22} {'CPU active':>10} {'CPU standby':>11} {'RSS active':>11} "
            f"{'RSS standby':>12}"
        )
        out += [head, "-" * len(head)]
        # Each system's CPU as a multiple of the floor of the same window: the floor moves
        # with the machine's state (0.3% to 0.7% of a core within a day on one machine),
        # the ratio much less.
        floor = results["idle"].get(FLOOR)
        for name, by_role in results["idle"].items():
            a, s = by_role["active"], by_role["standby"]
            if name == FLOOR:
                out.append(
                    f"{name:<22} {a['cpu_percent']:>9.2f}% {s['cpu_percent']:>10.2f}% "
                    f"{'-':>11} {'-':>12}  (its processes a and b, same window)"
                )
                continue
            ratio = ""
            if floor and floor["active"]["cpu_percent"] and floor["standby"]["cpu_percent"]:
                ratio = (
                    f"  {a['cpu_percent'] / floor['active']['cpu_percent']:.1f}x / "
                    f"{s['cpu_percent'] / floor['standby']['cpu_percent']:.1f}x the floor"
                )
            out.append(
                f"{name:<22} {a['cpu_percent']:>9.2f}% {s['cpu_percent']:>10.2f}% "
                f"{a['rss_mib']:>7.1f} MiB {s['rss_mib']:>8.1f} MiB{ratio}"
            )
        out.append("")
    if results.get("lan_cut"):
        out.append(
            f"Only the LAN heartbeat/advert path cut (UDP {HEARTBEAT_PORT} or IP protocol "
            f"112 dropped at both nodes' LAN ends; client traffic untouched), "
            f"{CUT_WINDOW:g} s window"
        )
        head = (
            f"{'system':<22} {'standby took IP':>15} {'after':>7} {'live holders at end':>20}"
            f" {'client gap':>10}  detail"
        )
        out += [head, "-" * len(head)]
        for name, r in results["lan_cut"].items():
            out.append(
                f"{name:<22} {'yes' if r['takeover'] else 'no':>15} "
                f"{ms(r['dual_after']):>7} {','.join(r['live_holders']):>20} "
                f"{ms(r['client_gap']):>10}  {r['detail']}"
            )
        out.append("")
    if results.get("soak"):
        s = results["soak"]
        out.append(
            f"Soak: {s['seconds']:g} s, hs default, {s['busy_loops']} busy loops, 30% loss on "
            f"the {s['loss_link']} link: takeovers {s['takeovers']}, epoch {s['epoch_start']} -> "
            f"{s['epoch_end']}, active {s['active_start']} -> {s['active_end']}, link-down "
            f"alarms {s['link_down_alarms']}, holders at end {','.join(s['live_holders'])}"
        )
        out.append("")
    for note in results["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print (or dump) the figures."""
    parser = argparse.ArgumentParser(prog="bench/failover.py", description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions per cell (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 repetitions")
    parser.add_argument("--only", choices=("hotstandby", "keepalived"))
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also run the soak this long (the issue's figure: 600)",
    )
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of " + ",".join(SCENARIOS),
    )
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument("--no-lan-cut", action="store_true")
    parser.add_argument(
        "--idle-only",
        action="store_true",
        help="only the idle CPU and memory (no outage scenarios, no LAN cut)",
    )
    parser.add_argument(
        "--prefix", default=PREFIX, help=f"the labs' namespace prefix (default {PREFIX})"
    )
    args = parser.parse_args(argv)
    set_prefix(args.prefix)
    if args.idle_only:
        args.scenarios, args.no_idle, args.no_lan_cut = "", False, True
    reason = skip_reason()
    if reason is not None:
        print(f"bench/failover.py: {reason}", file=sys.stderr)
        return 2
    reps = 2 if args.quick else args.reps
    scenarios = [s for s in args.scenarios.split(",") if s]
    notes: list[str] = [
        "hotstandby runs heartbeat-only unless the profile says fence: [arbitration] "
        'mode = "none" (no arbiter, no fencing; `check` warns it risks split brain)',
    ]
    profiles: list[Profile] = []
    if args.only != "keepalived":
        profiles += [HS_DEFAULT, HS_DEFAULT_NOPROBE, HS_FAST, HS_FAST_NOPROBE]
        if fence_available():
            profiles.append(HS_FENCE)
        else:
            notes.append("no lab fence method found: no fence column")
    if args.only != "hotstandby":
        missing = keepalived_missing()
        if missing is None:
            profiles += [DEFAULTS, TUNED]
            notes.append(keepalived_version())
        else:
            notes.append(missing)
            print(missing, file=sys.stderr)
    notes += [
        "hs profiles: default = interval 100ms, dead_time 500ms, ip check_conflict on "
        "(conflict_timeout 300ms); fast = interval 30ms, warn 90ms, dead 150ms, "
        "conflict_timeout 50ms; 'no probe' = check_conflict false",
        "hs switchover: `hotstandby switchover --socket ...`; its 'moved' includes the CLI's "
        "own start, the outage does not depend on it",
        "keepalived switchover: track file (weight 1) set to -150, priority 200 -> 50 below "
        "the backup's 100; the backup takes over when its master-down timer runs out",
        "keepalived kill -9: parent and VRRP child stopped, then both SIGKILLed (a parent "
        "alone would respawn the child; a child alone would stop gracefully)",
        "moved: fault -> the standby has the address configured; both nodes hold it: at the "
        "end, the address is on both and neither node's LAN is cut",
    ]
    results: dict[str, Any] = {"reps": reps, "outage": {}, "notes": notes}
    for profile in profiles:
        by_scenario: dict[str, Any] = {}
        for scenario in scenarios:
            got = []
            for i in range(reps):
                try:
                    rep = one_rep(profile, scenario)
                except Exception as exc:  # a failed rep is reported, the run goes on
                    rep = Rep(None, None, [], error=f"{type(exc).__name__}: {exc}"[:300])
                got.append(rep)
                progress(
                    f"{profile.name:<22} {scenario:<10} #{i + 1}: outage {ms(rep.outage)} "
                    f"ms, moved {ms(rep.moved)} ms, live holders {rep.live_holders} "
                    f"{' '.join(sorted(set(rep.alarms)))} {rep.error}"
                )
            by_scenario[scenario] = summarize(got)
            by_scenario[scenario]["raw"] = [asdict(r) for r in got]
        results["outage"][profile.name] = by_scenario
    idle_profiles = [p for p in profiles if p in (HS_DEFAULT, HS_FAST, DEFAULTS, TUNED)]
    if idle_profiles and not args.no_idle:
        progress(f"idle: {args.idle_seconds:g} s window")
        idle = measure_idle(idle_profiles, args.idle_seconds)
        results["idle"] = {n: {r: asdict(v) for r, v in d.items()} for n, d in idle.items()}
        results["idle_seconds"] = args.idle_seconds
        notes.append(
            "keepalived idle figures include a once-a-second check script "
            "(`/usr/bin/kill -0 <service pid>`, fall 2 rise 2)"
        )
    cut_profiles = [p for p in profiles if p in (HS_DEFAULT, HS_FAST, DEFAULTS, TUNED)]
    if cut_profiles and not args.no_lan_cut:
        results["lan_cut"] = {}
        for profile in cut_profiles:
            progress(f"lan-only cut: {profile.name}")
            results["lan_cut"][profile.name] = asdict(lan_cut(profile))
    if args.soak > 0 and args.only != "keepalived":
        progress(f"soak: {args.soak:g} s")
        results["soak"] = asdict(soak(args.soak))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0


def progress(text: str, stream: IO[str] = sys.stderr) -> None:
    """One line of progress on stderr, so stdout stays the table (or the JSON)."""
    print(text, file=stream, flush=True)


if __name__ == "__main__":
    sys.exit(main())
