"""Two real agents in network namespaces: takeover, riding out a cut link, rejoin, switchover."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab
from hotstandby.lab.cluster import LabCluster
from hotstandby.wire.keys import write_new_secret

pytestmark = pytest.mark.lab


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def test_power_loss_of_the_active_moves_the_floating_ip(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    assert lab.holders(FLOATING_IPV4) == [active]
    assert lab.ping(CLIENT, FLOATING_IPV4)
    lab.power_loss(active)
    standby = other(active)
    assert cluster.wait_active(20, other_than=active) == standby
    # The powered-off node's namespace keeps its addresses, but it is cut off and
    # dead; the live holder is the standby, and the client reaches it.
    assert standby in lab.holders(FLOATING_IPV4)
    assert lab.ping(CLIENT, FLOATING_IPV4)
    status = cluster.status(standby)
    assert status is not None and status["last_takeover"] is not None
    assert status["epoch"] >= 2


def test_one_link_cut_is_ridden_out_with_a_warning(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    standby = other(active)
    lab.cut("private")
    cluster.wait_for(
        "the standby to see the private link down",
        lambda: (
            (s := cluster.status(standby)) is not None
            and s["peers"][0]["links"]["private"]["state"] == "down"
        ),
        10,
    )
    # Other links carry on: still exactly the same active node, no takeover.
    assert cluster.active() == active
    roles = cluster.roles()
    assert roles[standby] == "standby"
    kinds = [e["kind"] for e in cluster.events(standby)]
    assert "alarm.link_down" in kinds
    assert "alarm.takeover" not in kinds
    assert lab.holders(FLOATING_IPV4) == [active]


def test_the_old_active_rejoins_as_standby(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    standby = other(active)
    lab.power_loss(active)
    cluster.wait_active(20, other_than=active)
    lab.power_on(active)
    # After a power cycle the node's addresses are gone with it: clear the old
    # floating address as a reboot would, then start its agent again.
    lab.run(active, ["ip", "addr", "flush", "dev", lab.node(active).lan_if, "to",
                     f"{FLOATING_IPV4}/32"])  # fmt: skip
    cluster.start(active)
    cluster.wait_for(
        "the old active to rejoin as standby",
        lambda: cluster.roles().get(active) == "standby",
        20,
    )
    assert cluster.active() == standby  # no failback by default
    assert lab.holders(FLOATING_IPV4) == [standby]


def test_switchover_from_the_command_line(lab: Lab, cluster: LabCluster) -> None:
    active = cluster.up()
    target = other(active)
    done = subprocess.run(
        [sys.executable, "-m", "hotstandby", "switchover", "--socket", cluster.socket(active)],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert target in done.stdout
    assert cluster.wait_active(20, other_than=active) == target
    cluster.wait_for(
        "the address to leave the old active",
        lambda: lab.holders(FLOATING_IPV4) == [target],
        10,
    )


def test_a_wrong_secret_is_rejected_and_said_so(lab: Lab, cluster: LabCluster) -> None:
    cluster.start("alpha")
    # beta runs with another secret: every heartbeat fails authentication.
    other_dir = cluster.dir / "intruder"
    other_dir.mkdir()
    text = cluster.config.read_text().replace(str(cluster.secret), str(other_dir / "secret"))
    write_new_secret(other_dir / "secret")
    bad = other_dir / "cluster.toml"
    bad.write_text(text)
    proc = lab.spawn("beta", [
        sys.executable, "-m", "hotstandby", "agent", "-c", str(bad), "--node", "beta",
        "--socket", cluster.socket("beta"), "--state-dir", str(other_dir / "state"),
    ])  # fmt: skip
    cluster.agents["beta"] = proc

    # Every link says so on its own: the first rejection may come from any of them.
    def rejected_on() -> set[str]:
        return {
            str(e["link"])
            for e in cluster.events("alpha")
            if e["kind"] == "link.rejected" and "authentication failed" in str(e["message"])
        }

    links = set(cluster.spec.links)
    cluster.wait_for("alpha to report rejected heartbeats on every link",
                     lambda: rejected_on() >= links, 10)  # fmt: skip
    status = cluster.status("alpha")
    assert status is not None
    for link in links:
        assert status["links"][link]["dropped"].get("bad_mac", 0) > 0, link
    assert not status["peers"][0]["confirmed"]
