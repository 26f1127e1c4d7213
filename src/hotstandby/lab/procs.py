"""Processes the lab starts inside namespaces: tracked by pid, signalled only by pid."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hotstandby.lab._cmd import LabError
from hotstandby.lab.netns import ns_argv

#: How long to wait for a killed process to be reaped before calling it stuck.
REAP_TIMEOUT = 5.0


#: How often to look at /proc while waiting for a process to stop.
POLL_INTERVAL = 0.002


def process_state(pid: int) -> str | None:
    """The one-letter state of pid from /proc (R, S, D, T, Z...), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def await_stopped(pids: Sequence[int], timeout: float = 1.0) -> bool:
    """Wait until every pid is stopped (or gone); False if one still runs after timeout.

    A process in uninterruptible sleep (D) stops only when its system call returns, so the
    wait is bounded rather than endless.
    """
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in pids if process_state(p) not in (None, "T", "t", "Z", "X")]
        if not running:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)


def await_gone(pids: Sequence[int], timeout: float = REAP_TIMEOUT) -> bool:
    """Wait until every pid has exited (a zombie counts: it runs no more code)."""
    deadline = time.monotonic() + timeout
    while True:
        if all(process_state(p) in (None, "Z", "X") for p in pids):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL)


@dataclass(eq=False)
class LabProcess:
    """One process the lab started in a node's namespace."""

    node: str
    argv: list[str]
    popen: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        """The process id (ip netns exec execs the program, so this is the program itself)."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the process has not exited (a frozen process is alive)."""
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for exit and return the exit status (negative: killed by that signal)."""
        return self.popen.wait(timeout=timeout)

    def read_line(self, timeout: float) -> str:
        """One line of the process's stdout (a pipe), within timeout; LabError otherwise.

        Read a byte at a time: a helper answers one line per request, and bytes read
        ahead into a buffer would hide the next answer from select().
        """
        stdout = self.popen.stdout
        if stdout is None:
            raise LabError(f"{self.argv[0]} on {self.node} has no stdout pipe")
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise LabError(f"{self.argv[0]} on {self.node} did not answer within "
                               f"{timeout}s: {data!r}")  # fmt: skip
            chunk = os.read(fd, 1)
            if not chunk:
                raise LabError(f"{self.argv[0]} on {self.node} exited: {self.output()[-2000:]}")
            data += chunk
        return data.decode()

    def output(self) -> str:
        """What the process wrote to its log file so far (empty when not logged)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


class ProcessTracker:
    """Starts processes in namespaces and remembers them, so that only they get signalled."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._procs: list[LabProcess] = []
        self._count = 0

    def spawn(
        self,
        node: str,
        ns: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
    ) -> LabProcess:
        """Start argv in namespace ns; output goes to a log file unless stdout/stderr are given."""
        self._count += 1
        log_path: Path | None = None
        log: IO[bytes] | None = None
        if stdout is None or stderr is None:
            # A file, not a pipe: nobody may read a pipe and a full pipe would stall the process.
            log_path = self._log_dir / f"{node}-{self._count}-{Path(argv[0]).name}.log"
            log = log_path.open("wb")
        try:
            popen = subprocess.Popen(
                ns_argv(ns, argv),
                env=dict(env) if env is not None else None,
                stdin=stdin,
                stdout=stdout if stdout is not None else log,
                stderr=stderr if stderr is not None else log,
                # Its own session: a Ctrl-C at the terminal reaches the test, not the node.
                start_new_session=True,
            )
        finally:
            if log is not None:
                log.close()
        proc = LabProcess(node=node, argv=list(argv), popen=popen, log_path=log_path)
        self._procs.append(proc)
        return proc

    def processes(self, node: str | None = None) -> list[LabProcess]:
        """Tracked processes still running, of one node or of all."""
        return [p for p in self._procs if p.alive() and (node is None or p.node == node)]

    def _own(self, proc: LabProcess | int) -> LabProcess:
        for p in self._procs:
            if p is proc or p.pid == proc:
                return p
        raise LabError(f"process {proc!r} was not started by this lab; refusing to signal it")

    def send_signal(self, proc: LabProcess | int, sig: signal.Signals) -> None:
        """Send sig to one process this lab started; an already-exited one is ignored."""
        p = self._own(proc)
        if p.alive():
            # poll() above reaped nothing, so the pid still names our child (no reuse possible).
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)

    def freeze(self, proc: LabProcess | int) -> None:
        """SIGSTOP, and return once the process is stopped: it sends nothing until resumed."""
        self.send_signal(proc, signal.SIGSTOP)
        await_stopped([self._own(proc).pid])

    def resume(self, proc: LabProcess | int) -> None:
        """SIGCONT a frozen process."""
        self.send_signal(proc, signal.SIGCONT)

    def kill(self, proc: LabProcess | int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send sig (SIGKILL by default) and, for SIGKILL, reap the process."""
        p = self._own(proc)
        self.send_signal(p, sig)
        if sig == signal.SIGKILL:
            try:
                p.popen.wait(timeout=REAP_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                raise LabError(f"pid {p.pid} did not die after SIGKILL") from exc

    def kill_all(self) -> None:
        """SIGKILL every tracked process still running (SIGKILL also ends frozen ones)."""
        for p in self._procs:
            self.kill(p)
