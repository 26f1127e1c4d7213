"""Helpers for the link tests: root checks, namespaces, a slow device, awaitable deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotstandby.agent.links import DiskIO
from hotstandby.agent.ports import LinkStats
from hotstandby.lab.throttle import BLKIO, throttle_missing, throttled

#: Namespaces, temp dirs and cgroups of these tests all start with this.
PREFIX = "hsk"

CLONE_NEWNET = 0x40000000


def require(*programs: str, root: bool = True) -> None:
    """Skip the calling test, saying why, when not root (if needed) or a program is missing."""
    if root and os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, loop devices, blkio cgroups)")
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs programs that are not installed: {', '.join(missing)}")


def run_dir(base: Path) -> Path:
    """A folder under base whose name carries this process's pid, for leftover detection."""
    path = base / f"{PREFIX}-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def _leftover_owner(text: str) -> int | None:
    """The pid in a run_dir path found in text, when that process is gone."""
    found = re.search(rf"/{PREFIX}-(\d+)/", text)
    if found is None:
        return None
    pid = int(found.group(1))
    return None if Path(f"/proc/{pid}").exists() else pid


def clean_leftovers() -> None:
    """Remove what a killed earlier run of these tests left: loop devices, socat processes."""
    # Fixtures clean up after themselves; this catches runs killed before they could.
    listing = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout
    for line in listing.splitlines():
        name, _, backing = line.strip().partition(" ")
        if _leftover_owner(backing) is not None:
            subprocess.run(["losetup", "--detach", name], timeout=10, check=False)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"socat") and _leftover_owner(b" ".join(argv).decode()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
    for group in BLKIO.glob(f"{PREFIX}-*"):
        pid = group.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            # Its only member died with it, so the group is empty and can go.
            with contextlib.suppress(OSError):
                group.rmdir()


@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the calling thread in network namespace ns; sockets made meanwhile stay there."""
    libc = ctypes.CDLL(None, use_errno=True)
    # Python 3.11 has no os.setns. A network namespace (unlike a user namespace) may be
    # entered by one thread of a multi-threaded process.
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as target:
        if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {ns}: {os.strerror(err)}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns back home: {os.strerror(err)}")


@contextlib.contextmanager
def slow_device(device: str, bytes_per_second: int = 512) -> Iterator[Callable[[], None]]:
    """Throttle this process's I/O to device (blkio cgroup); yields a function that lifts it.

    At 512 B/s every 4 KiB request waits about 8 s in the kernel's block layer; lifting the
    limit releases the queued requests at once. The limit is per device, so the other
    nodes' loop devices stay fast. The whole process: threads started later (the link's
    workers) inherit it.
    """
    reason = throttle_missing()
    if reason is not None:
        pytest.skip(reason)
    with throttled(device, [os.getpid()], bytes_per_second, prefix=PREFIX) as lift:
        yield lift


class Inbox:
    """A Deliver callback that queues (link, message) for the test to await."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def __call__(self, link: str, message: bytes) -> None:
        self.queue.put_nowait((link, message))

    async def next(self, timeout: float = 5.0) -> tuple[str, bytes]:
        """The next delivery, waiting for it at most timeout seconds."""
        return await asyncio.wait_for(self.queue.get(), timeout)

    def empty(self) -> bool:
        """Whether nothing is waiting."""
        return self.queue.empty()


class WatchedStats(LinkStats):
    """LinkStats that wake a waiting test whenever a drop or a failed send is counted."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def drop(self, reason: str, count: int = 1) -> None:
        """Count, then wake waiters."""
        super().drop(reason, count)
        self._changed.set()

    def fail_send(self, reason: str) -> None:
        """Count, then wake waiters."""
        super().fail_send(reason)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until predicate() holds, re-checked after every counted change."""

        async def wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"not reached within {timeout}s: {self}") from None


class CountingIO(DiskIO):
    """Real disk I/O that also reports each completed read to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.reads = 0
        self._changed = asyncio.Event()

    def pread(self, fd: int, buf: mmap.mmap, offset: int) -> int:
        """Read, then tell the loop."""
        got = super().pread(fd, buf, offset)
        self.loop.call_soon_threadsafe(self._count)
        return got

    def _count(self) -> None:
        self.reads += 1
        self._changed.set()

    async def reads_done(self, count: int, timeout: float = 5.0) -> None:
        """Wait until count more reads have completed."""
        target = self.reads + count

        async def wait() -> None:
            while self.reads < target:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)


class GatedIO(CountingIO):
    """An in-memory 'device' whose writes can be held in the kernel, as by a hung path."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        super().__init__(loop)
        self.present = True  # False: open fails as for a device not attached yet
        self.data = bytearray(size)
        self.gate = threading.Event()
        self.gate.set()
        self.writes_started = threading.Semaphore(0)

    def open(self, device: str) -> int:
        """No file: a dummy descriptor number that is never used for a system call."""
        if not self.present:
            raise FileNotFoundError(2, "No such file or directory", device)
        return -1

    def pwrite(self, fd: int, buf: mmap.mmap, offset: int) -> int:
        """Wait at the gate, then store."""
        self.writes_started.release()
        self.gate.wait()
        data = bytes(buf)
        self.data[offset : offset + len(data)] = data
        return len(data)

    def pread(self, fd: int, buf: mmap.mmap, offset: int) -> int:
        """Copy out of memory."""
        view = memoryview(buf)
        view[:] = self.data[offset : offset + len(view)]
        self.loop.call_soon_threadsafe(self._count)
        return len(view)

    def close(self, fd: int) -> None:
        """Nothing to close."""
