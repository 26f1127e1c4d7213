"""Test-side handles on alias_helper.py processes, and what a client looks up."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.lab import Lab, LabError, LabProcess
from hotstandby.lab.dns import DnsServer
from hotstandby.lab.netns import ns_argv

HELPER = str(Path(__file__).with_name("alias_helper.py"))
#: Bound on any single answer from a helper (python start-up and imports included).
ANSWER_TIMEOUT = 15.0
HOSTNAME = "db.example.org."


def _read_line(proc: LabProcess, timeout: float) -> str:
    """One line of the helper's stdout, bounded by timeout; LabError if none comes."""
    stdout = proc.popen.stdout
    assert stdout is not None
    fd = stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise LabError(f"helper on {proc.node} did not answer within {timeout}s: {data!r}")
        chunk = os.read(fd, 1)  # one byte at a time: one line per request, never more
        if not chunk:
            raise LabError(f"helper on {proc.node} exited: {proc.output()[-2000:]}")
        data += chunk
    return data.decode()


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


def params_for(server: DnsServer, **extra: Any) -> dict[str, Any]:
    """The alias parameters of db.example.org. against the lab's DNS server."""
    return {
        "hostname": HOSTNAME,
        "zone": server.zone,
        "server": server.address,
        "key_file": str(server.key.path),
        **extra,
    }


class AliasHost:
    """An alias resource adapter running in a node's namespace, as the agent would run it."""

    def __init__(self, lab: Lab, node: str, params: dict[str, Any], **timeouts: float) -> None:
        nodes = {n: lab.node(n).lan_ipv4 for n in lab.node_names}
        spec = json.dumps({"name": "db-name", "params": params, "nodes": nodes, **timeouts})
        self.node = node
        self.proc = lab.spawn(
            node,
            [sys.executable, HELPER, "serve", node, spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        first = json.loads(_read_line(self.proc, ANSWER_TIMEOUT))
        if first != {"ready": True}:
            raise LabError(f"helper on {node} did not start: {first}")

    def run(self, action: str, timeout: float = ANSWER_TIMEOUT) -> Reply:
        """Carry out one action (start, stop, monitor, probe) and wait for it."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(f"{action}\n".encode())
        stdin.flush()
        return Reply(**json.loads(_read_line(self.proc, timeout)))


def lookup(lab: Lab, node: str, server: DnsServer, name: str = HOSTNAME) -> list[str]:
    """name's A and AAAA addresses as a client in node's namespace gets them, sorted."""
    out = lab.run(
        node, [sys.executable, HELPER, "lookup", server.address, str(server.port), name]
    ).stdout
    found: list[str] = json.loads(out)
    return found


def nsupdate(lab: Lab, node: str, server: DnsServer, *commands: str) -> None:
    """Change the zone with BIND's own nsupdate and the server's key, from node's namespace."""
    script = "\n".join([f"server {server.address} {server.port}", *commands, "send", ""])
    done = subprocess.run(
        ns_argv(lab.node(node).ns, ["nsupdate", "-t", "5", "-k", str(server.key.path)]),
        input=script,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"nsupdate failed: {done.stderr.strip()}")
