"""Test-side handles on ip_helper.py processes, and small looks into the lab's kernel state."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hotstandby.lab import Lab, LabError

HELPER = str(Path(__file__).with_name("ip_helper.py"))
#: Bound on any single answer from a helper (python start-up and imports included).
ANSWER_TIMEOUT = 15.0
#: How often to look at kernel state while waiting for it to change.
POLL_INTERVAL = 0.01

T = TypeVar("T")


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
    """An ip resource adapter running in a node's namespace, as the agent would run it."""

    def __init__(self, lab: Lab, node: str, params: dict[str, Any], name: str = "vip") -> None:
        spec = json.dumps({"name": name, "params": params})
        self.node = node
        self.proc = lab.spawn(
            node,
            [sys.executable, HELPER, "serve", node, spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        first = json.loads(self.proc.read_line(ANSWER_TIMEOUT))
        if first != {"ready": True}:
            raise LabError(f"helper on {node} did not start: {first}")

    def run(self, action: str, timeout: float = ANSWER_TIMEOUT) -> Reply:
        """Carry out one action (start, stop, monitor, probe, wait_announced) and wait for it."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(f"{action}\n".encode())
        stdin.flush()
        return Reply(**json.loads(self.proc.read_line(timeout)))


class Sniffer:
    """Records ARP and neighbour discovery frames about one address on a node's interface."""

    def __init__(self, lab: Lab, node: str, address: str, max_seconds: float = 30.0) -> None:
        ifname = lab.node(node).lan_if
        self.proc = lab.spawn(
            node,
            [sys.executable, HELPER, "sniff", ifname, address, str(max_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        if self.proc.read_line(ANSWER_TIMEOUT).strip() != "ready":
            raise LabError(f"sniffer on {node} did not start")

    def stop(self) -> list[dict[str, Any]]:
        """End the capture and return what it saw, in order."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(b"stop\n")
        stdin.flush()
        records: list[dict[str, Any]] = json.loads(self.proc.read_line(ANSWER_TIMEOUT))
        self.proc.wait(ANSWER_TIMEOUT)
        return records


def mac_of(lab: Lab, node: str) -> str:
    """The MAC address of node's LAN interface."""
    n = lab.node(node)
    out = lab.run(node, ["ip", "-j", "link", "show", n.lan_if]).stdout
    return str(json.loads(out)[0]["address"])


def neighbour(lab: Lab, node: str, address: str) -> dict[str, Any] | None:
    """node's neighbour cache entry for address on its LAN interface, if it has one."""
    n = lab.node(node)
    out = lab.run(node, ["ip", "-j", "neigh", "show", "to", address, "dev", n.lan_if]).stdout
    entries: list[dict[str, Any]] = json.loads(out or "[]")
    return entries[0] if entries else None


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll probe until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)
