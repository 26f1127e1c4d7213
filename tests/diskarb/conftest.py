"""Fixtures for the disk arbiter's tests: a shared disk of loop devices, named with our prefix."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.throttle import throttle_missing, throttled

PREFIX = "hda"
DISK_SIZE = 2 << 20  # the arbitration area lies at 1 MiB


def require_root() -> None:
    """Skip the calling test, saying why, without root or losetup."""
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, blkio cgroups)")
    if shutil.which("losetup") is None:
        pytest.skip("needs losetup (util-linux)")


@pytest.fixture
def shared_disk(tmp_path: Path) -> Iterator[SharedDisk]:
    """One sparse file seen through a loop device per node (a, b, c); detached afterwards."""
    require_root()
    folder = tmp_path / f"{PREFIX}-{os.getpid()}"
    folder.mkdir()
    disk = SharedDisk(folder / "shared.img", DISK_SIZE, ["a", "b", "c"])
    try:
        disk.attach()
        yield disk
    finally:
        disk.detach()


@contextlib.contextmanager
def slow_device(
    device: str, bytes_per_second: int = 512, pid: int | None = None
) -> Iterator[Callable[[], None]]:
    """Throttle a process's I/O to device (blkio cgroup); yields a function that lifts it.

    The process is this one, or `pid` (with every thread it has or starts later).

    At 512 B/s every 4 KiB request waits about 8 s in the block layer; lifting the limit
    releases the queued requests at once. Other loop devices stay fast.
    """
    reason = throttle_missing()
    if reason is not None:
        pytest.skip(reason)
    member = os.getpid() if pid is None else pid
    with throttled(device, [member], bytes_per_second, prefix=PREFIX) as lift:
        yield lift


class Recorder:
    """Reads a FIFO in a thread, noting when each byte arrived."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self.got: list[tuple[float, bytes]] = []
        # Open the reading end first (non-blocking), so the writer's open does not wait.
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                data = os.read(self._fd, 64)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            now = time.monotonic()
            self.got.extend((now, bytes([b])) for b in data)
            if not data:
                time.sleep(0.005)

    def bytes(self) -> bytes:
        """Everything written so far."""
        return b"".join(b for _, b in self.got)

    def close(self) -> None:
        """Stop reading."""
        self._done.set()
        self._thread.join(5)
        os.close(self._fd)
