"""Hosts a volume resource adapter in a mount namespace of its own, as the agent would run it.

    unshare --mount --propagation private -- python volume_helper.py RESOURCE_JSON

RESOURCE_JSON holds name, params, node, start_timeout, stop_timeout and monitor_timeout. The
helper builds the adapter as the agent does, prints {"ready": true}, then reads one command
per line on stdin and answers each with one JSON line:

- start, stop, monitor, probe: outcome, detail, the steps reported during the action and the
  monotonic times the call began and ended (CLOCK_MONOTONIC is not per namespace);
- hold PATH: open PATH and keep it open (the helper plays the agent holding its own volume);
- risks FSTAB: the host risks found with that fstab and this process's mount table.

Its mounts live and die with it: when it exits, the kernel unmounts what it left mounted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, BinaryIO

from hotstandby.agent.resources.volume import VolumeResource, find_host_risks, parse_params
from hotstandby.core.messages import Action


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(spec: dict[str, Any]) -> None:
    """Answer commands from stdin until it closes."""
    params = parse_params(spec["name"], spec["params"], spec["node"], spec["stop_timeout"])
    steps: list[str] = []
    adapter = VolumeResource(
        spec["name"],
        params,
        lambda _name, message: steps.append(message),
        start_timeout=spec["start_timeout"],
        stop_timeout=spec["stop_timeout"],
    )
    held: list[BinaryIO] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    while line := (await reader.readline()).decode().strip():
        command, _, argument = line.partition(" ")
        if command == "hold":
            held.append(open(argument, "rb"))  # noqa: SIM115 - kept open on purpose
            _emit({"held": argument})
            continue
        if command == "risks":
            _emit({"risks": find_host_risks(params, argument)})
            continue
        steps.clear()
        began = time.monotonic()
        # Bounded as the agent bounds it: the adapter is cancelled at the timeout.
        limit = {"start": spec["start_timeout"], "stop": spec["stop_timeout"]}.get(
            command, spec["monitor_timeout"]
        )
        try:
            result = await asyncio.wait_for(adapter.run(Action(command)), limit)
            reply = {"outcome": result.outcome.value, "detail": result.detail}
        except TimeoutError:
            reply = {"outcome": "failed", "detail": f"timed out after {limit:g}s"}
        _emit({**reply, "steps": list(steps), "began": began, "ended": time.monotonic()})


if __name__ == "__main__":
    asyncio.run(serve(json.loads(sys.argv[1])))
