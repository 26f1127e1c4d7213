"""TOML file -> validated Cluster, or ConfigError naming file, line, key, expected and found.

Two stages: the schema here checks the shape of each value (types, units, formats, unknown
keys); then `budget.violations` checks the rules between values (node names unique, every
link reaching every node, the timing rules). Nothing half-checked ever leaves this module.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

from hotstandby.config.budget import violations
from hotstandby.config.errors import ConfigError, KeyPath, Problem, SchemaError, Violation, describe
from hotstandby.config.http import parse_http
from hotstandby.config.positions import line_of
from hotstandby.config.reader import Table, freeze, is_ip_address
from hotstandby.config.replication import parse_replication
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Link,
    LinkKind,
    Node,
    OnFail,
    Policies,
    Resource,
    ResourceKind,
    Timers,
    frozen_map,
)

_TOP_KEYS = (
    "cluster",
    "node",
    "link",
    "resource",
    "arbitration",
    "timers",
    "policies",
    "alarm",
    "http",
    "replication",
)
_LINK_KEYS = ("name", "kind", "endpoints", "port", "baud", "offset")
# Which optional link keys belong to which kind; any other kind setting them is an error,
# since a `baud` on a udp link means the author meant some other link.
_LINK_KIND_KEYS = {LinkKind.UDP: "port", LinkKind.SERIAL: "baud", LinkKind.DISK: "offset"}
_RESOURCE_KEYS = (
    "name",
    "kind",
    "start_timeout",
    "stop_timeout",
    "monitor_timeout",
    "monitor_interval",
    "on_fail",
    "params",
)
_ARBITRATION_KEYS = (
    "mode",
    "witness",
    "device",
    "fence",
    "fence_delay",
    "watchdog_timeout",
    "watchdog_device",
)
# Keys that only mean something in one mode; elsewhere they betray a confused file.
_MODE_KEYS = {
    "witness": ArbitrationMode.WITNESS,
    "device": ArbitrationMode.DISK,
    "fence": ArbitrationMode.FENCE,
    "fence_delay": ArbitrationMode.FENCE,
}
_TIMER_KEYS = (
    "interval",
    "warn_time",
    "dead_time",
    "initial_dead",
    "lease",
    "fence_timeout",
    "release",
    "max_drift",
)
_POLICY_KEYS = (
    "failback",
    "failback_delay",
    "max_restarts",
    "restart_window",
    "failure_expiry",
    "boot_alone",
)
_MISSING_ARBITRATION = (
    'an [arbitration] table with mode = "disk", "witness", "fence" or "none" '
    '("none" is heartbeat-only and risks split brain: a cut between the nodes makes both '
    "active, so it must be asked for by name)"
)
_WATCHDOG_DEVICE = "/dev/watchdog"
_TIMER_DEFAULTS = Timers()
_POLICY_DEFAULTS = Policies()
_RESOURCE_DEFAULTS = Resource(name="", kind=ResourceKind.SERVICE)
_ARBITRATION_DEFAULTS = Arbitration(mode=ArbitrationMode.NONE)
_LINK_DEFAULTS = Link(name="", kind=LinkKind.UDP, endpoints=frozen_map({}))
_NODE_DEFAULTS = Node(name="")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)|\s*\(at end of document\)")


def load(path: str | os.PathLike[str]) -> Cluster:
    """The validated cluster described by the TOML file at `path`; ConfigError if it is bad."""
    return load_bytes(read_file(path), os.fspath(path))


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a configuration file; ConfigError when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        found = err.strerror or str(err)
        raise ConfigError([Problem(os.fspath(path), None, (), "a readable file", found)]) from None


def load_text(text: str, path: str = "<text>") -> Cluster:
    """The validated cluster described by TOML `text`; `path` is used in messages only."""
    return load_bytes(text.encode("utf-8"), path)


def load_bytes(data: bytes, path: str) -> Cluster:
    """The validated cluster described by the TOML file contents `data`, read from `path`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        found = f"the byte 0x{data[err.start]:02x}"
        raise ConfigError([Problem(path, line, (), "UTF-8 text", found)]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError([_syntax_problem(path, text, str(err))]) from None
    try:
        cluster = _cluster(Table(doc, ()), hashlib.sha256(data).hexdigest())
    except SchemaError as err:
        raise ConfigError([_locate(path, text, err.violation)]) from None
    broken = violations(cluster)
    if broken:
        raise ConfigError([_locate(path, text, v) for v in broken])
    return cluster


def _syntax_problem(path: str, text: str, message: str) -> Problem:
    """tomllib's message carries the position as text: take the line out of it."""
    match = _TOML_POSITION.search(message)
    reason = message
    line = text.count("\n") + 1
    if match is not None:
        reason = message[: match.start()] + message[match.end() :]
        if match.group(1) is not None:
            line = int(match.group(1))
            reason += f" at column {match.group(2)}"
    return Problem(path, line, (), "valid TOML (https://toml.io)", reason.strip())


def _locate(path: str, text: str, violation: Violation) -> Problem:
    line = line_of(text, violation.key)
    return Problem(path, line, violation.key, violation.expected, violation.found)


def _cluster(doc: Table, digest: str) -> Cluster:
    doc.only(_TOP_KEYS)
    head = doc.table("cluster")
    if head is None:
        raise SchemaError(
            ("cluster",), "a [cluster] table with name and secret_file", "no [cluster] table"
        )
    head.only(("name", "secret_file"))
    arbitration = doc.table("arbitration")
    if arbitration is None:
        raise SchemaError(("arbitration",), _MISSING_ARBITRATION, "no [arbitration] table")
    timers = doc.table("timers") or Table({}, ("timers",))
    policies = doc.table("policies") or Table({}, ("policies",))
    return Cluster(
        name=head.name("name"),
        secret_file=head.path("secret_file", "the file holding the shared secret"),
        nodes=tuple(_node(t) for t in doc.tables("node")),
        links=tuple(_link(t) for t in doc.tables("link")),
        resources=tuple(_resource(t) for t in doc.tables("resource")),
        arbitration=_arbitration(arbitration),
        timers=_timers(timers),
        policies=_policies(policies),
        alarms=tuple(freeze(t.data) for t in doc.tables("alarm")),
        digest=digest,
        http=parse_http(doc.table("http"), [t.data.get("name") for t in doc.tables("node")]),
        replication=parse_replication(doc.table("replication")),
    )


def _node(table: Table) -> Node:
    table.only(("name", "priority", "address"))
    address = None
    if table.has("address"):
        address = table.address("address", "the node's own address on the client network")
    return Node(
        name=table.name(),
        priority=table.integer("priority", _NODE_DEFAULTS.priority, 0, 1_000_000),
        address=address,
    )


def _link(table: Table) -> Link:
    table.only(_LINK_KEYS)
    name = table.name()
    kind = table.choice("kind", LinkKind)
    for owner, key in _LINK_KIND_KEYS.items():
        if owner is not kind and table.has(key):
            expected = f"no {key} on a {kind.value} link ({key} is for {owner.value} links)"
            raise SchemaError(table.at(key), expected, describe(table.data[key]))
    endpoints = table.table("endpoints")
    if endpoints is None:
        expected = "a [link.endpoints] table: node name = " + _endpoint_kind(kind)
        raise SchemaError(table.at("endpoints"), expected, "none")
    return Link(
        name=name,
        kind=kind,
        endpoints=frozen_map(_endpoints(endpoints, kind)),
        port=table.integer("port", _LINK_DEFAULTS.port, 1, 65535),
        baud=table.integer("baud", _LINK_DEFAULTS.baud, 50, 4_000_000),
        offset=table.integer("offset", _LINK_DEFAULTS.offset, 0, 2**62),
    )


def _endpoint_kind(kind: LinkKind) -> str:
    if kind is LinkKind.UDP:
        return "its IPv4 or IPv6 address on this link"
    return "its device path" if kind is LinkKind.DISK else "its serial port device path"


def _endpoints(table: Table, kind: LinkKind) -> dict[str, str]:
    # Node names are checked against [[node]] later, with the other cross-table rules.
    out: dict[str, str] = {}
    what = _endpoint_kind(kind)
    for node in table.data:
        if kind is LinkKind.UDP:
            # An address, not a host name: heartbeats must not depend on DNS working.
            out[node] = table.address(node, what)
        else:
            out[node] = table.path(node, what)
    return out


def _resource(table: Table) -> Resource:
    table.only(_RESOURCE_KEYS)
    params = table.table("params")
    d = _RESOURCE_DEFAULTS
    return Resource(
        name=table.name(),
        kind=table.choice("kind", ResourceKind),
        # Open for the resource adapters of later issues: kept as given, read-only.
        params=freeze(params.data) if params is not None else d.params,
        start_timeout=table.duration("start_timeout", d.start_timeout),
        stop_timeout=table.duration("stop_timeout", d.stop_timeout),
        monitor_timeout=table.duration("monitor_timeout", d.monitor_timeout),
        monitor_interval=table.duration("monitor_interval", d.monitor_interval),
        on_fail=table.choice("on_fail", OnFail) if table.has("on_fail") else d.on_fail,
    )


def _arbitration(table: Table) -> Arbitration:
    table.only(_ARBITRATION_KEYS)
    mode = table.choice("mode", ArbitrationMode)
    for key, owner in _MODE_KEYS.items():
        if owner is not mode and table.has(key):
            expected = f"no {key} in {mode.value} mode ({key} is for {owner.value} mode)"
            raise SchemaError(table.at(key), expected, describe(table.data[key]))
    witness = None
    if table.has("witness"):
        witness = table.string("witness", _WITNESS_EXPECTED)
        if not _is_witness_address(witness):
            raise SchemaError(table.at("witness"), _WITNESS_EXPECTED, repr(witness))
    fences = []
    for fence in table.tables("fence"):
        fence.string("agent", 'the fence agent\'s name, e.g. "fence_ipmilan"')
        fences.append(freeze(fence.data))
    d = _ARBITRATION_DEFAULTS
    watchdog_timeout = table.duration("watchdog_timeout", d.watchdog_timeout, zero_ok=True)
    watchdog_device = None
    if table.has("watchdog_device"):
        watchdog_device = table.path("watchdog_device", "the hardware watchdog device")
        if watchdog_timeout == 0:
            expected = "a watchdog_timeout alongside watchdog_device"
            raise SchemaError(table.at("watchdog_timeout"), expected, "none")
    elif watchdog_timeout > 0:
        watchdog_device = _WATCHDOG_DEVICE
    return Arbitration(
        mode=mode,
        witness=witness,
        device=table.path("device", "the shared disk") if table.has("device") else None,
        fence=tuple(fences),
        fence_delay=table.duration("fence_delay", d.fence_delay, zero_ok=True),
        watchdog_timeout=watchdog_timeout,
        watchdog_device=watchdog_device,
    )


_WITNESS_EXPECTED = 'the witness as "host:port" (an IPv6 address in brackets: "[2001:db8::1]:9000")'
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _is_witness_address(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        return ":" in host and is_ip_address(host[1:-1])
    return _HOST.fullmatch(host) is not None


def _timers(table: Table) -> Timers:
    table.only(_TIMER_KEYS)
    d = _TIMER_DEFAULTS
    return Timers(
        interval=table.duration("interval", d.interval),
        warn_time=table.duration("warn_time", d.warn_time),
        dead_time=table.duration("dead_time", d.dead_time),
        initial_dead=table.duration("initial_dead", d.initial_dead),
        lease=table.duration("lease", d.lease),
        fence_timeout=table.duration("fence_timeout", d.fence_timeout),
        release=table.duration("release", d.release),
        # A fraction, not a duration: its range is a rule, checked in budget.
        max_drift=table.number("max_drift", d.max_drift),
    )


def _policies(table: Table) -> Policies:
    table.only(_POLICY_KEYS)
    d = _POLICY_DEFAULTS
    return Policies(
        failback=table.boolean("failback", d.failback),
        failback_delay=table.duration("failback_delay", d.failback_delay, zero_ok=True),
        max_restarts=table.integer("max_restarts", d.max_restarts, 0, 1000),
        restart_window=table.duration("restart_window", d.restart_window),
        failure_expiry=table.duration("failure_expiry", d.failure_expiry, zero_ok=True),
        boot_alone=table.boolean("boot_alone", d.boot_alone),
    )


__all__ = ["ConfigError", "KeyPath", "load", "load_bytes", "load_text", "read_file"]
