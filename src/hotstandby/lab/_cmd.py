"""Running the lab's external programs: argv lists, timeouts, clear errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

#: Seconds any single helper program may take before the lab gives up on it.
DEFAULT_TIMEOUT = 10.0

#: Programs the lab runs, and the Debian package that ships each.
PROGRAMS: Mapping[str, str] = {
    "ip": "iproute2",
    "tc": "iproute2",
    "nft": "nftables",
    "socat": "socat",
    "losetup": "util-linux",
    "sysctl": "procps",
}


class LabError(RuntimeError):
    """A lab operation failed."""


class LabUnsupportedError(LabError):
    """This kernel or machine lacks a feature the requested operation needs."""


class LabCommandError(LabError):
    """A helper program exited with an error."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(argv)!s} exited {returncode}: {stderr.strip()}")


def missing_programs(programs: Mapping[str, str] = PROGRAMS) -> list[str]:
    """Name each missing program together with the Debian package that provides it."""
    return [f"{p} (Debian package {pkg})" for p, pkg in programs.items() if shutil.which(p) is None]


def skip_reason() -> str | None:
    """Why lab tests cannot run here (not root, programs missing), or None when they can."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, veth pairs, loop devices)"
    missing = missing_programs()
    if missing:
        return "the lab needs programs that are not installed: " + ", ".join(missing)
    return None


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    stdin: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a helper program to completion with a timeout; raise LabCommandError on failure."""
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout}s") from exc
    if check and done.returncode != 0:
        raise LabCommandError(argv, done.returncode, done.stderr)
    return done
