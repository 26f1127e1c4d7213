"""Runs inside a lab namespace: hosts an alias resource adapter, or looks a name up.

    python alias_helper.py serve NODE SPEC_JSON
        Builds the adapter as the agent would, from SPEC_JSON: {"name", "params", "nodes":
        {node: own address or null}, and optionally "start_timeout", "stop_timeout",
        "monitor_timeout"}. Prints {"ready": true}, then reads one action per line on stdin
        (start, stop, monitor, probe) and answers each with one JSON line: outcome, detail and
        the monotonic times the call began and ended.

    python alias_helper.py lookup SERVER PORT NAME
        Asks SERVER for NAME's A and AAAA records as a client would (no key, no recursion)
        and prints them as one JSON list, sorted.

Both run as their own process because the adapter must run inside the node's namespace, as
the agent does; CLOCK_MONOTONIC is not per namespace, so their times compare with the test's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from types import MappingProxyType
from typing import Any

import dns.message
import dns.query
import dns.rdatatype

from hotstandby.agent.resources.alias import build
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Node,
    Resource,
    ResourceKind,
)
from hotstandby.core.messages import Action


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _cluster(spec: dict[str, Any]) -> tuple[Cluster, Resource]:
    resource = Resource(
        spec["name"],
        ResourceKind.ALIAS,
        MappingProxyType(spec["params"]),
        start_timeout=spec.get("start_timeout", 20.0),
        stop_timeout=spec.get("stop_timeout", 20.0),
        monitor_timeout=spec.get("monitor_timeout", 10.0),
    )
    nodes = tuple(Node(name, address=address) for name, address in spec["nodes"].items())
    cluster = Cluster("lab", "/dev/null", nodes, (), (resource,), Arbitration(ArbitrationMode.NONE))
    return cluster, resource


async def serve(node: str, spec: dict[str, Any]) -> None:
    """Answer actions from stdin until it closes."""
    cluster, resource = _cluster(spec)
    adapter = build(resource, node, cluster)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    while line := (await reader.readline()).decode().strip():
        began = time.monotonic()
        result = await adapter.run(Action(line))
        _emit(
            {
                "outcome": result.outcome.value,
                "detail": result.detail,
                "began": began,
                "ended": time.monotonic(),
            }
        )


def lookup(server: str, port: int, name: str) -> list[str]:
    """NAME's addresses as SERVER answers them."""
    found: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        query = dns.message.make_query(name, rdtype)
        response = dns.query.udp(query, server, port=port, timeout=2.0)
        for rrset in response.answer:
            if rrset.rdtype == rdtype:
                found.extend(rdata.address for rdata in rrset)
    return sorted(found)


def main() -> None:
    """Dispatch on the first argument."""
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], json.loads(sys.argv[3])))
    elif sys.argv[1] == "lookup":
        _emit(lookup(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}")


if __name__ == "__main__":
    main()
