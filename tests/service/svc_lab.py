"""Test-side handles on adapter_helper.py processes running in a lab node's namespace."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.lab import Lab, LabError

HERE = Path(__file__).parent
HELPER = str(HERE / "adapter_helper.py")
ECHO_CHECK = str(HERE / "echo_check.py")
#: Bound on any single answer from a helper (python start-up and imports included).
ANSWER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Reply:
    """One action's result as the helper reported it."""

    outcome: str
    detail: str
    began: float
    ended: float

    @property
    def took(self) -> float:
        """Seconds the action took inside the adapter's process."""
        return self.ended - self.began


class AdapterHost:
    """A resource adapter of any kind running in a node's namespace, as the agent runs it."""

    def __init__(self, lab: Lab, node: str, kind: str, params: dict[str, Any], name: str) -> None:
        spec = json.dumps({"name": name, "kind": kind, "params": params})
        self.node = node
        self.proc = lab.spawn(
            node,
            [sys.executable, HELPER, node, spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        first = json.loads(self.proc.read_line(ANSWER_TIMEOUT))
        if first != {"ready": True}:
            raise LabError(f"helper on {node} did not start: {first}")
        self.times: dict[str, list[float]] = {}

    def run(self, action: str, timeout: float = ANSWER_TIMEOUT) -> Reply:
        """Carry out one action and wait for it; its time is kept for `summary`."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(f"{action}\n".encode())
        stdin.flush()
        reply = Reply(**json.loads(self.proc.read_line(timeout)))
        self.times.setdefault(action, []).append(reply.took)
        return reply

    def close(self) -> None:
        """Close stdin: the helper stops the resource and exits."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.close()
        self.proc.wait(ANSWER_TIMEOUT)

    def summary(self) -> str:
        """Median milliseconds per action, for the test's output."""
        return ", ".join(
            f"{action} {statistics.median(took) * 1000:.1f} ms (n={len(took)})"
            for action, took in sorted(self.times.items())
        )
