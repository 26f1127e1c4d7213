"""A serial line between two nodes: a socat pseudo-terminal pair as a null-modem cable."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from hotstandby.lab._cmd import LabError
from hotstandby.lab.procs import await_stopped

#: How often to look for socat's pty links while waiting for them.
POLL_INTERVAL = 0.01


class SerialLine:
    """Two pty paths; bytes written to one come out of the other, both ways.

    Cutting the line (for a power loss) sends SIGSTOP to socat: both ports stay open and
    writable and simply receive nothing, as with a real cable to a dead machine. Killing socat
    instead would hang up the peer's pty (read returns EIO), a signal no real serial port
    gives, so a test would measure a detection path that does not exist in production.

    The price of SIGSTOP: the kernel keeps what is written during the cut in the pty buffers
    (a few KiB per direction; a writer then blocks or gets EAGAIN) and socat delivers it after
    heal, where a real cable would have lost it. Flushing it is not possible from outside:
    tcflush on a pty slave does not reach data already queued for the master's reader. A
    heartbeat receiver must therefore reject such late messages by their sequence numbers,
    which it has to do anyway for replays.
    """

    def __init__(self, workdir: Path, end_a: str, end_b: str) -> None:
        self.ends = (end_a, end_b)
        self._paths = {end_a: workdir / f"serial-{end_a}", end_b: workdir / f"serial-{end_b}"}
        self._log = workdir / "socat.log"
        self._popen: subprocess.Popen[bytes] | None = None
        self._cut = False

    @property
    def pid(self) -> int | None:
        """The socat pid while it runs."""
        return self._popen.pid if self._popen is not None else None

    def path(self, end: str) -> Path:
        """The pty path for end (a node name): open it like /dev/ttyS0."""
        try:
            return self._paths[end]
        except KeyError:
            raise LabError(f"the serial line joins {self.ends}, not {end!r}") from None

    def start(self, timeout: float = 5.0) -> None:
        """Start socat and return once both pty links exist."""
        a, b = (self._paths[e] for e in self.ends)
        with self._log.open("wb") as log:
            self._popen = subprocess.Popen(
                [
                    "socat",
                    "-d",
                    "-d",
                    f"pty,raw,echo=0,link={a}",
                    f"pty,raw,echo=0,link={b}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        # socat creates the links only after both ptys are set up; poll for that event.
        while not (a.is_symlink() and b.is_symlink()):
            if self._popen.poll() is not None:
                raise LabError(f"socat exited {self._popen.returncode}: {self._log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"socat made no pty pair within {timeout}s: {self._log_text()}")
            time.sleep(POLL_INTERVAL)

    def _log_text(self) -> str:
        return self._log.read_text(errors="replace").strip() if self._log.exists() else ""

    def cut(self) -> None:
        """Stop carrying bytes (SIGSTOP socat): both ends hear silence."""
        if self._popen is not None and self._popen.poll() is None:
            os.kill(self._popen.pid, signal.SIGSTOP)
            # Stopping is asynchronous: return only once socat can no longer move a byte.
            await_stopped([self._popen.pid])
            self._cut = True

    def heal(self) -> None:
        """Carry bytes again (SIGCONT socat); bytes written during the cut arrive now."""
        if self._popen is None or self._popen.poll() is not None or not self._cut:
            return
        os.kill(self._popen.pid, signal.SIGCONT)
        self._cut = False

    @property
    def is_cut(self) -> bool:
        """Whether the line is currently cut."""
        return self._cut

    def stop(self) -> None:
        """End socat (by its pid) and remove the pty links."""
        if self._popen is not None:
            if self._popen.poll() is None:
                # SIGKILL also ends a stopped socat; nothing of socat's state needs saving.
                self._popen.kill()
            self._popen.wait(timeout=5.0)
        for path in self._paths.values():
            # socat removes its links on a clean exit only; after SIGKILL they dangle.
            path.unlink(missing_ok=True)
