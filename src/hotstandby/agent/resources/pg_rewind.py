"""Bringing a node's data directory back in line with the primary: pg_rewind, a fresh base
backup, and keeping what is thrown away.

The replicated postgres adapter (`pg_replica.py`) decides when; these carry it out. Every
program runs as the server's user, without a shell, in a session of its own, so a follow()
cut short by its timeout kills it whole (`child.run_command`). Nothing here removes data a
primary lacks before a copy of it is kept: a rewind runs only after `keep_copy`, and a base
backup goes into a new directory that replaces the old one only once it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime

from hotstandby.agent.resources.child import Completed, child_env, run_command

REWIND_NOT_NEEDED = "no rewind required"
DIVERGED_AT = re.compile(r"servers diverged at WAL location (\S+) on timeline (\d+)")
CLUSTER_STATE = re.compile(r"^Database cluster state:\s*(.+)$", re.MULTILINE)
# pg_controldata's words for a server that stopped cleanly (as a primary, as a replica).
CLEAN_STATES = ("shut down", "shut down in recovery")
CONTROLDATA_TIMEOUT = 10.0


class DataError(Exception):
    """A step on the data directory that did not work; the text says which and why."""


@dataclass(frozen=True)
class RewindCheck:
    """What `pg_rewind --dry-run` found."""

    needed: bool  # the target has WAL the source lacks: a rewind would throw it away
    diverged_at: str  # "0/3000148", empty when the output does not say
    timeline: int  # the timeline the servers diverged on, 0 when not said
    output: str


def parse_rewind(output: str) -> RewindCheck:
    """What pg_rewind's output says about the divergence."""
    match = DIVERGED_AT.search(output)
    return RewindCheck(
        needed=REWIND_NOT_NEEDED not in output,
        diverged_at=match.group(1) if match else "",
        timeline=int(match.group(2)) if match else 0,
        output=output,
    )


def stamp() -> str:
    """The UTC time as the names of kept directories carry it (20260101T120000)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def unused(path: str) -> str:
    """`path`, or `path-2`, `path-3` ... whichever does not exist yet."""
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{path}-{n}"
    return candidate


def has_cluster(pgdata: str) -> bool:
    """Whether `pgdata` holds a cluster (its PG_VERSION file)."""
    return os.path.isfile(os.path.join(pgdata, "PG_VERSION"))


def chown_to(path: str, user: str) -> None:
    """Give `path` to `user` and its primary group."""
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def write_standby_signal(pgdata: str, user: str) -> None:
    """Mark `pgdata` as a replica's: the server starts in standby mode."""
    path = os.path.join(pgdata, "standby.signal")
    if not os.path.exists(path):
        with open(path, "wb"):
            pass
        chown_to(path, user)


async def _run(
    argv: list[str], user: str | None, timeout: float, log: str | None = None
) -> Completed:
    try:
        async with asyncio.timeout(timeout):
            return await run_command(argv, child_env({}), user=user, log=log)
    except TimeoutError:
        raise DataError(f"{os.path.basename(argv[0])} did not end within {timeout:.0f}s") from None
    except OSError as err:
        raise DataError(f"cannot run {argv[0]}: {err}") from None


async def cluster_state(bindir: str, pgdata: str) -> str:
    """The cluster state pg_control records ("shut down", "in production", ...)."""
    argv = [os.path.join(bindir, "pg_controldata"), "-D", pgdata]
    try:
        # Quick and read-only: its whole output is needed, not a tail.
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, check=False,
            timeout=CONTROLDATA_TIMEOUT, env=child_env({}),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"pg_controldata {pgdata}: {err}") from None
    match = CLUSTER_STATE.search(done.stdout)
    if done.returncode != 0 or match is None:
        text = (done.stderr or done.stdout).strip()[-300:]
        raise DataError(f"pg_controldata {pgdata}: exit status {done.returncode}: {text}")
    return match.group(1).strip()


async def finish_recovery(bindir: str, pgdata: str, user: str, timeout: float) -> None:
    """Run a crashed primary's crash recovery in single-user mode (what pg_rewind needs)."""
    # pg_rewind only compares clusters that stopped cleanly; this is how it brings one there
    # itself, done here so that its dry run can look first.
    done = await _run(
        [os.path.join(bindir, "postgres"), "--single", "-F", "-D", pgdata,
         "-c", "wal_log_hints=on", "template1"],
        user, timeout,
    )  # fmt: skip
    if done.returncode != 0:
        raise DataError(f"crash recovery in single-user mode: {done.describe()}")


async def rewind(
    bindir: str, pgdata: str, user: str, source: str, timeout: float, *, dry_run: bool
) -> RewindCheck:
    """pg_rewind `pgdata` (stopped) from the server `source` (a conninfo)."""
    argv = [os.path.join(bindir, "pg_rewind"), f"--source-server={source}",
            f"--target-pgdata={pgdata}"]  # fmt: skip
    if dry_run:
        argv.append("--dry-run")
    done = await _run(argv, user, timeout)
    if done.returncode != 0:
        raise DataError(f"pg_rewind{' --dry-run' if dry_run else ''}: {done.describe()}")
    return parse_rewind(done.output)


async def keep_copy(pgdata: str, into: str, timeout: float) -> str:
    """Copy `pgdata` (stopped) whole into the directory `into`; the copy's path."""
    os.makedirs(into, mode=0o700, exist_ok=True)
    target = unused(os.path.join(into, f"{os.path.basename(pgdata)}.diverged-{stamp()}"))
    done = await _run(["cp", "-a", "--", pgdata, target], None, timeout)
    if done.returncode != 0:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(shutil.rmtree, target)
        raise DataError(f"copying {pgdata} to {target}: {done.describe()}")
    return target


def new_dir_for(pgdata: str) -> str:
    """Where a base backup for `pgdata` is made: beside it, on the same file system."""
    parent, base = os.path.split(pgdata)
    return os.path.join(parent, f".{base}.hotstandby-new")


async def base_backup(
    bindir: str, pgdata: str, user: str, conninfo: str, slot: str, timeout: float
) -> str:
    """A fresh copy of the primary's data (`conninfo`) in a new directory; its path."""
    target = new_dir_for(pgdata)
    # What a base backup cut short left behind is no one's data.
    await asyncio.to_thread(shutil.rmtree, target, True)
    os.mkdir(target, 0o700)
    chown_to(target, user)
    argv = [os.path.join(bindir, "pg_basebackup"), "-d", conninfo, "-D", target,
            "-X", "stream", "-c", "fast", "-w"]  # fmt: skip
    if slot:
        argv += ["-S", slot]
    try:
        done = await _run(argv, user, timeout)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, target, True)
        raise
    if done.returncode != 0:
        await asyncio.to_thread(shutil.rmtree, target, True)
        raise DataError(f"pg_basebackup: {done.describe()}")
    return target


def swap_in(pgdata: str, new: str, keep_in: str | None, label: str) -> str:
    """Put `new` in place of `pgdata`: the old one kept in `keep_in` (or removed); its path."""
    # Kept as <base>.<label>-<time> when it holds a cluster; an empty directory is removed.
    kept = ""
    if os.path.lexists(pgdata):
        if keep_in is not None and has_cluster(pgdata):
            os.makedirs(keep_in, mode=0o700, exist_ok=True)
            name = f"{os.path.basename(pgdata)}.{label}-{stamp()}"
            kept = unused(os.path.join(keep_in, name))
            shutil.move(pgdata, kept)
        else:
            shutil.rmtree(pgdata)
    os.rename(new, pgdata)
    return kept
