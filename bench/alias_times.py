"""How long the alias resource's actions take against a real named in the lab.

    sudo python bench/alias_times.py             # 200 rounds
    sudo python bench/alias_times.py --rounds 50 --json

Builds a lab (namespaces hal-XXXX-*, removed afterwards), starts BIND's named on the client
(primary for example.org., updates allowed with one TSIG key), and runs the adapter inside
node a's namespace as the agent would: every round a start (update + check), a monitor, a
probe and a stop that removes the records (update with a prerequisite), then prints each
action's p50 / p95 / max in milliseconds, measured inside the adapter's process. A stop that
keeps the records sends nothing and is not measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hotstandby.agent.resources.alias import build
from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Node,
    Resource,
    ResourceKind,
)
from hotstandby.core.messages import Action, Outcome
from hotstandby.lab import CLIENT, Lab, skip_reason
from hotstandby.lab.dns import DnsServer, named_missing

ACTIONS = (Action.START, Action.MONITOR, Action.PROBE, Action.STOP)


async def _inside(params: dict[str, Any], address: str, rounds: int) -> dict[str, list[float]]:
    """Run the rounds in this process (inside the node's namespace); seconds per action."""
    resource = Resource("db-name", ResourceKind.ALIAS, MappingProxyType(params))
    cluster = Cluster(
        "bench", "/dev/null", (Node("a", address=address),), (), (resource,),
        Arbitration(ArbitrationMode.NONE),
    )  # fmt: skip
    adapter = build(resource, "a", cluster)
    times: dict[str, list[float]] = {a.value: [] for a in ACTIONS}
    for _ in range(rounds):
        for action in ACTIONS:
            began = time.perf_counter()
            result = await adapter.run(action)
            times[action.value].append(time.perf_counter() - began)
            expected = Outcome.STOPPED if action is Action.PROBE else Outcome.OK
            if result.outcome is not expected:
                raise SystemExit(f"{action.value}: {result.outcome.value}: {result.detail}")
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> None:
    """Build the lab, run the rounds inside node a, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        spec = json.loads(args.inside)
        print(json.dumps(asyncio.run(_inside(spec["params"], spec["address"], args.rounds))))
        return

    reason = skip_reason() or named_missing()
    if reason is not None:
        raise SystemExit(reason)
    with Lab("hal", serial=False, disk_size=0) as lab:
        server = DnsServer(lab, CLIENT, lab.node(CLIENT).lan_ipv4)
        server.start()
        params = {
            "hostname": "db.example.org.",
            "zone": server.zone,
            "server": server.address,
            "key_file": str(server.key.path),
            "on_stop": "remove",
        }
        spec = json.dumps({"params": params, "address": lab.node("a").lan_ipv4})
        argv = [sys.executable, str(Path(__file__).resolve()), "--rounds", str(args.rounds)]
        out = lab.run("a", [*argv, "--inside", spec], timeout=30 + args.rounds).stdout
        times: dict[str, list[float]] = json.loads(out)
    figures = {
        action: {
            "p50_ms": statistics.median(values) * 1000,
            "p95_ms": _percentile(values, 0.95) * 1000,
            "max_ms": max(values) * 1000,
        }
        for action, values in times.items()
    }
    if args.json:
        print(json.dumps({"rounds": args.rounds, "figures": figures, "raw": times}, indent=2))
        return
    print(f"alias actions against named in the lab, {args.rounds} rounds (ms)")
    print(f"  {'action':<8} {'p50':>7} {'p95':>7} {'max':>7}")
    for action, f in figures.items():
        print(f"  {action:<8} {f['p50_ms']:7.2f} {f['p95_ms']:7.2f} {f['max_ms']:7.2f}")
    print("  (stop removes the records; with on_stop = keep it sends nothing)")


if __name__ == "__main__":
    main()
