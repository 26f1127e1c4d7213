"""How long each resource kind's actions take in the lab: start, monitor, probe, stop.

    sudo python bench/resource_actions.py            # 20 cycles per kind
    sudo python bench/resource_actions.py --cycles 50 --json

Builds a lab (namespaces `hsv-XXXX-*`, removed afterwards), then runs this script again inside
node a's namespace, which builds each resource's adapter as the agent does and times, per
cycle: probe (stopped), start, 5 monitors, stop. Prints p50 / p95 / max in milliseconds per
kind and action. Kinds: the floating IP (ip, for comparison), a command-mode service (the
lab's TCP echo service in the foreground, its monitor a TCP echo check), and the OCF agents
heartbeat:Dummy and heartbeat:IPaddr2 of Debian's resource-agents. A systemd unit is not
measured: the lab machine has no systemd as PID 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from typing import Any

from hotstandby.agent.resources import KINDS
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map
from hotstandby.core.messages import Action
from hotstandby.lab import Lab, skip_reason

PORT = 7071
ACTIONS = ("probe", "start", "monitor", "stop")


# The service's monitor: a TCP echo check, 0 echoes, 7 refused, 1 otherwise. Inline, so its
# time is Python's start-up and the check, not this script's imports.
ECHO_CHECK = """
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1.0) as conn:
        conn.sendall(b"x")
        sys.exit(0 if conn.recv(1) == b"x" else 1)
except ConnectionRefusedError:
    sys.exit(7)
except OSError:
    sys.exit(1)
"""


def resources(workdir: str, lan_if: str) -> list[tuple[str, Resource]]:
    """The resources measured, by label."""
    rsctmp = f"{workdir}/rsc-{{node}}"
    specs: list[tuple[str, ResourceKind, dict[str, Any]]] = [
        ("ip", ResourceKind.IP, {"address": "192.0.2.90/24", "interface": lan_if}),
        (
            "service (foreground, TCP echo)",
            ResourceKind.SERVICE,
            {
                "start": [sys.executable, "-m", "hotstandby.lab.prober", "serve", str(PORT)],
                "monitor": [sys.executable, "-S", "-c", ECHO_CHECK, str(PORT)],
                "not_running_code": 7,
            },
        ),
        ("ocf:heartbeat:Dummy", ResourceKind.OCF, {"agent": "heartbeat:Dummy", "rsctmp": rsctmp}),
        (
            "ocf:heartbeat:IPaddr2",
            ResourceKind.OCF,
            {
                "agent": "heartbeat:IPaddr2",
                "rsctmp": rsctmp,
                "params": {"ip": "192.0.2.91", "cidr_netmask": "24", "nic": lan_if},
            },
        ),
    ]
    return [(label, Resource("r", kind, frozen_map(params))) for label, kind, params in specs]


async def measure_inside(
    workdir: str, lan_if: str, cycles: int
) -> dict[str, dict[str, list[float]]]:
    """Run the cycles on this node; seconds per action per kind."""
    out: dict[str, dict[str, list[float]]] = {}
    for label, resource in resources(workdir, lan_if):
        kind = KINDS[resource.kind]
        adapter = kind.build(resource, "a", lambda name, message: None)
        times: dict[str, list[float]] = {a: [] for a in ACTIONS}
        for _ in range(cycles):
            for action in ("probe", "start", *["monitor"] * 5, "stop"):
                began = time.monotonic()
                result = await adapter.run(Action(action))
                times[action].append(time.monotonic() - began)
                expected = "stopped" if action == "probe" else "ok"
                if result.outcome.value != expected:
                    raise SystemExit(f"{label} {action}: {result.outcome.value} {result.detail}")
        out[label] = times
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main() -> int:
    """Build the lab, measure inside node a, print the table."""
    parser = argparse.ArgumentParser(prog="bench/resource_actions.py")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inside", nargs=2, metavar=("WORKDIR", "LAN_IF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        workdir, lan_if = args.inside
        print(json.dumps(asyncio.run(measure_inside(workdir, lan_if, args.cycles))))
        return 0
    reason = skip_reason()
    if reason is not None:
        print(f"resource_actions: {reason}", file=sys.stderr)
        return 2
    with Lab("hsv", serial=False, disk_size=0) as lab:
        argv = [sys.executable, __file__, "--cycles", str(args.cycles),
                "--inside", str(lab.workdir), lab.node("a").lan_if]  # fmt: skip
        proc = lab.spawn("a", argv, stdout=subprocess.PIPE, stderr=None)
        stdout, _ = proc.popen.communicate(timeout=600)
        if proc.popen.returncode != 0:
            print(
                f"resource_actions: the run inside the lab failed: {proc.output()}", file=sys.stderr
            )
            return 1
    found: dict[str, dict[str, list[float]]] = json.loads(
        stdout.splitlines()[-1]
    )  # the service's output goes first
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print(f"{'kind':32} {'action':8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}   n")
    for label, times in found.items():
        for action in ACTIONS:
            v = times[action]
            print(
                f"{label:32} {action:8} {_pct(v, 0.5) * 1000:8.1f} {_pct(v, 0.95) * 1000:8.1f} "
                f"{max(v) * 1000:8.1f}  {len(v)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
