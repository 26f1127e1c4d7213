"""PostgreSQL replicated mode: its parameters and the words it speaks to the server.

Pure helpers of the postgres kind's replicated mode (see `postgres.py` for the parameters'
meaning): reading `replication_*`, `follow_timeout` and `diverged_dir`, the conninfo a
replica streams with, WAL positions as numbers, and synchronous_standby_names both ways.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from hotstandby.agent.resources.params import ParamError, ParamReader

KEYS = frozenset(
    {
        "replication_address",
        "replication_user",
        "replication_passfile",
        "replication_slots",
        "follow_timeout",
        "diverged_dir",
    }
)
# Keys that may hold one value per node: { alpha = ..., beta = ... }.
PER_NODE_KEYS = ("pgdata", "port", "socket_dir", "log")
DEFAULT_FOLLOW_TIMEOUT = 600.0
MAX_FOLLOW_TIMEOUT = 24 * 3600.0
# A node name that is safe as application_name, inside synchronous_standby_names' quotes and
# (with "-" as "_") in a replication slot's name.
NODE_NAME = re.compile(r"[a-z0-9_-]+")
SLOT_PREFIX = "hotstandby_"
# Settings the adapter owns in replicated mode: set in `settings` (on the command line), they
# would override what it sets (synchronous_standby_names by ALTER SYSTEM) or sets itself.
OWNED_SETTINGS = frozenset(
    {"synchronous_standby_names", "primary_conninfo", "primary_slot_name", "wal_log_hints"}
)
LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


@dataclass(frozen=True)
class ReplicationParams:
    """The replicated mode's parameters, as seen from one node."""

    node: str  # this node: its replica's application_name
    addresses: Mapping[str, str]  # node -> the address replicas connect to for its server
    ports: Mapping[str, int]  # node -> its server's port
    user: str = "postgres"
    passfile: str = ""
    slots: bool = True
    follow_timeout: float = DEFAULT_FOLLOW_TIMEOUT
    diverged_dir: str = ""

    @property
    def others(self) -> tuple[str, ...]:
        """Every other node, in name order."""
        return tuple(sorted(n for n in self.addresses if n != self.node))

    def conninfo(self, primary: str, **extra: str) -> str:
        """The libpq conninfo of `primary`'s server, as this node's replica."""
        parts = {
            "host": self.addresses[primary],
            "port": str(self.ports[primary]),
            "user": self.user,
            "application_name": self.node,
            **({"passfile": self.passfile} if self.passfile else {}),
            **extra,
        }
        return " ".join(f"{key}={quote_conninfo(value)}" for key, value in parts.items())


def slot_name(node: str) -> str:
    """The physical replication slot the primary keeps for `node`'s replica."""
    return SLOT_PREFIX + node.replace("-", "_")


def quote_conninfo(value: str) -> str:
    """A conninfo value, quoted when it needs it."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo_values(conninfo: str) -> dict[str, str]:
    """The key=value pairs of a conninfo string (values unquoted)."""
    out: dict[str, str] = {}
    for match in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", conninfo):
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[match.group(1)] = value
    return out


def lsn_int(text: str) -> int:
    """A WAL position as PostgreSQL prints it ("16/B374D848") as a number of bytes."""
    match = LSN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a WAL position: {text!r}")
    return int(match.group(1), 16) << 32 | int(match.group(2), 16)


def standby_names_for(nodes: tuple[str, ...]) -> str:
    """synchronous_standby_names that makes every commit wait for each of `nodes`."""
    if not nodes:
        return ""
    quoted = ", ".join(f'"{n}"' for n in nodes)
    return f"FIRST {len(nodes)} ({quoted})"


def standby_names_in(setting: str) -> tuple[str, ...]:
    """The names synchronous_standby_names lists ("FIRST 1 (a, b)", "ANY 2 (...)", "a, b")."""
    text = setting.strip()
    match = re.fullmatch(r"(?:(?:FIRST|ANY)\s+)?\d+\s*\((.*)\)", text, re.IGNORECASE | re.DOTALL)
    if match:
        text = match.group(1)
    names = []
    for item in text.split(","):
        name = item.strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('""', '"')
        if name:
            names.append(name)
    return tuple(names)


# ---- parameters ------------------------------------------------------------------------------


def parse_replication(
    p: ParamReader, node: str, raw_port: object, cluster_nodes: tuple[str, ...] | None
) -> ReplicationParams:
    """The replicated mode's parameters for `node`; `raw_port` is the `port` value as given."""
    raw = p.raw.get("replication_address")
    expected = 'a table of node name to IP address ({ alpha = "198.51.100.1", ... })'
    if raw is None:
        raise p.missing("replication_address", expected)
    if not isinstance(raw, Mapping) or not raw:
        raise p.error("replication_address", expected, raw)
    addresses: dict[str, str] = {}
    for name, value in raw.items():
        if not NODE_NAME.fullmatch(name):
            raise p.error(
                f"replication_address.{name}", "a node name of only a-z, 0-9, _ and -", name
            )
        try:
            addresses[name] = str(ipaddress.ip_address(value if isinstance(value, str) else ""))
        except ValueError:
            raise p.error(f"replication_address.{name}", "an IP address", value) from None
    if not NODE_NAME.fullmatch(node):
        raise ParamError(
            p.resource,
            "replication_address",
            f"node name {node!r} cannot name a replica (application_name, slot): "
            "use only a-z, 0-9, _ and -",
        )
    if node not in addresses:
        raise ParamError(p.resource, "replication_address", f"no entry for node {node!r}")
    if cluster_nodes is not None:
        for name in addresses:
            if name not in cluster_nodes:
                raise p.error(f"replication_address.{name}", "a node of the cluster", name)
    slots = {slot_name(n) for n in addresses}
    if len(slots) != len(addresses):
        raise ParamError(
            p.resource,
            "replication_address",
            'node names that differ only by "-" and "_" would share a replication slot',
        )
    ports: dict[str, int] = {}
    for name in addresses:
        value = raw_port.get(name) if isinstance(raw_port, Mapping) else raw_port
        value = 5432 if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise p.error(f"port.{name}", "an integer from 1 to 65535", value)
        ports[name] = value
    for key in p.string_table("settings"):
        if key in OWNED_SETTINGS:
            raise ParamError(
                p.resource, "settings",
                f"{key} is set by hotstandby in replicated mode; leave it out of settings",
            )  # fmt: skip
    passfile = p.absolute_path("replication_passfile", required=False)
    return ReplicationParams(
        node=node,
        addresses=addresses,
        ports=ports,
        user=p.string("replication_user", "postgres"),
        passfile=passfile,
        slots=p.boolean("replication_slots", True),
        follow_timeout=p.seconds("follow_timeout", DEFAULT_FOLLOW_TIMEOUT, MAX_FOLLOW_TIMEOUT),
        diverged_dir=p.absolute_path("diverged_dir", required=False),
    )


def check_node_tables(
    resource: str, raw: Mapping[str, object], cluster_nodes: tuple[str, ...]
) -> None:
    """Every per-node table names every node of the cluster, and only those."""
    for key in (*PER_NODE_KEYS, "replication_address"):
        value = raw.get(key)
        if isinstance(value, Mapping):
            missing = [n for n in cluster_nodes if n not in value]
            extra = [n for n in value if n not in cluster_nodes]
            if missing:
                raise ParamError(resource, key, f"no entry for node {missing[0]!r}")
            if extra:
                raise ParamError(resource, key, f"{extra[0]!r} is not a node of the cluster")


def default_diverged_dir(pgdata: str) -> str:
    """Where diverged data is kept by default: beside the data directory."""
    return os.path.dirname(pgdata) or "/"
