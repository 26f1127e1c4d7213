"""Two nodes' PostgreSQL 15 copies for the replicated-mode tests: alpha and beta on loopback.

A template cluster is made once (initdb is the slow part) and copied for each test; alpha
gets a copy, beta starts empty (a new node). Every server a test leaves running, on a node's
data directory or on a kept copy, is killed by its pid at the end, and the temp dir removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from hotstandby.agent.resources.pg_replica import ReplicatedPostgres
from hotstandby.agent.resources.postgres import find_postmaster, parse_params
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map

from .pg_lab import BINDIR, free_port, make_cluster

PREFIX = "hpr"
NODES = ("alpha", "beta")
SETTINGS = {
    "shared_buffers": "16MB",
    "max_wal_size": "64MB",
    "min_wal_size": "32MB",
    "wal_keep_size": "64MB",
    "fsync": "off",  # throwaway clusters: the tests' speed, not their durability
}
Steps = list[tuple[str, str]]


def make_template() -> Path:
    """A temp dir (PREFIX) holding one initdb'd cluster in ./data, copied for each test."""
    parent = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-tpl-"))
    parent.chmod(0o755)
    return make_cluster(parent) / "data"


@dataclass
class Pair:
    """The two nodes' adapters, their temp dir and the steps they reported."""

    base: Path
    raw: dict[str, Any]
    steps: Steps
    nodes: tuple[str, ...] = NODES

    def adapter(self, node: str, **params: Any) -> ReplicatedPostgres:
        """A new adapter for `node` (as an agent restarted would make it)."""
        resource = Resource(
            "db", ResourceKind.POSTGRES, frozen_map({**self.raw, **params}),
            stop_timeout=30.0, monitor_timeout=5.0,
        )  # fmt: skip
        return ReplicatedPostgres(
            "db",
            parse_params(resource, node, self.nodes),
            lambda n, m: self.steps.append((n, m)),
        )

    def pgdata(self, node: str) -> str:
        """The data directory of `node`."""
        return str(self.base / node / "data")

    def port(self, node: str) -> int:
        """The port of `node`'s server."""
        port: int = self.raw["port"][node]
        return port


def make_pair(template: Path, nodes: tuple[str, ...] = NODES) -> Pair:
    """alpha with a copy of the template cluster, the other nodes with nothing yet."""
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    base.chmod(0o755)
    uid, gid = template.stat().st_uid, template.stat().st_gid
    for node in nodes:
        (base / node).mkdir(mode=0o755)
        (base / node / "run").mkdir(mode=0o755)
        os.chown(base / node / "run", uid, gid)
    shutil.copytree(template, base / "alpha" / "data", symlinks=True)
    for root, dirs, files in os.walk(base / "alpha" / "data"):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid)
    os.chown(base / "alpha" / "data", uid, gid)
    raw: dict[str, Any] = {
        "mode": "replicated",
        "pgdata": {n: str(base / n / "data") for n in nodes},
        "socket_dir": {n: str(base / n / "run") for n in nodes},
        "port": {n: free_port() for n in nodes},
        "replication_address": {n: "127.0.0.1" for n in nodes},
        "bindir": BINDIR,
        "listen_addresses": "127.0.0.1",
        "settings": SETTINGS,
        "connect_timeout": "2s",
        "query_timeout": "2s",
        "follow_timeout": "60s",
    }
    return Pair(base, raw, [], nodes)


def kill_servers(base: Path) -> None:
    """Kill (SIGCONT first) every server running on a data directory under `base`."""
    for pidfile in base.rglob("postmaster.pid"):
        found = find_postmaster(str(pidfile.parent))
        if found is not None:
            os.kill(found.pid, signal.SIGCONT)
            os.killpg(found.pid, signal.SIGKILL)
    for pid in walreceivers_under(base):
        os.kill(pid, signal.SIGCONT)


def processes() -> list[tuple[int, bytes, str]]:
    """Every process now: pid, command line and working directory (those still there)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue  # gone meanwhile
        found.append((int(entry), cmdline, cwd))
    return found


def walreceivers_under(base: Path) -> list[int]:
    """Pids of the walreceiver processes whose server's data directory is under `base`."""
    return [
        pid
        for pid, cmdline, cwd in processes()
        if cmdline.startswith(b"postgres: walreceiver") and cwd.startswith(f"{base}/")
    ]


def base_backups_under(base: Path) -> list[int]:
    """Pids of the pg_basebackup processes writing under `base` (a follow's, left running)."""
    return [
        pid
        for pid, cmdline, _ in processes()
        if b"pg_basebackup" in cmdline and str(base).encode() in cmdline
    ]


def walreceiver(pgdata: str, deadline: float = 10.0) -> int:
    """The pid of the walreceiver of the server on `pgdata`, waiting for it to run."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = walreceivers_under(Path(pgdata).parent)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no walreceiver for {pgdata} within {deadline}s")


def remove_pair(pair: Pair) -> None:
    """Kill what runs on the pair's data, remove its temp dir."""
    kill_servers(pair.base)
    shutil.rmtree(pair.base, ignore_errors=True)


def connect(port: int, **options: Any) -> psycopg.Connection[Any]:
    """A client connection to the server on `port`, as an application's."""
    return psycopg.connect(
        host="127.0.0.1", port=port, dbname="postgres", user="postgres", connect_timeout=5,
        autocommit=True, **options,
    )  # fmt: skip


def wait_for(check: Any, what: str, deadline: float = 15.0) -> Any:
    """Poll `check()` until it returns a true value; that value."""
    end = time.monotonic() + deadline
    while True:
        try:
            value = check()
        except psycopg.Error:
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {deadline}s")
        time.sleep(0.02)


def count(port: int, query: str = "SELECT count(*) FROM t") -> int:
    """The single integer a query returns on the server on `port`."""
    with connect(port) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    value: int = row[0]
    return value
