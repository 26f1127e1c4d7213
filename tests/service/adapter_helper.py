"""Runs inside a lab namespace: hosts one resource adapter of any kind, as the agent would.

    python adapter_helper.py NODE RESOURCE_JSON

RESOURCE_JSON holds name, kind, params and optionally the timeouts. The helper builds the
adapter through the registry of kinds (parameters checked as `check` checks them), prints
{"ready": true}, then reads one action per line on stdin (start, stop, monitor, probe) and
answers each with one JSON line: outcome, detail, and the monotonic times the call began and
ended (CLOCK_MONOTONIC is not per namespace, so they compare with the test's). The loop
enforces no timeout: the test bounds its wait instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from hotstandby.agent.resources import KINDS
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map
from hotstandby.core.messages import Action


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(node: str, spec: dict[str, Any]) -> None:
    """Answer actions from stdin until it closes."""
    timeouts: dict[str, Any] = {k: float(v) for k, v in spec.get("timeouts", {}).items()}
    resource = Resource(
        spec["name"], ResourceKind(spec["kind"]), frozen_map(spec["params"]), **timeouts
    )
    kind = KINDS[resource.kind]
    kind.parse(resource, node)
    adapter = kind.build(resource, node, lambda name, message: None)
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
    # Stdin closed: stop what runs, as an agent shutting down would have.
    await adapter.run(Action.STOP)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], json.loads(sys.argv[2])))
