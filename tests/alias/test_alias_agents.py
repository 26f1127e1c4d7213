"""Two real agents with a floating IP and a floating hostname, and a real named for the name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.dns import DnsServer

from .alias_lab import HOSTNAME, lookup
from .conftest import PREFIX, lab_skip_reason

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def pair() -> Iterator[tuple[Lab, DnsServer, LabCluster]]:
    """Nodes alpha and beta, named on the client, and the cluster file (agents not started)."""
    reason = lab_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta"), disk_size=0) as lab:
        server = DnsServer(lab, CLIENT, lab.node(CLIENT).lan_ipv4)
        server.start()
        alias = (
            '[[resource]]\nname = "db-name"\nkind = "alias"\nstart_timeout = "5s"\n'
            'monitor_interval = "1s"\nmonitor_timeout = "2s"\n[resource.params]\n'
            f'hostname = "{HOSTNAME}"\nzone = "{server.zone}"\nserver = "{server.address}"\n'
            f'key_file = "{server.key.path}"\nttl = 5\ntimeout = "1s"\n'
        )
        cluster = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab), extra=alias))
        text = cluster.render()
        for name in lab.node_names:
            # address = "node" (the default): each node's own LAN address, from [[node]].
            head = f'[[node]]\nname = "{name}"\n'
            assert head in text
            text = text.replace(head, f'{head}address = "{lab.node(name).lan_ipv4}"\n')
        cluster.write(text)
        yield lab, server, cluster


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def test_power_loss_of_the_active_moves_the_name(
    pair: tuple[Lab, DnsServer, LabCluster],
) -> None:
    lab, server, cluster = pair
    cluster.start_all()
    active = cluster.wait_active(30)
    # Every resource of the active node runs: the name points at its own address.
    assert lookup(lab, CLIENT, server) == [lab.node(active).lan_ipv4]
    assert lab.holders(FLOATING_IPV4) == [active]
    cluster.wait_for(
        "the standby to confirm the active node",
        lambda: (
            (s := cluster.status(other(active))) is not None
            and s["role"] == "standby"
            and all(p["confirmed"] for p in s["peers"])
        ),
        10,
    )
    lab.power_loss(active)
    standby = other(active)
    assert cluster.wait_active(30, other_than=active) == standby
    # A client asking the server now gets the new active node's address.
    assert lookup(lab, CLIENT, server) == [lab.node(standby).lan_ipv4]
    status = cluster.status(standby)
    assert status is not None
    name = next(r for r in status["resources"] if r["name"] == "db-name")
    assert name["state"] == "running"


def test_switchover_moves_the_name_and_the_old_node_keeps_nothing_to_undo(
    pair: tuple[Lab, DnsServer, LabCluster],
) -> None:
    lab, server, cluster = pair
    cluster.start_all()
    active = cluster.wait_active(30)
    target = other(active)
    cluster.wait_for(
        "the standby to be ready",
        lambda: (s := cluster.status(target)) is not None and s["role"] == "standby",
        10,
    )
    cluster.admin(active, "switchover")
    assert cluster.wait_active(30, other_than=active) == target
    assert lookup(lab, CLIENT, server) == [lab.node(target).lan_ipv4]
    # The old active stopped the alias without touching the record (on_stop = keep) and
    # without failing: it is a plain standby, not fenced.
    cluster.wait_for(
        "the old active to stand by",
        lambda: cluster.roles().get(active) == "standby",
        10,
    )
