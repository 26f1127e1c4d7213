"""Test-side handles on alias_helper.py processes, and what a client looks up."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.lab import Lab, LabError
from hotstandby.lab.dns import DnsServer
from hotstandby.lab.netns import ns_argv

HELPER = str(Path(__file__).with_name("alias_helper.py"))
#: Bound on any single answer from a helper (python start-up and imports included).
ANSWER_TIMEOUT = 15.0
HOSTNAME = "db.example.org."


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
        first = json.loads(self.proc.read_line(ANSWER_TIMEOUT))
        if first != {"ready": True}:
            raise LabError(f"helper on {node} did not start: {first}")

    def run(self, action: str, timeout: float = ANSWER_TIMEOUT) -> Reply:
        """Carry out one action (start, stop, monitor, probe) and wait for it."""
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(f"{action}\n".encode())
        stdin.flush()
        return Reply(**json.loads(self.proc.read_line(timeout)))


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
