"""Two real agents arbitrated by a real witness running in the lab's client namespace.

The layout is `hotstandby.lab.witness`: heartbeats over the private link and the serial
line, the witness on the LAN that both nodes reach.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hotstandby.lab import FLOATING_IPV4, Lab, skip_reason
from hotstandby.lab.witness import LEASE, WitnessLab, other

pytestmark = pytest.mark.lab

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hwi"


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
            "arbiter is unreachable" in str(e["message"]) for e in wlab.cluster.events(active)
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
