"""The [http] table: where each node's agent serves its status page, API and metrics.

```toml
[http]
listen = { alpha = "192.0.2.11:8080", beta = "192.0.2.12:8080" }  # or one "addr:port" for all
token_file = "/etc/hotstandby/http-token"  # root-only; without it the interface is read-only
metrics = true                                 # serve /metrics (Prometheus)
health = true     # /health/primary, /health/replica for load balancers ([replication] only)
```
No [http] table: no HTTP interface at all (the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hotstandby.config.errors import SchemaError, describe
from hotstandby.config.reader import Table, is_ip_address
from hotstandby.core.cluster import Http, frozen_map

_KEYS = ("listen", "token_file", "metrics", "health")
LISTEN_EXPECTED = (
    'an "address:port" to listen on (an IP address, IPv6 in brackets: "[2001:db8::1]:8080")'
)
_LISTEN_TABLE = f"a table of node name = {LISTEN_EXPECTED}, or one such string for every node"


def split_listen(text: str) -> tuple[str, int] | None:
    """("address", port) of an "address:port" string, or None when it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            return None
    elif ":" in host:
        return None  # an IPv6 address must be bracketed, or the port is ambiguous
    return (host, int(port)) if is_ip_address(host) else None


def parse_http(table: Table | None, nodes: Sequence[Any]) -> Http | None:
    """The validated [http] table (None when absent); `nodes` are the [[node]] names."""
    if table is None:
        return None
    table.only(_KEYS)
    if not table.has("listen"):
        raise SchemaError(table.at("listen"), _LISTEN_TABLE, "nothing (the key is missing)")
    raw = table.data["listen"]
    listen: dict[str, str] = {}
    if isinstance(raw, str):
        if split_listen(raw) is None:
            raise SchemaError(table.at("listen"), LISTEN_EXPECTED, describe(raw))
        listen = {str(node): raw for node in nodes}
    elif isinstance(raw, dict):
        per_node = Table(raw, table.at("listen"))
        if not raw:
            raise SchemaError(per_node.key, _LISTEN_TABLE, "an empty table")
        for node, value in raw.items():
            if node not in nodes:
                known = ", ".join(str(n) for n in nodes)
                raise SchemaError(
                    per_node.at(node), f"a node of this cluster ({known})", f"node {node!r}"
                )
            if not isinstance(value, str) or split_listen(value) is None:
                raise SchemaError(per_node.at(node), LISTEN_EXPECTED, describe(value))
            listen[node] = value
    else:
        raise SchemaError(table.at("listen"), _LISTEN_TABLE, describe(raw))
    token_file = None
    if table.has("token_file"):
        token_file = table.path("token_file", "a root-only file holding the action token")
    return Http(
        listen=frozen_map(listen),
        token_file=token_file,
        metrics=table.boolean("metrics", True),
        health=table.boolean("health", False),
    )
