"""Two real agents arbitrated by a real witness running in the lab's client namespace.

Heartbeats go over the private link and the serial line; the witness sits on the LAN
(192.0.2.0/24), which both nodes reach, so cutting the private link and the serial
line cuts the nodes from each other but not from the witness.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster
from hotstandby.lab.procs import LabProcess

pytestmark = pytest.mark.lab

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hwi"
PORT = 7788
LEASE = 3.0  # the shortest round lease the lease rule allows with these timers (2.61 s)
TIMERS = {"interval": "100ms", "warn_time": "300ms", "dead_time": "500ms"}
TIMERS |= {"initial_dead": "2s", "lease": f"{LEASE:g}s", "release": "500ms"}


class WitnessLab:
    """A lab cluster in witness mode and the witness process in the client namespace."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.address = f"{lab.node(CLIENT).lan_ipv4}:{PORT}"
        spec = ClusterSpec(
            name="wlab",
            arbitration=f'mode = "witness"\nwitness = "{self.address}"',
            timers=TIMERS,
            links=("private", "serial"),
        )
        self.cluster = LabCluster(lab, spec)
        self.cluster.write()
        self.state_dir = self.cluster.dir / "witness-state"
        self.log_path = self.cluster.dir / "witness.log"
        self.proc: LabProcess | None = None

    def start_witness(self) -> None:
        argv = [
            sys.executable, "-m", "hotstandby", "witness",
            "-c", str(self.cluster.config), "--listen", self.address,
            "--state-dir", str(self.state_dir), "--log-level", "debug",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = self.lab.spawn(CLIENT, argv, stdout=log, stderr=log)

    def stop_witness(self) -> None:
        assert self.proc is not None
        self.lab.kill(self.proc)
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def up(self) -> str:
        """Start the witness and both agents; the active node once the standby sees it."""
        self.start_witness()
        self.cluster.start_all()
        active = self.cluster.wait_active(30)
        self.cluster.wait_for(
            "the standby to confirm the active node",
            lambda: (
                (s := self.cluster.status(other(active))) is not None
                and s["role"] == "standby"
                and all(p["confirmed"] for p in s["peers"])
            ),
            10,
        )
        # The witness grants nobody for one span after its start; until the active node
        # holds a lease, a cut would (rightly) have it give the group up.
        self.cluster.wait_for(
            "the active node to hold the witness's lease",
            lambda: (
                (s := self.cluster.status(active)) is not None
                and (s["lease_left"] or 0) > LEASE / 2
            ),
            3 * LEASE,
        )
        return active


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def events(cluster: LabCluster, node: str) -> list[dict[str, object]]:
    """node's event history (empty while its agent does not answer)."""
    try:
        answer = call(cluster.socket(node), {"op": "events", "limit": 1000})
    except ControlError:
        return []
    history: list[dict[str, object]] = answer["events"]
    return history


@pytest.fixture
def wlab() -> Iterator[WitnessLab]:
    """A fresh two-node lab with a client, and a witness cluster written for it."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as lab:
        yield WitnessLab(lab)


def test_power_loss_the_standby_takes_over_once_the_lease_ran_out(wlab: WitnessLab) -> None:
    active = wlab.up()
    standby = other(active)
    assert wlab.lab.holders(FLOATING_IPV4) == [active]
    t0 = time.monotonic()
    wlab.lab.power_loss(active)
    assert wlab.cluster.wait_active(20, other_than=active) == standby
    took = time.monotonic() - t0
    # The dead node's last renewal reached the witness at most a renew period (lease/4)
    # before the cut, and runs a span (lease + drift margin) from there: no grant can
    # come sooner than three quarters of a lease after the power loss.
    assert took >= 0.75 * LEASE - 0.05, took
    assert f"claim from {standby}" in wlab.log() and "granted" in wlab.log()
    print(f"\ntakeover after power loss with a {LEASE:g}s witness lease: {took:.2f}s")


def test_a_cut_between_the_nodes_leaves_exactly_one_active(wlab: WitnessLab) -> None:
    active = wlab.up()
    standby = other(active)
    wlab.lab.cut("private")
    wlab.lab.cut_serial()
    wlab.cluster.wait_for(
        "the standby to lose the active node",
        lambda: (
            (s := wlab.cluster.status(standby)) is not None
            and not any(p["confirmed"] for p in s["peers"])
        ),
        10,
    )
    # Both agents live, both see the witness: the standby claims, is denied while the
    # active renews, and never holds the address; the active keeps it throughout.
    deadline = time.monotonic() + 3 * LEASE
    while time.monotonic() < deadline:
        holders = wlab.lab.holders(FLOATING_IPV4)
        assert holders == [active], holders
        time.sleep(0.05)
    roles = wlab.cluster.roles()
    assert roles[active] == "active" and roles[standby] != "active", roles
    assert f"claim from {standby} (epoch" in wlab.log() and f"denied, {active} holds" in wlab.log()
    wlab.lab.heal("private")
    wlab.lab.heal_serial()
    wlab.cluster.wait_for(
        "the standby to see the active node again",
        lambda: (
            (s := wlab.cluster.status(standby)) is not None
            and s["role"] == "standby"
            and all(p["confirmed"] for p in s["peers"])
        ),
        10,
    )
    assert wlab.lab.holders(FLOATING_IPV4) == [active]


def test_the_witness_down_changes_nothing_while_the_nodes_see_each_other(
    wlab: WitnessLab,
) -> None:
    active = wlab.up()
    standby = other(active)
    wlab.stop_witness()
    wlab.cluster.wait_for(
        "an alarm that the arbiter is unreachable",
        lambda: any(
            "arbiter is unreachable" in str(e["message"]) for e in events(wlab.cluster, active)
        ),
        3 * LEASE,
    )
    deadline = time.monotonic() + 2 * LEASE
    while time.monotonic() < deadline:
        assert wlab.lab.holders(FLOATING_IPV4) == [active]
        time.sleep(0.05)
    assert wlab.cluster.roles() == {active: "active", standby: "standby"}
    # Back again: it restarts from its state file and renews the recorded holder at once.
    mark = len(wlab.log())
    wlab.start_witness()
    wlab.cluster.wait_for(
        "the witness to renew the active node's lease after its restart",
        lambda: f"renew from {active}" in wlab.log()[mark:] and "renewed" in wlab.log()[mark:],
        3 * LEASE,
    )
    assert f"restart: {active} held the lease" in wlab.log()[mark:]
    assert wlab.cluster.roles() == {active: "active", standby: "standby"}
