"""Two real agents arbitrating through "release or die" cells on the lab's shared disk.

The arbitration device is a loop device of its own over the lab's shared-disk file (the
heartbeat slots at offset 0, the arbitration area at 1 MiB of the same file): the lab's power
loss cuts a node's own loop device, and a single `[arbitration] device` path names the same
device on both nodes, as a by-id path of a SAN volume would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.config import load
from hotstandby.core.timing import disk_claim_wait
from hotstandby.lab import FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab._cmd import run
from hotstandby.lab.cluster import ClusterSpec, LabCluster

from .conftest import Recorder, slow_device

pytestmark = pytest.mark.lab

PREFIX = "hda"
# Small timers that `hotstandby check` accepts for disk arbitration (see test_lab_timers).
TIMERS = {"interval": "100ms", "warn_time": "300ms", "dead_time": "500ms", "lease": "4s"}


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, a serial line and a shared disk."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built


@pytest.fixture
def arbitration_device(lab: Lab) -> Iterator[str]:
    """A loop device over the lab's shared-disk file, for the arbitration area."""
    assert lab.disk is not None
    device = run(["losetup", "--find", "--show", str(lab.disk.backing)]).stdout.strip()
    try:
        yield device
    finally:
        run(["losetup", "--detach", device])


@pytest.fixture
def cluster(lab: Lab, arbitration_device: str) -> LabCluster:
    """Disk arbitration, heartbeats on the LAN, the private link, serial and the disk."""
    spec = ClusterSpec(
        arbitration=f'mode = "disk"\ndevice = "{arbitration_device}"',
        links=("lan", "private", "serial", "disk"),
        timers=TIMERS,
    )
    c = LabCluster(lab, spec)
    c.write()
    return c


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def rules(cluster: LabCluster, node: str) -> list[str]:
    """The rules of node's event history."""
    try:
        answer = call(cluster.socket(node), {"op": "events", "limit": 2000})
    except ControlError:
        return []
    return [str(e.get("rule", "")) for e in answer["events"]]


@dataclass
class HolderWatch:
    """Samples the floating address's holders in a thread, as often as it can."""

    lab: Lab
    dead: set[str] = field(default_factory=set)  # powered off: its address serves nobody
    most: int = 0
    samples: int = 0
    seen: list[tuple[float, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HolderWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def until(self, holders: list[str], timeout: float = 5.0) -> None:
        """Wait until a sample taken from now on finds exactly `holders` live."""
        deadline = time.monotonic() + timeout
        start = self.samples
        while not (self.samples > start + 1 and self.seen and self.seen[-1][1] == holders):
            assert time.monotonic() < deadline, f"holders {self.seen}, wanted {holders}"
            time.sleep(0.02)

    def _run(self) -> None:
        before: set[str] = set()
        while not self._stop.is_set():
            live = [n for n in self.lab.holders(FLOATING_IPV4) if n not in self.dead]
            self.samples += 1
            # One sample reads each namespace with its own `ip` process, milliseconds
            # apart: a handover can show both nodes in one sample without their ever
            # holding together. A node in two samples in a row held throughout the time
            # between them, so only such nodes are counted together.
            self.most = max(self.most, len(before & set(live)))
            before = set(live)
            if not self.seen or self.seen[-1][1] != live:
                self.seen.append((time.monotonic(), live))
            self._stop.wait(0.02)


def test_lab_timers_pass_check(cluster: LabCluster) -> None:
    loaded = load(cluster.config)
    assert loaded.timers.lease == 4.0
    assert disk_claim_wait(loaded) == pytest.approx(4.008)


def test_power_loss_the_standby_takes_over_after_the_documented_wait(
    lab: Lab, cluster: LabCluster
) -> None:
    active = cluster.up()
    standby = other(active)
    wait = disk_claim_wait(load(cluster.config))
    with HolderWatch(lab, dead={active}) as watch:
        began = time.monotonic()
        lab.power_loss(active)
        assert cluster.wait_active(30, other_than=active) == standby
        took = time.monotonic() - began
        watch.until([standby])
    print(f"\npower loss -> {standby} active after {took:.2f}s (claim wait {wait:.3f}s)")
    # No acknowledgement can come from a dead node: the standby waited the whole claim wait
    # after noticing the death (dead_time), and not much longer.
    assert took >= wait + 0.5
    assert took < wait + 0.5 + 3.0
    assert "takeover.disk" in rules(cluster, standby)
    assert watch.most == 1
    status = cluster.status(standby)
    assert status is not None
    assert status["arbiter"] == {
        "kind": "disk",
        "device": cluster.spec.arbitration.split('"')[3],
        "dropped": {},
        "failed": {},
    }


def test_every_network_and_serial_link_cut_the_disk_decides(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    standby = other(active)
    with HolderWatch(lab) as watch:
        began = time.monotonic()
        for link in ("private", "lan-alpha", "lan-beta"):
            lab.cut(link)
        lab.cut_serial()
        for node in ("alpha", "beta"):
            lab.cut_disk(node)  # the heartbeat slots: the arbitration device stays
        # Exactly one ends active; both agents live throughout, so every holder counts.
        cluster.wait_for(
            "the disk to settle the cut",
            lambda: (
                any(r == "disk.release_or_die" for r in rules(cluster, active))
                and cluster.active() == standby
            ),
            30,
        )
        took = time.monotonic() - began
        time.sleep(2.0)  # and it stays so
        assert cluster.active() == standby
        watch.until([standby])
    print(f"\ncut -> {standby} active after {took:.2f}s, holders {watch.seen}")
    assert watch.most == 1, watch.seen
    assert lab.holders(FLOATING_IPV4) == [standby]
    assert cluster.roles()[active] != "active"
    # The old active acknowledged, so the standby did not sit out the whole claim wait.
    assert "takeover.disk" in rules(cluster, standby)


def test_a_frozen_active_never_serves_alongside_the_new_one(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    standby = other(active)
    dead_time = load(cluster.config).timers.dead_time
    with HolderWatch(lab) as watch:
        proc = cluster.agents[active]
        lab.freeze(proc)
        time.sleep(3 * dead_time)
        lab.resume(proc)
        cluster.wait_for("a single active node", cluster.active, 30)
        time.sleep(5.0)  # past any claim wait: whatever was pending has played out
        final = cluster.active()
        assert final in (active, standby)
        watch.until([final])
    path = [r for r in rules(cluster, active) if r.startswith(("disk.", "demote.", "takeover."))]
    print(f"\nfrozen {active} for {3 * dead_time:g}s -> {final} active, {path}, {watch.seen}")
    assert watch.most == 1, watch.seen


def test_an_active_that_loses_the_disk_and_its_peer_gives_up_first(
    lab: Lab, cluster: LabCluster, arbitration_device: str
) -> None:
    active = cluster.up()
    standby = other(active)
    agent = cluster.agents[active].pid
    # Its reads of the arbitration area now hang in the kernel: every RENEW times out.
    with HolderWatch(lab) as watch, slow_device(arbitration_device, pid=agent):
        began = time.monotonic()
        for link in ("private", "lan-alpha", "lan-beta"):
            lab.cut(link)
        lab.cut_serial()
        for node in ("alpha", "beta"):
            lab.cut_disk(node)
        cluster.wait_for(
            "the cut-off active to give up",
            lambda: "demote.unconfirmed" in rules(cluster, active),
            30,
        )
        gave_up = time.monotonic() - began
        cluster.wait_for("the standby to take over", lambda: cluster.active() == standby, 30)
        took = time.monotonic() - began
        watch.until([standby])
    print(f"\ndisk and peer lost: {active} gave up after {gave_up:.2f}s, active {took:.2f}s")
    assert watch.most == 1, watch.seen
    assert gave_up < took


def test_real_agents_pet_the_watchdog_and_only_a_planned_stop_disarms_it(
    lab: Lab, arbitration_device: str
) -> None:
    # A FIFO stands in for /dev/watchdog (one path for both nodes, as in the cluster file):
    # a real watchdog (softdog included) would reset this machine.
    fifo = Recorder(lab.workdir / "watchdog")
    spec = ClusterSpec(
        arbitration=(
            f'mode = "disk"\ndevice = "{arbitration_device}"\n'
            f'watchdog_timeout = "1s"\nwatchdog_device = "{fifo.path}"'
        ),
        links=("lan", "private", "serial", "disk"),
        timers={**TIMERS, "lease": "6s"},  # the watchdog adds 1 s to the release bound
    )
    cluster = LabCluster(lab, spec)
    cluster.write()
    try:
        active = cluster.up()
        standby = other(active)
        began = time.monotonic()
        time.sleep(1.0)
        pets = [t for t, b in fifo.got if b == b"\0" and t >= began]
        assert len(pets) >= 2 * 3  # both agents, every 1/3 s at least
        assert b"V" not in fifo.bytes()
        # A planned stop (SIGTERM) of the standby ends with the magic close.
        cluster.agents[standby].popen.send_signal(15)
        assert cluster.agents[standby].popen.wait(15) == 0
        _until(lambda: fifo.bytes().count(b"V") == 1)
        # A node that dies without a planned stop leaves it armed.
        lab.kill(cluster.agents[active])
        time.sleep(0.3)
        assert fifo.bytes().count(b"V") == 1
        print(f"\nwatchdog: {len(pets)} pets from two agents in 1 s")
    finally:
        for proc in cluster.agents.values():
            if proc.popen.poll() is None:
                lab.kill(proc)
        fifo.close()


def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
