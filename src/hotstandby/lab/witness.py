"""A witness cluster on a lab: the witness in the client namespace, agents on the nodes.

Heartbeats go over the private link and the serial line only; the witness sits on the
LAN (192.0.2.0/24), which both nodes reach, so cutting the private link and the serial
line cuts the nodes from each other but not from the witness. Used by the witness lab
tests and `bench/witness_takeover.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hotstandby.lab.cluster import ClusterSpec, LabCluster
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.topology import CLIENT, Lab

PORT = 7788
LEASE = 3.0  # the shortest round lease the lease rule allows with TIMERS (2.61 s)
TIMERS = {
    "interval": "100ms",
    "warn_time": "300ms",
    "dead_time": "500ms",
    "initial_dead": "2s",
    "lease": f"{LEASE:g}s",
    "release": "500ms",
}


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


class WitnessLab:
    """A lab cluster in witness mode and the witness process in the client namespace."""

    def __init__(self, lab: Lab, name: str = "wlab") -> None:
        self.lab = lab
        self.address = f"{lab.node(CLIENT).lan_ipv4}:{PORT}"
        spec = ClusterSpec(
            name=name,
            arbitration=f'mode = "witness"\nwitness = "{self.address}"',
            timers=TIMERS,
            links=("private", "serial"),
        )
        self.cluster = LabCluster(lab, spec)
        self.cluster.write()
        self.state_dir = self.cluster.dir / "witness-state"
        self.log_path: Path = self.cluster.dir / "witness.log"
        self.proc: LabProcess | None = None

    def start_witness(self) -> None:
        """Start `hotstandby witness` in the client namespace (logging at debug level)."""
        argv = [
            sys.executable, "-m", "hotstandby", "witness",
            "-c", str(self.cluster.config), "--listen", self.address,
            "--state-dir", str(self.state_dir), "--log-level", "debug",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = self.lab.spawn(CLIENT, argv, stdout=log, stderr=log)

    def stop_witness(self) -> None:
        """Kill the witness (SIGKILL: a crash, not a clean stop)."""
        assert self.proc is not None
        self.lab.kill(self.proc)
        self.proc = None

    def log(self) -> str:
        """What the witness has logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def up(self, timeout: float = 30.0) -> str:
        """Start the witness and both agents; the active node once it holds the lease."""
        self.start_witness()
        active = self.cluster.up(timeout)
        # The witness grants nobody for one span after its start; until the active node
        # holds a lease, a cut would (rightly) have it give the group up.
        self.cluster.wait_for(
            "the active node to hold the witness's lease",
            lambda: (
                (s := self.cluster.status(active)) is not None
                and (s["lease_left"] or 0) > LEASE / 2
            ),
            3 * LEASE,
        )
        return active
