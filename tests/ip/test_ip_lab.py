"""The floating IP on real interfaces: nodes a and b and a client on one bridged LAN.

Each node's adapter runs in its own process inside the node's namespace (ip_helper.py), as
the agent does. The client keeps its kernel defaults (arp_accept=0, no accept_untracked_na):
those already let a gratuitous ARP or an override advertisement update an entry the client
has, which is the case that matters in a takeover (clients that never talked to the address
have nothing stale to fix). ndisc_notify is a sender-side switch (the kernel announcing its
own address changes) and stays off on the nodes, so every announcement seen here is ours.
"""

from __future__ import annotations

import itertools
import subprocess
from typing import Any

import pytest

from hotstandby.lab import CLIENT, FLOATING_IPV4, FLOATING_IPV6, Lab

from .ip_lab import AdapterHost, Reply, Sniffer, mac_of, neighbour, wait_for

pytestmark = pytest.mark.lab

FAMILIES = pytest.mark.parametrize("address", [FLOATING_IPV4, FLOATING_IPV6], ids=["v4", "v6"])
#: Bound on waiting for the kernel to report a carrier change (it does so about once a second).
CARRIER_TIMEOUT = 5.0


#: One resource moving both families together.
BOTH = {"addresses": [FLOATING_IPV4 + "/24", FLOATING_IPV6 + "/64"], "interface": "lan0"}


def params(address: str, **more: Any) -> dict[str, Any]:
    """An ip resource on the lab's LAN interface."""
    return {"address": address, "interface": "lan0", **more}


def lladdr(lab: Lab, node: str, address: str) -> str | None:
    """The MAC node's neighbour cache has for address, if any."""
    entry = neighbour(lab, node, address)
    return None if entry is None else entry.get("lladdr")


def announcements(records: list[dict[str, Any]], mac: str) -> list[dict[str, Any]]:
    """Gratuitous ARP requests / unsolicited adverts from mac, one per announcement round."""
    return [
        r
        for r in records
        if r["mac"] == mac
        and (
            (r["kind"] == "arp-request" and r["spa"] == r["tpa"])
            or (r["kind"] == "na" and r["dst"] == "ff02::1")
        )
    ]


@pytest.mark.parametrize(
    "resource",
    [params(FLOATING_IPV4), params(FLOATING_IPV6), BOTH],
    ids=["v4", "v6", "both"],
)  # fmt: skip
def test_start_serves_the_address_and_stop_removes_it(lab: Lab, resource: dict[str, Any]) -> None:
    addresses = [FLOATING_IPV4, FLOATING_IPV6] if "addresses" in resource else [resource["address"]]
    a = AdapterHost(lab, "a", resource)
    assert a.run("probe").outcome == "stopped"
    assert a.run("monitor").outcome == "stopped"

    started = a.run("start")
    assert started.outcome == "ok", started.detail
    for address in addresses:
        assert lab.holders(address) == ["a"]
        assert lab.ping(CLIENT, address), address
    assert a.run("monitor").outcome == "ok"
    assert a.run("probe").outcome == "ok"
    again = a.run("start")
    assert (again.outcome, again.detail) == ("ok", "already configured on lan0")

    stopped = a.run("stop")
    assert stopped.outcome == "ok", stopped.detail
    for address in addresses:
        assert lab.holders(address) == []
    assert a.run("monitor").outcome == "stopped"
    assert a.run("stop").outcome == "ok"  # already gone


def test_partly_configured_is_a_failed_monitor(lab: Lab) -> None:
    a = AdapterHost(lab, "a", BOTH)
    assert a.run("start").outcome == "ok"
    lab.run("a", ["ip", "addr", "del", FLOATING_IPV6 + "/64", "dev", "lan0"])
    monitor = a.run("monitor")
    assert monitor.outcome == "failed"
    assert FLOATING_IPV6 in monitor.detail and "missing" in monitor.detail
    assert a.run("stop").outcome == "ok"
    assert lab.holders(FLOATING_IPV4) == []


@FAMILIES
def test_takeover_moves_the_client_by_announcement_alone(lab: Lab, address: str) -> None:
    a = AdapterHost(lab, "a", params(address))
    b = AdapterHost(lab, "b", params(address))
    mac_a, mac_b = mac_of(lab, "a"), mac_of(lab, "b")
    assert a.run("start").outcome == "ok"
    assert lab.ping(CLIENT, address)
    assert lladdr(lab, CLIENT, address) == mac_a

    sniffer = Sniffer(lab, CLIENT, address)
    assert a.run("stop").outcome == "ok"
    started = b.run("start")
    assert started.outcome == "ok", started.detail
    wait_for("the client's entry to move to b", lambda: lladdr(lab, CLIENT, address) == mac_b)
    assert b.run("wait_announced").outcome == "ok"
    seen = sniffer.stop()

    # The client learnt b's MAC without asking: it sent nothing about the address.
    assert [r for r in seen if r["out"]] == []
    rounds = announcements(seen, mac_b)
    assert len(rounds) == 3  # announce_count
    times = [r["t"] for r in rounds]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.2 * 0.9 for gap in gaps), gaps  # not faster than announce_interval
    if address == FLOATING_IPV4:
        replies = [r for r in seen if r["mac"] == mac_b and r["kind"] == "arp-reply"]
        assert len(replies) == 3
    else:
        assert all(r["hop_limit"] == 255 and r["override"] for r in rounds)
    gap_text = ", ".join(f"{g * 1000:.0f}" for g in gaps)
    print(
        f"\n{address}: start {started.took * 1000:.0f} ms ({started.detail}); "
        f"first announcement at the client {(times[0] - started.began) * 1000:.1f} ms after "
        f"the start call (which returned after {started.took * 1000:.1f} ms); gaps {gap_text} ms"
    )
    assert lab.ping(CLIENT, address)
    assert lab.holders(address) == ["b"]


@FAMILIES
def test_without_announcements_the_client_keeps_the_old_mac(lab: Lab, address: str) -> None:
    # The control for the test above: nothing else (b's kernel, the bridge) moves the entry.
    a = AdapterHost(lab, "a", params(address))
    b = AdapterHost(lab, "b", params(address, announce_count=0))
    assert a.run("start").outcome == "ok"
    assert lab.ping(CLIENT, address)
    sniffer = Sniffer(lab, CLIENT, address)
    assert a.run("stop").outcome == "ok"
    started = b.run("start")
    assert started.outcome == "ok" and "not announced" in started.detail
    seen = sniffer.stop()
    assert announcements(seen, mac_of(lab, "b")) == []
    assert lladdr(lab, CLIENT, address) == mac_of(lab, "a")


@FAMILIES
def test_stop_cancels_pending_announcements(lab: Lab, address: str) -> None:
    a = AdapterHost(lab, "a", params(address, announce_count=50, announce_interval="20ms"))
    b = AdapterHost(lab, "b", params(address))
    sniffer = Sniffer(lab, CLIENT, address)
    assert a.run("start").outcome == "ok"
    stopped = a.run("stop")
    # b's probe and its three rounds take about 0.7 s, in which a would have sent 35 more.
    assert b.run("start").outcome == "ok"
    assert b.run("wait_announced").outcome == "ok"
    seen = sniffer.stop()
    from_a = announcements(seen, mac_of(lab, "a"))
    assert from_a, "a announced nothing at all"
    assert all(r["t"] <= stopped.ended for r in from_a)
    assert lladdr(lab, CLIENT, address) in (None, mac_of(lab, "b"))


@FAMILIES
def test_conflict_refuses_the_address(lab: Lab, address: str) -> None:
    prefix = "24" if address == FLOATING_IPV4 else "64"
    lab.run("b", ["ip", "addr", "add", f"{address}/{prefix}", "dev", "lan0", "nodad"])
    a = AdapterHost(lab, "a", params(address))
    result = a.run("start")
    assert result.outcome == "failed"
    assert result.detail.startswith("address conflict:"), result.detail
    assert f"answered by MAC {mac_of(lab, 'b')}" in result.detail
    assert lab.holders(address) == ["b"]
    assert a.run("monitor").outcome == "stopped"
    print(f"\n{address}: conflict reported in {result.took * 1000:.1f} ms")


def test_start_without_conflict_check_sends_no_probe(lab: Lab) -> None:
    a = AdapterHost(lab, "a", params(FLOATING_IPV4, check_conflict=False))
    sniffer = Sniffer(lab, CLIENT, FLOATING_IPV4)
    started = a.run("start")
    assert started.outcome == "ok"
    assert lab.ping(CLIENT, FLOATING_IPV4)
    seen = sniffer.stop()
    assert not [r for r in seen if r["kind"] == "arp-request" and r["spa"] == "0.0.0.0"]
    print(f"\nstart without the conflict probe: {started.took * 1000:.1f} ms ({started.detail})")


def test_a_released_start_sends_no_probe_even_when_configured(lab: Lab) -> None:
    a = AdapterHost(lab, "a", params(FLOATING_IPV4))
    sniffer = Sniffer(lab, CLIENT, FLOATING_IPV4)
    started = a.run("start-released")
    assert started.outcome == "ok"
    assert "no conflict probe: the previous holder released it" in started.detail
    assert lab.ping(CLIENT, FLOATING_IPV4)
    seen = sniffer.stop()
    assert not [r for r in seen if r["kind"] == "arp-request" and r["spa"] == "0.0.0.0"]
    assert [r for r in seen if r["kind"] == "arp-request" and r["spa"] == FLOATING_IPV4]


def test_link_down_fails_monitor_and_start(lab: Lab) -> None:
    a = AdapterHost(lab, "a", params(FLOATING_IPV4))
    a6 = AdapterHost(lab, "a", params(FLOATING_IPV6), name="vip6")
    assert a.run("start").outcome == "ok"
    port = lab.link("lan-a").other("a")
    # Unplug the cable at the switch: a's side keeps its address but loses carrier.
    subprocess.run(
        ["ip", "-n", port.ns, "link", "set", port.ifname, "down"], check=True, timeout=10
    )

    def failed_monitor() -> Reply | None:
        reply = a.run("monitor")
        return reply if reply.outcome == "failed" else None

    down = wait_for("monitor to fail", failed_monitor, CARRIER_TIMEOUT)
    # A veth whose peer is down reports operstate DOWN, with IFF_UP still set.
    assert down.detail == "interface lan0 is not usable (operstate DOWN, no carrier)"
    refused = a6.run("start")
    assert refused.outcome == "failed" and "not usable" in refused.detail
    assert lab.holders(FLOATING_IPV6) == []
    subprocess.run(["ip", "-n", port.ns, "link", "set", port.ifname, "up"], check=True, timeout=10)
    wait_for("monitor to recover", lambda: a.run("monitor").outcome == "ok", CARRIER_TIMEOUT)


def test_missing_interface(lab: Lab) -> None:
    a = AdapterHost(lab, "a", {"address": FLOATING_IPV4, "interface": "nope0"})
    result = a.run("start")
    assert (result.outcome, result.detail) == ("failed", "no interface 'nope0'")
    assert a.run("monitor").outcome == "stopped"
    assert a.run("stop").outcome == "ok"
