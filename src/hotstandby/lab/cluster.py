"""A hotstandby cluster on a lab: its configuration file, its agents, and ways to watch them.

Used by the lab tests, the demo and the benchmarks: it writes a cluster file for
the lab's nodes (heartbeats over the LAN, the private link, the serial line and the
shared disk; a floating IP), starts one real agent per node inside its namespace,
and reads each agent's status through its control socket.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.lab.fence_agent import write_wrapper
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.topology import FLOATING_IPV4, Lab
from hotstandby.wire.keys import write_new_secret

POLL = 0.02  # seconds between looks at the agents' state while waiting


@dataclass
class ClusterSpec:
    """What the generated cluster file holds beyond the lab's own layout."""

    name: str = "lab"
    arbitration: str = 'mode = "none"'  # the [arbitration] table's body
    timers: dict[str, str] = field(default_factory=dict)  # [timers] overrides
    links: Sequence[str] = ("lan", "private", "serial")  # of: lan, private, serial, disk
    ip_params: dict[str, Any] = field(default_factory=dict)  # extra params of the vip
    extra: str = ""  # appended verbatim (more resources, policies)


def fence_arbitration(lab: Lab, delay: str = "600ms") -> str:
    """An [arbitration] body fencing through the lab's fence agent (it powers a node off).

    The delay gives the active node's fence of a cut-off standby (about 0.3 s
    here) a clear head start over the standby's fence of it.
    """
    wrapper = write_wrapper(lab.workdir)
    return (
        f'mode = "fence"\nfence_delay = "{delay}"\n'
        f'[[arbitration.fence]]\nagent = "{wrapper}"\nlab = "{lab.lab_id}"\nplug = "{{node}}"\n'
    )


class LabCluster:
    """Agents of one cluster on a lab's nodes."""

    def __init__(self, lab: Lab, spec: ClusterSpec | None = None) -> None:
        self.lab = lab
        self.spec = spec or ClusterSpec()
        self.dir = lab.workdir / "cluster"
        self.dir.mkdir(exist_ok=True)
        self.secret = self.dir / "secret"
        self.config = self.dir / "cluster.toml"
        self.agents: dict[str, LabProcess] = {}

    # ------------------------------------------------------------ configuration

    def write(self, text: str | None = None) -> Path:
        """Write the cluster file (generated, or `text`) and a fresh secret."""
        if not self.secret.exists():
            write_new_secret(self.secret)
        self.config.write_text(text if text is not None else self.render())
        return self.config

    def render(self) -> str:
        """The cluster file for this lab."""
        lab, spec = self.lab, self.spec
        names = list(lab.node_names)
        out = [
            f'[cluster]\nname = "{spec.name}"\nsecret_file = "{self.secret}"\n',
        ]
        for i, name in enumerate(names):
            out.append(f'[[node]]\nname = "{name}"\npriority = {200 - 100 * i}\n')
        for link in spec.links:
            out.append(self._link(link, names))
        params = {"address": f"{FLOATING_IPV4}/24", "interface": lab.node(names[0]).lan_if}
        params.update(spec.ip_params)
        body = "\n".join(f"{k} = {_toml(v)}" for k, v in params.items())
        out.append(
            '[[resource]]\nname = "vip"\nkind = "ip"\nstart_timeout = "5s"\n'
            f'stop_timeout = "5s"\nmonitor_interval = "1s"\n[resource.params]\n{body}\n'
        )
        if spec.extra:
            out.append(spec.extra)
        out.append(f"[arbitration]\n{spec.arbitration}\n")
        if spec.timers:
            timers = "\n".join(f'{k} = "{v}"' for k, v in spec.timers.items())
            out.append(f"[timers]\n{timers}\n")
        return "\n".join(out)

    def _link(self, kind: str, names: list[str]) -> str:
        lab = self.lab
        if kind == "lan":
            ends = {n: lab.node(n).lan_ipv4 for n in names}
            head = 'kind = "udp"'
        elif kind == "private":
            ends = {n: str(lab.node(n).priv_ipv4) for n in names}
            head = 'kind = "udp"'
        elif kind == "serial":
            if lab.serial is None:
                raise ValueError("this lab has no serial line")
            ends = {n: str(lab.serial.path(n)) for n in names}
            head = 'kind = "serial"\nbaud = 115200'
        elif kind == "disk":
            if lab.disk is None:
                raise ValueError("this lab has no shared disk")
            ends = {n: lab.disk.device(n) for n in names}
            head = 'kind = "disk"'
        else:
            raise ValueError(f"unknown lab link {kind!r}")
        endpoints = "\n".join(f'{n} = "{v}"' for n, v in ends.items())
        return f'[[link]]\nname = "{kind}"\n{head}\n[link.endpoints]\n{endpoints}\n'

    # ------------------------------------------------------------ agents

    def socket(self, node: str) -> str:
        """The control socket of node's agent."""
        return str(self.dir / f"{node}.sock")

    def start(self, node: str, *extra: str) -> LabProcess:
        """Start node's agent inside its namespace."""
        argv = [
            sys.executable, "-m", "hotstandby", "agent",
            "-c", str(self.config), "--node", node,
            "--socket", self.socket(node),
            "--state-dir", str(self.dir / f"state-{node}"),
            *extra,
        ]  # fmt: skip
        log = (self.dir / f"{node}.log").open("ab")
        try:
            proc = self.lab.spawn(node, argv, stdout=log, stderr=log)
        finally:
            log.close()
        proc.log_path = self.dir / f"{node}.log"
        self.agents[node] = proc
        return proc

    def start_all(self) -> None:
        """Start every node's agent."""
        for node in self.lab.node_names:
            self.start(node)

    def status(self, node: str) -> dict[str, Any] | None:
        """node's status as its agent reports it, or None when it does not answer."""
        try:
            answer = call(self.socket(node), {"op": "status"})
        except (ControlError, OSError, ValueError):
            return None
        status: dict[str, Any] = answer["status"]
        return status

    def admin(self, node: str, action: str, target: str | None = None) -> dict[str, Any]:
        """Send an operator's request to node's agent."""
        return call(self.socket(node), {"op": "admin", "action": action, "target": target})

    def roles(self) -> dict[str, str | None]:
        """Every node's role, None where the agent does not answer."""
        out: dict[str, str | None] = {}
        for node in self.lab.node_names:
            s = self.status(node)
            out[node] = None if s is None else str(s["role"])
        return out

    def active(self) -> str | None:
        """The single node reporting itself active with every resource running, if any."""
        found = []
        for node in self.lab.node_names:
            s = self.status(node)
            if (
                s is not None
                and s["role"] == "active"
                and all(r["state"] == "running" for r in s["resources"])
            ):
                found.append(node)
        return found[0] if len(found) == 1 else None

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll `check` until it returns something true; LabTimeoutError naming `what` if not."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = {n: p.output()[-2000:] for n, p in self.agents.items()}
                raise LabTimeoutError(f"{what} did not happen within {timeout:g}s; logs: {logs}")
            time.sleep(POLL)

    def other(self, node: str) -> str:
        """The other node of a two-node lab."""
        (found,) = (n for n in self.lab.node_names if n != node)
        return found

    def up(self, timeout: float = 30.0) -> str:
        """Start every agent; the active node, once every other node is a standby that
        confirms it (heartbeats crossing both ways), so a fault hits a settled cluster."""
        self.start_all()
        active = self.wait_active(timeout)

        def settled() -> bool:
            for node in self.lab.node_names:
                if node == active:
                    continue
                s = self.status(node)
                if s is None or s["role"] != "standby":
                    return False
                if not all(p["confirmed"] for p in s["peers"]):
                    return False
            return True

        self.wait_for("the standbys to confirm the active node", settled, timeout / 2)
        return active

    def events(self, node: str, limit: int = 2000, **filters: Any) -> list[dict[str, Any]]:
        """node's event history, newest last ([] while its agent does not answer)."""
        try:
            answer = call(self.socket(node), {"op": "events", "limit": limit, **filters})
        except (ControlError, OSError):
            return []
        history: list[dict[str, Any]] = answer["events"]
        return history

    def wait_active(self, timeout: float = 30.0, other_than: str | None = None) -> str:
        """Wait for a single active node (not `other_than`) and return its name."""

        def check() -> str | None:
            node = self.active()
            return node if node is not None and node != other_than else None

        node: str = self.wait_for("a single active node", check, timeout)
        return node

    def log(self, node: str) -> str:
        """What node's agent has logged."""
        path = self.dir / f"{node}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class LabTimeoutError(AssertionError):
    """Something awaited in the lab did not happen in time."""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    return '"' + str(value) + '"'
