"""Test-side handles: loop-device volumes, volume_helper.py processes, and processes that hold
a volume, all made by the tests, named with their prefix and removed again."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hotstandby.lab import LabError
from hotstandby.lab._cmd import run
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.volume import in_mount_namespace, shared_volume

HELPER = str(Path(__file__).with_name("volume_helper.py"))
#: Bound on any single answer from a helper (python start-up and imports included).
ANSWER_TIMEOUT = 20.0
POLL_INTERVAL = 0.01
#: Programs these tests run, beyond the lab's own.
PROGRAMS = ("mkfs.ext4", "fsck", "debugfs", "losetup", "mount", "unshare", "nsenter")

T = TypeVar("T")


def _read_line(popen: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of a child's stdout, bounded by timeout."""
    stdout = popen.stdout
    assert stdout is not None
    fd = stdout.fileno()
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise LabError(f"process {popen.pid} did not answer within {timeout}s: {data!r}")
        chunk = os.read(fd, 1)  # one byte at a time: never read past the answer
        if not chunk:
            raise LabError(f"process {popen.pid} exited (status {popen.poll()}): {data!r}")
        data += chunk
    return data.decode()


@dataclass(frozen=True)
class Reply:
    """One action's result as the helper reported it."""

    outcome: str
    detail: str
    steps: list[str]
    began: float
    ended: float

    @property
    def took(self) -> float:
        """Seconds the action took inside the adapter's process."""
        return self.ended - self.began


class AdapterHost:
    """A volume adapter in a helper process with a private mount namespace."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.mountpoint: str = spec["params"]["mountpoint"]
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, HELPER, json.dumps(spec)]  # fmt: skip
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        first = json.loads(_read_line(self.popen, ANSWER_TIMEOUT))
        if first != {"ready": True}:
            raise LabError(f"volume helper did not start: {first}")

    @property
    def pid(self) -> int:
        """The helper's pid: unshare execs it, so this is the adapter's own process."""
        return self.popen.pid

    def _ask(self, line: str, timeout: float) -> Any:
        stdin = self.popen.stdin
        assert stdin is not None
        stdin.write(f"{line}\n".encode())
        stdin.flush()
        return json.loads(_read_line(self.popen, timeout))

    def run(self, action: str, timeout: float = ANSWER_TIMEOUT) -> Reply:
        """Carry out one action (start, stop, monitor, probe) and wait for it."""
        return Reply(**self._ask(action, timeout))

    def hold(self, path: str) -> None:
        """Make the adapter's own process open path and keep it open."""
        self._ask(f"hold {path}", ANSWER_TIMEOUT)

    def risks(self, fstab: Path) -> list[tuple[str | None, str]]:
        """The host risks the adapter's process finds, with that fstab."""
        found: list[list[str | None]] = self._ask(f"risks {fstab}", ANSWER_TIMEOUT)["risks"]
        return [(key, str(message)) for key, message in found]

    def path(self, relative: str = "") -> Path:
        """A path on the mount point as the helper sees it (its mount namespace)."""
        return in_mount_namespace(self.pid, os.path.join(self.mountpoint, relative))

    def enter(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a short command in the helper's mount namespace."""
        return run(["nsenter", "-t", str(self.pid), "-m", "--", *argv], check=False)

    def close(self) -> None:
        """End the helper: closing stdin ends its loop; kill it if it does not."""
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                assert self.popen.stdin is not None
                self.popen.stdin.close()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        for stream in (self.popen.stdin, self.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


HOLDER_CODE = """
import os, signal, sys
if sys.argv[1] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.chdir(sys.argv[2])
f = open(sys.argv[3], "a")
print("ready", flush=True)
signal.pause()
"""


class VolumeLab:
    """The loop-device volumes, helpers and holders of one test; close() removes them all."""

    def __init__(self, prefix: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
        self.volumes: list[SharedDisk] = []
        self.hosts: list[AdapterHost] = []
        self.holders: list[subprocess.Popen[bytes]] = []
        self.copies: list[str] = []  # loop devices over copies of a volume's image

    def volume(self, name: str = "volume", nodes: tuple[str, ...] = ("a",)) -> SharedDisk:
        """A fresh ext4 volume on loop devices (one per node name)."""
        volume = shared_volume(self.workdir, nodes, name=name)
        self.volumes.append(volume)
        return volume

    def attach_copy(self, source: SharedDisk, name: str) -> str:
        """The volume's image as it is on its backing file right now, on a new loop device.

        Copied while mounted, the image is what a power loss leaves on the disk: the file
        system marked in use, its last transactions only in the journal.
        """
        copy = self.workdir / f"{name}.img"
        shutil.copyfile(source.backing, copy)
        device = run(["losetup", "--find", "--show", str(copy)]).stdout.strip()
        self.copies.append(device)
        return device

    def host(
        self,
        device: str,
        *,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
        monitor_timeout: float = 10.0,
        **params: Any,
    ) -> AdapterHost:
        """A helper hosting a volume resource on device, mounted under the work dir."""
        spec = {
            "name": "data",
            "node": "a",
            "params": {
                "device": device,
                "mountpoint": str(self.workdir / "mnt"),
                "fstype": "ext4",
            }
            | params,
            "start_timeout": start_timeout,
            "stop_timeout": stop_timeout,
            "monitor_timeout": monitor_timeout,
        }
        host = AdapterHost(spec)
        self.hosts.append(host)
        return host

    def holder(self, host: AdapterHost, *, ignore_term: bool = False) -> subprocess.Popen[bytes]:
        """A process in the host's mount namespace, working in and writing to its volume."""
        mode = "ignore-term" if ignore_term else "default"
        argv = ["nsenter", "-t", str(host.pid), "-m", "--",
                sys.executable, "-c", HOLDER_CODE, mode, host.mountpoint, "held.log"]  # fmt: skip
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self.holders.append(popen)
        if _read_line(popen, ANSWER_TIMEOUT).strip() != "ready":
            raise LabError("the holder did not start")
        return popen

    def close(self) -> None:
        """Kill the holders (by pid), end the helpers, detach the volumes, remove the dir."""
        for popen in self.holders:
            if popen.poll() is None:
                popen.send_signal(signal.SIGKILL)
            popen.wait(10)
            if popen.stdout is not None:
                popen.stdout.close()
        for host in self.hosts:
            host.close()
        errors = []
        for device in self.copies:
            try:
                run(["losetup", "--detach", device])
            except LabError as exc:
                errors.append(str(exc))
        for volume in self.volumes:
            # The helpers' mount namespaces are gone with them: nothing has the devices now.
            try:
                volume.detach()
            except LabError as exc:
                errors.append(str(exc))
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise LabError("; ".join(errors))


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Poll probe until it returns something other than None/False; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_INTERVAL)
