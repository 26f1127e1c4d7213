"""Tickle ACKs in the lab: a client blocked on a frozen active node is freed by the takeover.

Two real agents hold the floating IP; each node runs a TCP server that accepts and never
answers (its kernel still acknowledges). A client in the client namespace connects through
the floating IP, sends a request and waits in recv() with no timeout. The active node is
frozen (its agent and its server stopped, its kernel alive), the standby fences it and takes
over: with tickles the client's recv() fails with a reset soon after; without them it stays
blocked, as the kernel acknowledged its request and it will never send again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, FLOATING_IPV6, Lab, LabError, LabProcess
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration

pytestmark = pytest.mark.lab

PORT = 8765
# The bound on "at once": the three rounds of tickles span 1.2 s; the first one suffices.
FREED_WITHIN = 3.0
# How long a client without tickles is watched to be still blocked after the takeover.
STILL_BLOCKED_FOR = 5.0

SERVER = f"""
import socket
s = socket.create_server(("", {PORT}), family=socket.AF_INET6, dualstack_ipv6=True)
print("listening", flush=True)
held = []
while True:
    held.append(s.accept()[0])  # accepted, never answered
"""

CLIENT_SCRIPT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.settimeout(None)  # blocks in recv for as long as the kernel lets it
print("connected", c.getsockname()[1], flush=True)
sys.stdin.readline()
c.sendall(b"request")
print("sent", flush=True)
try:
    data = c.recv(100)
    print("closed" if not data else "answered", time.time(), flush=True)
except ConnectionResetError:
    print("reset", time.time(), flush=True)
except OSError as err:
    print("error", err.errno, time.time(), flush=True)
"""


def make_cluster(lab: Lab, tickle: bool, address: str = FLOATING_IPV4) -> LabCluster:
    """The lab's cluster with fencing through the lab, tickles on or off."""
    prefix = 64 if ":" in address else 24
    params = {"tickle": tickle, "address": f"{address}/{prefix}"}
    spec = ClusterSpec(arbitration=fence_arbitration(lab), ip_params=params)
    cluster = LabCluster(lab, spec)
    cluster.write()
    return cluster


def up_with_client(
    lab: Lab, tickle: bool, address: str = FLOATING_IPV4
) -> tuple[LabCluster, str, str, Client]:
    """The cluster up (tickles on or off) and a client connected through `address`:
    (cluster, active node, standby node, client)."""
    cluster = make_cluster(lab, tickle, address)
    active = cluster.up()
    return cluster, active, cluster.other(active), Client(lab, address)


def start_servers(lab: Lab) -> dict[str, LabProcess]:
    """A silent TCP server on every node, listening once this returns."""
    servers = {}
    for node in lab.node_names:
        proc = lab.spawn(node, [sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
        assert proc.read_line(10).strip() == "listening"
        servers[node] = proc
    return servers


class Client:
    """The client process: connected, then told to send its request."""

    def __init__(self, lab: Lab, address: str = FLOATING_IPV4) -> None:
        argv = [sys.executable, "-c", CLIENT_SCRIPT, address, str(PORT)]
        self.proc = lab.spawn(CLIENT, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        words = self.proc.read_line(10).split()
        assert words[0] == "connected", words
        self.port = int(words[1])

    def send(self) -> None:
        """Send the request (the server's kernel acknowledges it if it is reachable)."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(b"go\n")
        stdin.flush()
        assert self.proc.read_line(5).strip() == "sent"

    def outcome(self, timeout: float) -> tuple[str, float]:
        """How recv() ended and when (UNIX time); LabError when still blocked after timeout."""
        words = self.proc.read_line(timeout).split()
        return words[0], float(words[-1])


@pytest.fixture
def servers(lab: Lab) -> Iterator[dict[str, LabProcess]]:
    """The silent servers (ended by the lab with everything else)."""
    yield start_servers(lab)


def wait_known(cluster: LabCluster, standby: str, active: str) -> None:
    """Wait until the standby has the active node's list with the client's connection."""
    cluster.wait_for(
        "the standby to learn the active node's connection",
        lambda: (
            (s := cluster.status(standby)) is not None
            and s["connections"]["known"].get(active, 0) >= 1
        ),
        10,
    )


def vip_started_at(cluster: LabCluster, node: str) -> float:
    """When node's agent finished starting the floating IP (UNIX time)."""
    starts = [
        e
        for e in cluster.events(node)
        if e["kind"] == "resource" and str(e["message"]).startswith("vip start: ok")
    ]
    assert starts, cluster.events(node)
    return float(starts[-1]["at"])


def freeze_active(lab: Lab, cluster: LabCluster, servers: dict[str, LabProcess], node: str) -> None:
    """Stop node's agent and server: the kernel still runs, nothing more gets sent."""
    lab.freeze(cluster.agents[node])
    lab.freeze(servers[node])


@pytest.mark.parametrize("tickle", [True, False], ids=["tickle", "no-tickle"])
def test_a_client_of_a_frozen_active_node_is_freed_by_the_takeover(
    lab: Lab, servers: dict[str, LabProcess], tickle: bool
) -> None:
    cluster, active, standby, client = up_with_client(lab, tickle)
    client.send()
    if tickle:
        wait_known(cluster, standby, active)
    else:
        # Without tickles no list travels at all; give it the time one would have taken.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            status = cluster.status(standby)
            assert status is not None and status["connections"]["known"] == {}
            time.sleep(0.1)
    frozen_at = time.time()
    freeze_active(lab, cluster, servers, active)
    assert cluster.wait_active(30, other_than=active) == standby
    started = vip_started_at(cluster, standby)
    if tickle:
        how, when = client.outcome(FREED_WITHIN + 5)
        assert how == "reset", how
        print(f"\nclient freed {when - started:.3f} s after the floating IP started on "
              f"{standby} ({when - frozen_at:.3f} s after the freeze)")  # fmt: skip
        assert when - started < FREED_WITHIN
        tickles = cluster.wait_for(
            "the tickles in the history",
            lambda: [e for e in cluster.events(standby) if e["kind"] == "resource.tickle"],
            5,
        )
        assert len(tickles) == 1 and tickles[0]["connections"] == 1, tickles
        assert f"tickled 1 client connection(s) of {active}" in tickles[0]["message"]
    else:
        with pytest.raises(LabError, match="did not answer"):
            client.outcome(STILL_BLOCKED_FOR)
        blocked = time.time() - started
        print(f"\nwithout tickles the client is still blocked {blocked:.1f} s after the "
              f"floating IP started on {standby}")  # fmt: skip
        assert client.proc.alive()
        assert not [e for e in cluster.events(standby) if e["kind"] == "resource.tickle"]
        lab.kill(client.proc)


@pytest.mark.parametrize("tickle", [True, False], ids=["tickle", "no-tickle"])
def test_a_client_of_a_powered_off_node_is_freed_either_way(
    lab: Lab, servers: dict[str, LabProcess], tickle: bool
) -> None:
    cluster, active, standby, client = up_with_client(lab, tickle)
    if tickle:
        wait_known(cluster, standby, active)
    lost_at = time.time()
    lab.power_loss(active)
    # Sent into the void: never acknowledged, so the client's kernel retransmits it, and a
    # retransmission reaching the new holder gets a reset even without tickles.
    client.send()
    assert cluster.wait_active(30, other_than=active) == standby
    started = vip_started_at(cluster, standby)
    how, when = client.outcome(20)
    assert how == "reset", how
    print(f"\npower loss, tickle={tickle}: client freed {when - started:.3f} s after the "
          f"floating IP started ({when - lost_at:.3f} s after the power loss)")  # fmt: skip
    # The retransmission timer backs off (0.2, 0.4, 0.8, 1.6, 3.2 s...): allow a few rounds.
    assert when - started < (FREED_WITHIN if tickle else 8.0)


def test_an_ipv6_client_of_a_frozen_active_node_is_freed_by_the_takeover(
    lab: Lab, servers: dict[str, LabProcess]
) -> None:
    cluster, active, standby, client = up_with_client(lab, True, FLOATING_IPV6)
    client.send()
    wait_known(cluster, standby, active)
    freeze_active(lab, cluster, servers, active)
    assert cluster.wait_active(30, other_than=active) == standby
    started = vip_started_at(cluster, standby)
    how, when = client.outcome(FREED_WITHIN + 5)
    assert how == "reset", how
    print(f"\nIPv6: client freed {when - started:.3f} s after the floating IP started")
    assert when - started < FREED_WITHIN
