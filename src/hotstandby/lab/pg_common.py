"""What the PostgreSQL lab clusters share: the server, initdb, the client's workload, steps.

Used by hotstandby.lab.pg_failover (shared-disk mode) and hotstandby.lab.pg_replicated
(replicated mode). `Workload` drives hotstandby.lab.pg_workload in the lab's client
namespace through the floating IP and reads its records as they come.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hotstandby.lab._cmd import LabError
from hotstandby.lab.cluster import LabCluster
from hotstandby.lab.pg_workload import Verdict, read_records
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.topology import CLIENT, FLOATING_IPV4, Lab

BINDIR = "/usr/lib/postgresql/15/bin"
PORT = 5432
ACCOUNTS = 20
INITDB_TIMEOUT = 60.0
DSN = f"host={FLOATING_IPV4} port={PORT} dbname=postgres user=postgres"
RESOURCE = "pg"
_MODULE = [sys.executable, "-m", "hotstandby.lab.pg_workload"]


def skip_reason() -> str | None:
    """Why PostgreSQL cannot run in the lab here, or None."""
    if not os.access(f"{BINDIR}/postgres", os.X_OK):
        return f"PostgreSQL 15 is not installed ({BINDIR}/postgres)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


def postgres_dir(path: Path, mode: int = 0o700) -> Path:
    """Make directory `path` owned by the postgres user; returns it."""
    entry = pwd.getpwnam("postgres")
    path.mkdir(mode=mode)
    path.chmod(mode)  # mkdir's mode goes through the umask
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def initdb(data: Path, hba: Sequence[str]) -> None:
    """Make a cluster in the existing empty directory `data`; append `hba` to pg_hba.conf."""
    entry = pwd.getpwnam("postgres")
    subprocess.run(
        [f"{BINDIR}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--locale=C"],
        user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
        capture_output=True, check=True, timeout=INITDB_TIMEOUT, cwd="/",
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as f:
        f.writelines(line + "\n" for line in hba)


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def workload_cmd(lab: Lab, *argv: str, timeout: float = 30.0) -> str:
    """Run a pg_workload command in the client namespace; its output."""
    return lab.run(CLIENT, [*_MODULE, *argv], timeout=timeout).stdout


def steps(cluster: LabCluster, node: str, since: float = 0.0) -> tuple[str, ...]:
    """node's steps of the postgres resource (those recorded after `since`, wall clock)."""
    return tuple(
        str(e["message"])
        for e in cluster.events(node)
        if e["kind"] == "resource.step"
        and str(e["message"]).startswith(f"{RESOURCE}: ")
        and float(e.get("at", 0.0)) >= since
    )


def last_json(text: str) -> dict[str, Any]:
    """The JSON object on the last line of a command's output."""
    data: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return data


class Workload:
    """The client's write workload (pg_workload run) and what it recorded so far."""

    def __init__(self, lab: Lab, cluster: LabCluster, name: str = "workload") -> None:
        self.lab = lab
        self.cluster = cluster
        self.out = lab.workdir / f"{name}.jsonl"
        self.stop_file = lab.workdir / f"{name}.stop"
        self.proc: LabProcess | None = None
        self.records: list[dict[str, Any]] = []
        self._offset = 0

    def prepare(self, filler: int = 0) -> None:
        """Create the tables through the floating IP."""
        workload_cmd(self.lab, "prepare", DSN, str(ACCOUNTS), str(filler), timeout=120)

    def start(self) -> None:
        """Start committing, from the client namespace."""
        self.proc = self.lab.spawn(
            CLIENT, [*_MODULE, "run", DSN, str(self.out), str(self.stop_file), str(ACCOUNTS)]
        )

    def poll(self) -> list[dict[str, Any]]:
        """Every record so far (reads only what was added since the last call)."""
        if not self.out.exists():
            return self.records
        with self.out.open() as f:
            f.seek(self._offset)
            for line in f:
                if not line.endswith("\n"):
                    break  # being written: read it next time
                self._offset += len(line.encode())
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return self.records

    def acked(self, after: float = 0.0) -> int:
        """Commits acknowledged after monotonic time `after`."""
        return sum(1 for r in self.poll() if "ok" in r and float(r["t"]) > after)

    def last_ack(self) -> float:
        """When the newest acknowledged commit came (monotonic), 0 if none yet."""
        return max((float(r["t"]) for r in self.poll() if "ok" in r), default=0.0)

    def wait_acked(self, count: int, after: float = 0.0, timeout: float = 30.0) -> None:
        """Wait for `count` commits acknowledged after `after`."""
        self._alive()
        self.cluster.wait_for(
            f"{count} commits acknowledged", lambda: self.acked(after) >= count, timeout
        )

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll `check` (with the cluster's logs on failure), the client still running."""

        def alive_and() -> Any:
            self._alive()
            return check()

        return self.cluster.wait_for(what, alive_and, timeout)

    def _alive(self) -> None:
        if self.proc is not None and not self.proc.alive():
            raise LabError(f"the workload client exited: {self.proc.output()[-2000:]}")

    def stop(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Stop the client (it finishes its transaction) and return every record."""
        self.stop_file.touch()
        if self.proc is not None:
            deadline = time.monotonic() + timeout
            while self.proc.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.close()
        # Every line is complete now: a last one cut short by a kill is left out.
        self.records = read_records(str(self.out)) if self.out.exists() else []
        return self.records

    def verify(self) -> Verdict:
        """The new primary's data against the client's records (after stop)."""
        text = workload_cmd(self.lab, "verify", DSN, str(ACCOUNTS), str(self.out))
        return Verdict(**last_json(text))

    def close(self) -> None:
        """Kill the client if it still runs."""
        if self.proc is not None and self.proc.alive():
            self.lab.kill(self.proc)
