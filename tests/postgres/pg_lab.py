"""A throwaway PostgreSQL 15 cluster for the tests: initdb into a temp dir owned by postgres."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from hotstandby.agent.resources.postgres import DEFAULT_BINDIR

#: Temp dirs of these tests start with this.
PREFIX = "hpg"
BINDIR = DEFAULT_BINDIR
INITDB_TIMEOUT = 60.0


def skip_reason() -> str | None:
    """Why a real server cannot run here, or None."""
    if os.geteuid() != 0:
        return "running PostgreSQL as the postgres user needs root"
    if not os.access(f"{BINDIR}/postgres", os.X_OK):
        return f"PostgreSQL 15 is not installed ({BINDIR}/postgres)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres user"
    return None


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_cluster(parent: Path | None = None) -> Path:
    """A new temp dir (PREFIX) holding an initdb'd cluster in ./data and a socket dir ./run."""
    base = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir=parent))
    base.chmod(0o755)
    entry = pwd.getpwnam("postgres")
    for sub in ("data", "run"):
        (base / sub).mkdir(mode=0o700)
        os.chown(base / sub, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [f"{BINDIR}/initdb", "-D", str(base / "data"), "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8", "--locale=C"],
        user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
        capture_output=True, check=True, timeout=INITDB_TIMEOUT, cwd="/",
    )  # fmt: skip
    return base


def remove(base: Path) -> None:
    """Remove a cluster made by make_cluster (its server must be gone)."""
    shutil.rmtree(base, ignore_errors=True)
