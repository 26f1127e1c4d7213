"""Fence once through the adapter from wherever this runs (a lab node's namespace).

Run as `python -m tests.fence.lab_helper SPEC` with SPEC a JSON object: "method" (one
[[arbitration.fence]] table), "nodes", "self" and "target". Prints a JSON answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from hotstandby.agent.fence import FenceAgents

from .fakes import cluster


def main(argv: list[str]) -> int:
    """Fence spec's target as node spec's self; print ok, detail, seconds and our netns."""
    spec = json.loads(argv[0])
    adapter = FenceAgents(cluster(spec["method"], nodes=tuple(spec["nodes"])), spec["self"])
    began = time.monotonic()
    ok, detail = asyncio.run(adapter.fence(spec["target"]))
    took = time.monotonic() - began
    netns = os.readlink("/proc/self/ns/net")
    print(json.dumps({"ok": ok, "detail": detail, "seconds": took, "netns": netns}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
