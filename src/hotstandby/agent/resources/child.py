"""Child processes of resource adapters: run without a shell, in their own session, killed whole.

Every command a resource runs (a service's start, stop and monitor commands, an OCF agent,
systemctl) goes through here. The child leads a session of its own, so a stop or a timeout
can end it together with everything it started (`killpg`), and a Ctrl-C at the agent's
terminal never reaches it. The agent loop enforces each action's timeout by cancelling the
adapter; `run_command` answers a cancellation by killing the child's whole process group
before it lets the cancellation go on, so nothing a timed-out action started lives on.

Output (stdout and stderr together) goes to a file, never to a pipe: a daemon the command
leaves behind keeps its copy of the descriptor, and a pipe nobody reads would block that
daemon once full, while waiting for the pipe's end would wait for the daemon. Without a log
file of the resource's own, the file is an unlinked temporary one.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

#: The PATH of every child: a clean environment, the same on every machine.
CHILD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: How much of a command's output a result's detail carries.
TAIL = 600
#: Bound on reaping a child after SIGKILL (only a process stuck in the kernel takes long).
REAP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Completed:
    """A command that ran to its end."""

    returncode: int  # negative: killed by that signal
    output: str  # the tail of its stdout and stderr, stripped

    def describe(self) -> str:
        """'exit status 3' or 'killed by SIGKILL', then the output's last lines."""
        text = describe_status(self.returncode)
        return f"{text}: {self.output}" if self.output else text


def describe_status(code: int) -> str:
    """A wait status in words."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child: a clean one, then `extra`."""
    return {"PATH": CHILD_PATH, "LANG": "C.UTF-8", **extra}


def user_options(user: str | None) -> dict[str, Any]:
    """Popen options that run the child as `user` with its groups (KeyError: no such user)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    groups = os.getgrouplist(user, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def user_exists(user: str) -> bool:
    """Whether this machine knows `user` (and its primary group)."""
    try:
        grp.getgrgid(pwd.getpwnam(user).pw_gid)
    except KeyError:
        return False
    return True


def kill_group(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the process group that `pid` leads (already gone is fine)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def reap_killed(proc: asyncio.subprocess.Process) -> None:
    """Kill proc's whole group and wait (bounded) until proc is reaped."""
    kill_group(proc.pid)
    with contextlib.suppress(TimeoutError, ProcessLookupError):
        async with asyncio.timeout(REAP_TIMEOUT):
            await proc.wait()


def read_tail(out: IO[bytes], start: int, limit: int = TAIL) -> str:
    """The last `limit` bytes written to `out` since offset `start`, as stripped text."""
    if out.writable():
        out.flush()
    end = out.seek(0, os.SEEK_END)
    out.seek(max(start, end - limit))
    return out.read().decode(errors="replace").strip()


@contextlib.contextmanager
def output_file(log: str | None) -> Any:
    """The file a child writes to: the resource's log (appended) or an unlinked temporary."""
    if log is None:
        with tempfile.TemporaryFile() as out:
            yield out
    else:
        with open(log, "a+b") as out:
            yield out


async def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str = "/",
    user: str | None = None,
    log: str | None = None,
) -> Completed:
    """Run argv to its end in a session of its own; cancellation kills its whole group.

    OSError when it cannot be started (no such program, not executable, bad cwd),
    KeyError when `user` does not exist.
    """
    options = user_options(user)
    with output_file(log) as out:
        start = out.seek(0, os.SEEK_END)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            **options,
        )
        try:
            code = await proc.wait()
        except asyncio.CancelledError:
            await reap_killed(proc)
            raise
        return Completed(code, read_tail(out, start))
