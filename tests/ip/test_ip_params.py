"""The ip resource's parameters and the resource factory: defaults, forms, and clear errors."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from hotstandby.agent.resources import KINDS, IpResource, build_resources
from hotstandby.agent.resources.ip import FloatingAddress, IpParams, parse_params
from hotstandby.config import load
from hotstandby.config.reader import freeze
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Node,
    Resource,
    ResourceKind,
)

#: A valid minimal resource, to break one key at a time.
OK = {"address": "192.0.2.10", "interface": "e"}

EXAMPLES = Path(__file__).parents[2] / "src" / "hotstandby" / "examples"


def parse(**params: Any) -> IpParams:
    """Parse params of a resource called vip on node a, frozen as the loader freezes them."""
    return parse_params("vip", freeze(params), "a")


def test_defaults_ipv4() -> None:
    p = parse(address="192.0.2.10", interface="lan0")
    assert p == IpParams(
        addresses=(FloatingAddress(ip_address("192.0.2.10"), 24),),
        interface="lan0",
        announce_count=3,
        announce_interval=0.2,
        check_conflict=True,
        conflict_timeout=0.3,
        tickle=True,
    )


def test_defaults_ipv6_prefix_is_64() -> None:
    p = parse(address="2001:db8:1::10", interface="lan0")
    assert p.addresses == (FloatingAddress(ip_address("2001:db8:1::10"), 64),)


def test_every_key() -> None:
    p = parse(
        address="192.0.2.10",
        prefix=32,
        interface="lan0",
        announce_count=0,
        announce_interval="50ms",
        check_conflict=False,
        conflict_timeout=0.5,
        tickle=False,
    )
    assert p.addresses[0].prefix == 32
    assert not p.tickle
    assert (p.announce_count, p.announce_interval) == (0, 0.05)
    assert (p.check_conflict, p.conflict_timeout) == (False, 0.5)


def test_durations_as_strings_or_seconds() -> None:
    assert (
        parse(address="192.0.2.10", interface="e", announce_interval="1.5s").announce_interval
        == 1.5
    )
    assert parse(address="192.0.2.10", interface="e", announce_interval=1).announce_interval == 1.0
    assert (
        parse(address="192.0.2.10", interface="e", conflict_timeout="300ms").conflict_timeout == 0.3
    )


def test_address_with_prefix_and_address_lists() -> None:
    p = parse(addresses=["192.0.2.10/25", "2001:db8:1::10/120"], interface="lan0")
    assert [str(a) for a in p.addresses] == ["192.0.2.10/25", "2001:db8:1::10/120"]
    assert parse(address="192.0.2.10/32", interface="e").addresses[0].prefix == 32


def test_interface_per_node() -> None:
    raw = freeze({"address": "192.0.2.10", "interface": {"a": "eth0", "b": "ens3"}})
    assert parse_params("vip", raw, "a").interface == "eth0"
    assert parse_params("vip", raw, "b").interface == "ens3"
    with pytest.raises(ValueError, match=r"resource 'vip': key 'interface': no entry for node 'c'"):
        parse_params("vip", raw, "c")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"interface": "e"}, "give exactly one of the keys 'address'"),
        ({"address": "x", "addresses": ["y"], "interface": "e"}, "not both"),
        ({"address": "192.0.2.10"}, "key 'interface' is required"),
        ({"address": "192.0.2.300", "interface": "e"}, "key 'address': expected an IPv4 or IPv6"),
        ({"address": 10, "interface": "e"}, "key 'address': expected .* found the number 10"),
        ({"address": "224.0.0.5", "interface": "e"}, "key 'address'"),
        ({"address": "::", "interface": "e"}, "key 'address'"),
        ({"address": "192.0.2.255", "interface": "e"}, "not the broadcast of 192.0.2.0/24"),
        ({"address": "192.0.2.10", "prefix": 33, "interface": "e"}, "key 'prefix': .* 0 to 32"),
        ({"address": "192.0.2.10", "prefix": "24", "interface": "e"}, 'key \'prefix\'.*found "24"'),
        ({"address": "192.0.2.10/24", "prefix": 24, "interface": "e"}, "prefix is given twice"),
        ({"addresses": [], "interface": "e"}, "key 'addresses': expected a non-empty list"),
        ({"addresses": ["192.0.2.10", 5], "interface": "e"}, r"key 'addresses'.*at addresses\[1\]"),
        ({"addresses": ["192.0.2.10", "192.0.2.10/32"], "interface": "e"}, "repeats"),
        ({"addresses": ["192.0.2.10"], "prefix": 24, "interface": "e"}, "'prefix' goes with"),
        ({"address": "192.0.2.10", "interface": "a-very-long-name0"}, "key 'interface'"),
        ({"address": "192.0.2.10", "interface": "a/b"}, "key 'interface'"),
        ({"address": "192.0.2.10", "interface": ["e"]}, "key 'interface'.*found an array"),
        ({**OK, "announce_count": -1}, "'announce_count'"),
        ({**OK, "announce_count": True}, "found true"),
        ({**OK, "announce_interval": "fast"}, "'announce_interval'"),
        ({**OK, "announce_interval": 0}, "'announce_interval'"),
        ({**OK, "announce_interval": "1h"}, "at most 10s"),
        ({**OK, "check_conflict": "yes"}, "'check_conflict': expected true or false"),
        ({**OK, "conflict_timeout": -1}, "'conflict_timeout'"),
        ({**OK, "tickle": "off"}, "'tickle': expected true or false"),
        ({**OK, "adress": "x"}, "key 'adress': unknown"),
    ],
)  # fmt: skip
def test_errors_name_the_resource_and_the_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse(**params)
    assert str(caught.value).startswith("resource 'vip': ")


def cluster_with(*resources: Resource) -> Cluster:
    """A two-node cluster holding resources."""
    return Cluster(
        name="t",
        secret_file="/dev/null",
        nodes=(Node("a"), Node("b")),
        links=(),
        resources=resources,
        arbitration=Arbitration(ArbitrationMode.NONE),
    )


def test_build_resources_builds_ip() -> None:
    params = MappingProxyType({"address": "192.0.2.10", "interface": "lan0"})
    built = build_resources(cluster_with(Resource("vip", ResourceKind.IP, params)), "a")
    assert list(built) == ["vip"]
    assert isinstance(built["vip"], IpResource)
    assert built["vip"].name == "vip"


def test_build_resources_refuses_kinds_not_built_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    ip = Resource(
        "vip", ResourceKind.IP, MappingProxyType({"address": "192.0.2.10", "interface": "e"})
    )
    # Every kind has its adapter now: take one away, as a kind still to come would be.
    waiting = ResourceKind.POSTGRES
    monkeypatch.delitem(KINDS, waiting)
    with pytest.raises(ValueError) as caught:
        build_resources(cluster_with(ip, Resource("x", waiting)), "a")
    assert str(caught.value) == f"resource 'x': kind {waiting.value!r} is not supported yet"


def test_build_resources_passes_param_errors_on() -> None:
    bad = Resource("vip", ResourceKind.IP, MappingProxyType({"address": "192.0.2.10"}))
    with pytest.raises(ValueError, match="resource 'vip': key 'interface' is required"):
        build_resources(cluster_with(bad), "a")


def test_build_resources_unknown_node() -> None:
    with pytest.raises(ValueError, match="no node 'c'"):
        build_resources(cluster_with(), "c")


def test_shipped_example_ip_resource_parses() -> None:
    cluster = load(EXAMPLES / "classic-database.toml")
    vip = next(r for r in cluster.resources if r.kind is ResourceKind.IP)
    p = parse_params(vip.name, vip.params, cluster.node_names[0])
    assert {a.address.version for a in p.addresses} == {4, 6}
