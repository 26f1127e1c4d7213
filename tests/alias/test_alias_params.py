"""The alias resource's parameters, its place in the registry, and its host risks."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import ip_address
from pathlib import Path
from types import MappingProxyType
from typing import Any

import dns.name
import pytest

from hotstandby.agent.resources import (
    KINDS,
    ParamError,
    build_resources,
    host_risks,
    validate,
)
from hotstandby.agent.resources.alias import AliasParams, AliasResource, OnStop, parse_params
from hotstandby.cli import main
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
from hotstandby.lab.dns import key_file_text

EXAMPLES = Path(__file__).parents[2] / "src" / "hotstandby" / "examples"

#: A valid resource, to break one key at a time.
OK: dict[str, Any] = {
    "hostname": "db.example.org.",
    "zone": "example.org.",
    "server": "192.0.2.53",
    "key_file": "/etc/hotstandby/ddns.key",
}

VIP = Resource(
    "vip",
    ResourceKind.IP,
    freeze({"addresses": ["192.0.2.10/24", "2001:db8:10::10/64"], "interface": "eth0"}),
)


def alias(params: dict[str, Any], **timeouts: Any) -> Resource:
    """An alias resource called db-name with params (frozen as the loader freezes them)."""
    return Resource("db-name", ResourceKind.ALIAS, freeze(params), **timeouts)


def cluster_of(*resources: Resource, beta_address: str | None = "192.0.2.12") -> Cluster:
    """Two nodes with their own addresses (beta's may be left out) and the resources."""
    return Cluster(
        name="c",
        secret_file="/s",
        nodes=(Node("alpha", address="192.0.2.11"), Node("beta", address=beta_address)),
        links=(),
        resources=resources,
        arbitration=Arbitration(ArbitrationMode.NONE),
    )


def parse(node: str = "alpha", cluster: Cluster | None = None, **params: Any) -> AliasParams:
    """The params of OK with `params` changed (None removes a key), for node."""
    merged = {**OK, **params}
    resource = alias({k: v for k, v in merged.items() if v is not None})
    return parse_params(resource, node, cluster or cluster_of(VIP, resource))


def error(node: str = "alpha", cluster: Cluster | None = None, **params: Any) -> str:
    """The ParamError message for OK with `params` changed."""
    with pytest.raises(ParamError) as caught:
        parse(node, cluster, **params)
    return str(caught.value)


def test_defaults_point_at_the_nodes_own_address() -> None:
    p = parse()
    assert p == AliasParams(
        hostname=dns.name.from_text("db.example.org."),
        zone=dns.name.from_text("example.org."),
        server=ip_address("192.0.2.53"),
        port=53,
        key_file="/etc/hotstandby/ddns.key",
        key_name=None,
        ttl=30,
        addresses=(ip_address("192.0.2.11"),),
        on_stop=OnStop.KEEP,
        timeout=2.0,
    )
    assert parse("beta").addresses == (ip_address("192.0.2.12"),)
    assert p.where == "192.0.2.53:53"


def test_names_without_the_final_dot_are_fully_qualified() -> None:
    p = parse(hostname="DB.Example.org", zone="example.ORG")
    assert p.hostname == dns.name.from_text("db.example.org.")
    assert p.zone == dns.name.from_text("example.org.")


def test_every_key_can_be_set() -> None:
    p = parse(
        server="2001:db8::53",
        port=5353,
        key_name="ddns-key",
        ttl=0,
        on_stop="remove",
        timeout="1.5s",
    )
    assert (p.server, p.port, p.key_name, p.ttl, p.on_stop, p.timeout) == (
        ip_address("2001:db8::53"),
        5353,
        "ddns-key",
        0,
        OnStop.REMOVE,
        1.5,
    )
    assert p.where == "[2001:db8::53]:5353"


def test_floating_takes_every_address_of_the_ip_resources() -> None:
    other = Resource("vip2", ResourceKind.IP, freeze({"address": "192.0.2.9", "interface": "eth1"}))
    resource = alias({**OK, "address": "floating"})
    p = parse_params(resource, "beta", cluster_of(VIP, other, resource))
    # IPv4 first, each family sorted: records and answers compare in this order.
    assert p.addresses == tuple(map(ip_address, ("192.0.2.9", "192.0.2.10", "2001:db8:10::10")))


def test_explicit_addresses_the_same_on_every_node() -> None:
    assert parse(address="2001:db8::7").addresses == (ip_address("2001:db8::7"),)
    both = parse("beta", address=["2001:db8::7", "192.0.2.7"]).addresses
    assert both == (ip_address("192.0.2.7"), ip_address("2001:db8::7"))


def test_explicit_addresses_per_node() -> None:
    table = {"alpha": "192.0.2.21", "beta": ["192.0.2.22", "2001:db8::22"]}
    assert parse("alpha", address=table).addresses == (ip_address("192.0.2.21"),)
    assert parse("beta", address=table).addresses == (
        ip_address("192.0.2.22"),
        ip_address("2001:db8::22"),
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"hostname": None}, "key 'hostname' is required (a DNS name"),
        ({"zone": None}, "key 'zone' is required"),
        ({"server": None}, "key 'server' is required"),
        ({"key_file": None}, "key 'key_file' is required"),
        ({"hostname": 7}, "key 'hostname': expected a DNS name"),
        ({"hostname": "."}, "key 'hostname': expected a DNS name"),
        ({"hostname": "*.example.org."}, "without wildcards"),
        ({"hostname": "a..example.org"}, "key 'hostname': 'a..example.org' is not a DNS name"),
        ({"hostname": "db.example.net."}, "key 'hostname': db.example.net. is not in zone"),
        ({"server": "ns.example.org"}, "key 'server': expected the IPv4 or IPv6 address"),
        ({"server": "ns.example.org"}, "not a host name"),
        ({"server": "224.0.0.1"}, "key 'server': expected"),
        ({"port": 0}, "key 'port': expected an integer from 1 to 65535, found the number 0"),
        ({"key_file": "ddns.key"}, "key 'key_file': expected an absolute path"),
        ({"key_name": ""}, "key 'key_name': expected a non-empty string"),
        ({"ttl": 3601}, "key 'ttl': expected an integer from 0 to 3600, found the number 3601"),
        ({"ttl": "30s"}, "key 'ttl': expected an integer from 0 to 3600, found \"30s\""),
        ({"on_stop": "delete"}, 'key \'on_stop\': expected "keep" or "remove"'),
        ({"timeout": "1m"}, "key 'timeout': expected a duration above 0 and at most 30s"),
        ({"timeout": "0s"}, "key 'timeout': expected a duration"),
        ({"address": "nodes"}, "key 'address': expected an IPv4 or IPv6 unicast address"),
        ({"address": "127.0.0.1"}, "key 'address': expected an IPv4 or IPv6 unicast"),
        ({"address": []}, 'key \'address\': expected "node", "floating", an address'),
        ({"address": ["192.0.2.1", 5]}, "found the number 5 (at address[1])"),
        ({"address": ["192.0.2.1", "192.0.2.1"]}, "key 'address': an address repeats"),
        ({"address": {"beta": "192.0.2.1"}}, "key 'address': no entry for node 'alpha'"),
        ({"address": {"alpha": "x"}}, "(at address.alpha)"),
        ({"ttl": 30, "tll": 30}, "key 'tll': unknown (a resource of kind alias takes address,"),
    ],
)
def test_bad_params_name_the_resource_and_the_key(params: dict[str, Any], message: str) -> None:
    text = error(**params)
    assert text.startswith("resource 'db-name': key ")
    assert message in text


def test_node_address_missing_is_an_error_for_that_node() -> None:
    cluster = cluster_of(VIP, alias(OK), beta_address=None)
    assert parse("alpha", cluster).addresses == (ip_address("192.0.2.11"),)
    text = error("beta", cluster)
    assert text.startswith("resource 'db-name': key 'address' is \"node\" (the default)")
    assert "node 'beta' has no address" in text


def test_floating_needs_an_ip_resource() -> None:
    resource = alias({**OK, "address": "floating"})
    with pytest.raises(ParamError, match="the cluster has no resource of kind ip"):
        parse_params(resource, "alpha", cluster_of(resource))
    broken = Resource("vip", ResourceKind.IP, freeze({"address": "192.0.2.10"}))
    with pytest.raises(ParamError, match="ip resource 'vip' has bad parameters"):
        parse_params(resource, "alpha", cluster_of(broken, resource))


def test_without_the_cluster_only_explicit_addresses_read() -> None:
    resource = alias(OK)
    with pytest.raises(ParamError, match="node 'alpha' has no address"):
        parse_params(resource, "alpha", None)
    explicit = alias({**OK, "address": "192.0.2.7"})
    assert parse_params(explicit, "alpha", None).addresses == (ip_address("192.0.2.7"),)


def test_the_timeout_must_fit_the_resource_timeouts() -> None:
    roomy = alias({**OK, "timeout": "5s"}, start_timeout=10.0, monitor_timeout=5.0)
    assert parse_params(roomy, "alpha", cluster_of(roomy)).timeout == 5.0
    for resource, which in [
        (alias({**OK, "timeout": "5s"}, start_timeout=9.0), "start_timeout (9s)"),
        (alias({**OK, "timeout": "5s"}, monitor_timeout=4.0), "monitor_timeout (4s)"),
        (
            alias({**OK, "timeout": "5s", "on_stop": "remove"}, stop_timeout=4.0),
            "stop_timeout (4s)",
        ),
    ]:
        with pytest.raises(ParamError) as caught:
            parse_params(resource, "alpha", cluster_of(resource))
        assert str(caught.value).startswith("resource 'db-name': key 'timeout': 5s is too long")
        assert which in str(caught.value)
    # A stop that keeps the record sends nothing: its timeout does not matter.
    keep = alias({**OK, "timeout": "5s"}, stop_timeout=1.0)
    assert parse_params(keep, "alpha", cluster_of(keep)).on_stop is OnStop.KEEP


def test_registry_validates_for_every_node_and_builds() -> None:
    assert ResourceKind.ALIAS in KINDS
    good = alias(OK)
    assert validate(cluster_of(VIP, good)) == []
    errors = validate(cluster_of(VIP, good, beta_address=None))
    assert [str(e) for e in errors] == [
        "resource 'db-name': key 'address' is \"node\" (the default) but node 'beta' has no "
        'address in its [[node]] table: give it one, or set address = "floating" or the '
        "addresses"
    ]
    assert errors[0].key == "address"
    built = build_resources(cluster_of(VIP, good), "beta")
    adapter = built["db-name"]
    assert isinstance(adapter, AliasResource)
    assert adapter.params.addresses == (ip_address("192.0.2.12"),)


def test_the_classic_example_is_a_valid_alias() -> None:
    cluster = load(EXAMPLES / "classic-database.toml")
    resource = next(r for r in cluster.resources if r.kind is ResourceKind.ALIAS)
    for node, address in (("alpha", "192.0.2.11"), ("beta", "192.0.2.12")):
        p = KINDS[ResourceKind.ALIAS].bound(cluster).parse(resource, node)
        assert isinstance(p, AliasParams)
        assert p.hostname == dns.name.from_text("db.example.org.")
        assert p.zone == dns.name.from_text("example.org.")
        assert (str(p.server), p.port, p.ttl) == ("192.0.2.53", 53, 30)
        assert p.key_file == "/etc/hotstandby/ddns.key"
        assert p.addresses == (ip_address(address),)


# ---- host risks ------------------------------------------------------------------------------


def risks_for(path: Path, **extra: Any) -> list[tuple[str | None, str]]:
    """The alias resource's host risks with its key file at path."""
    resource = alias({**OK, "key_file": str(path), **extra})
    return [(key, message) for _, key, message in host_risks(cluster_of(resource), "alpha")]


def test_a_private_key_file_is_no_risk(tmp_path: Path) -> None:
    key = tmp_path / "ddns.key"
    key.write_text(key_file_text("k", b"0123456789abcdef"))
    for mode in (0o600, 0o640, 0o400):
        key.chmod(mode)
        assert risks_for(key) == []


def test_a_missing_key_file_is_a_risk_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    assert risks_for(path) == [("key_file", f"the key file {path} does not exist on this machine")]
    assert validate(cluster_of(alias({**OK, "key_file": str(path)}))) == []


def test_a_key_file_open_to_others_is_a_risk(tmp_path: Path) -> None:
    key = tmp_path / "ddns.key"
    key.write_text(key_file_text("k", b"0123456789abcdef"))
    for mode in (0o644, 0o660, 0o604):
        key.chmod(mode)
        found = risks_for(key)
        assert len(found) == 1
        assert found[0][0] == "key_file"
        assert f"has mode {mode:04o}" in found[0][1]
        assert "make it 0600 or 0640" in found[0][1]


def test_a_key_file_that_holds_no_usable_key_is_a_risk(tmp_path: Path) -> None:
    key = tmp_path / "ddns.key"
    key.write_text('key "k" { algorithm hmac-sha256; };\n')
    key.chmod(0o600)
    assert risks_for(key) == [
        ("key_file", f"the key file cannot be used: {key}:1: key 'k' has no secret")
    ]
    key.write_text(key_file_text("k", b"secret"))
    assert risks_for(key, key_name="other") == [
        ("key_file", f"the key file cannot be used: {key}: no key 'other' (it holds k)")
    ]


def test_a_key_file_that_is_a_directory_is_a_risk(tmp_path: Path) -> None:
    assert risks_for(tmp_path) == [("key_file", f"the key file {tmp_path} is not a regular file")]


def test_a_key_file_that_cannot_be_looked_at_is_a_risk(tmp_path: Path) -> None:
    # Root reads every file, so "cannot look" comes from a path through a plain file.
    plain = tmp_path / "plain"
    plain.write_text("")
    found = risks_for(plain / "ddns.key")
    assert found == [
        ("key_file", f"the key file {plain / 'ddns.key'} cannot be looked at: Not a directory")
    ]


# ---- hotstandby check ------------------------------------------------------------------------


def test_check_names_the_line_of_a_bad_alias_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "classic-database.toml").read_text()
    bad = text.replace("ttl = 30 ", "ttl = 99999 ")
    path = tmp_path / "cluster.toml"
    path.write_text(bad)
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if t.startswith("ttl = 99999"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"{path}:{line}: resource 'db-name': key 'ttl': expected an integer from 0 to 3600, "
        "found the number 99999"
    )


def test_check_warns_of_the_key_file_on_a_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "classic-database.toml").read_text()
    key = tmp_path / "ddns.key"
    key.write_text(key_file_text("k", b"secret"))
    key.chmod(0o644)
    path = tmp_path / "cluster.toml"
    path.write_text(text.replace("/etc/hotstandby/ddns.key", str(key)))
    assert main(["check", str(path), "--node", "beta"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    # The warning names the key's line (wrapping may break the long path itself).
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("key_file = "))
    assert f"{path}:{line}: resource[2].params.key_file: on beta: resource 'db-name'" in out
    assert "has mode 0644: anyone who can read it can move the name" in out
    key.chmod(0o600)
    assert main(["check", str(path), "--node", "beta"]) == 0
    assert "resource[2].params.key_file" not in capsys.readouterr().out


def test_params_are_read_from_a_read_only_mapping() -> None:
    # The loader freezes params; nothing here may rely on a plain dict.
    resource = Resource("db-name", ResourceKind.ALIAS, MappingProxyType(dict(OK)))
    assert parse_params(resource, "alpha", cluster_of(resource)).ttl == 30


def test_dnspython_loads_only_for_a_cluster_with_an_alias() -> None:
    # The daemon's memory is locked: a cluster without a floating hostname does not carry
    # dnspython (about 6 MiB). Validating reads every kind's parameters, as the agent does.
    code = (
        "import sys\n"
        "from hotstandby.cli import build_parser\n"
        "from hotstandby.config import load\n"
        "from hotstandby.agent.resources import validate\n"
        "build_parser('agent')\n"
        "validate(load(sys.argv[1]))\n"
        "print('dns' in sys.modules)\n"
    )
    assert 'kind = "alias"' not in (EXAMPLES / "heartbeat-only.toml").read_text()
    for example, loaded in (("heartbeat-only.toml", "False"), ("classic-database.toml", "True")):
        argv = [sys.executable, "-c", code, str(EXAMPLES / example)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
        assert out.stdout.strip() == loaded, out.stderr
