"""Heartbeats through a shared block device: one 4 KiB slot per node, direct synchronous I/O.

Layout at the link's offset: slot i (i = the node's position in the cluster's node list)
holds [u32 big-endian length][message][zero padding] in SLOT_SIZE bytes. Each node writes
only its own slot and polls the others every interval.

All I/O runs in this link's own two worker threads (one writer, one reader), never on the
event loop. A separate executor rather than asyncio's default one: an I/O stuck in the
kernel holds its thread for as long as the storage hangs, and it must not take threads
away from the agent's other work (the state file is written through the default executor).
At most one write and one read are in flight; while one is, the next is skipped and
counted as "io_busy", so a hung device costs a bounded number of threads and nothing queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import os
import struct
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from hotstandby.agent.ports import Deliver, LinkStats

log = logging.getLogger("hotstandby.links.disk")

SLOT_SIZE = 4096  # a multiple of any logical block size, so O_DIRECT accepts it
_LENGTH = struct.Struct(">I")
MAX_SLOT_MESSAGE = SLOT_SIZE - _LENGTH.size

T = TypeVar("T")


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return errno.errorcode.get(err.errno, "OSError")
    return type(err).__name__


class DiskIO:
    """The system calls the link makes, so tests can put a stall in front of them."""

    def open(self, device: str) -> int:
        """Open the device for direct, synchronous reads and writes."""
        # O_DSYNC: pwrite returns only once the slot is on stable storage, not in a cache
        # the peer cannot see. O_DIRECT: reads bypass our page cache, so we see what the
        # peer wrote through its own path to the storage, not our stale copy.
        return os.open(device, os.O_RDWR | os.O_DIRECT | os.O_DSYNC | os.O_CLOEXEC)

    def pwrite(self, fd: int, buf: mmap.mmap, offset: int) -> int:
        """Write the whole aligned buffer at offset."""
        return os.pwrite(fd, buf, offset)

    def pread(self, fd: int, buf: mmap.mmap, offset: int) -> int:
        """Read into the whole aligned buffer from offset."""
        return os.preadv(fd, [buf], offset)

    def close(self, fd: int) -> None:
        """Close the device."""
        os.close(fd)


class DiskLink:
    """This node's slot on a shared block device, and the peers' slots it polls."""

    def __init__(
        self,
        name: str,
        device: str,
        offset: int,
        slot: int,
        peers: Mapping[str, int],
        *,
        interval: float = 0.1,
        io_timeout: float = 0.5,
        io: DiskIO | None = None,
    ) -> None:
        if offset % SLOT_SIZE:
            raise ValueError(f"link {name}: offset {offset} is not a multiple of {SLOT_SIZE}")
        if slot in peers.values() or len(set(peers.values())) != len(peers):
            raise ValueError(f"link {name}: every node needs a slot of its own")
        self.name = name
        self.stats = LinkStats()
        self.device = device
        self.offset = offset
        self.slot = slot
        self.peers = dict(peers)
        self.interval = interval
        self.io_timeout = io_timeout
        self.io = io or DiskIO()
        self.slots = max([slot, *self.peers.values()]) + 1
        # Figures for status and benchmarks: the duration of the last completed I/O.
        self.last_write_seconds: float | None = None
        self.last_read_seconds: float | None = None
        self._fd: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        # O_DIRECT needs page-aligned memory; an anonymous mmap always is.
        self._wbuf = mmap.mmap(-1, SLOT_SIZE)
        self._rbuf = mmap.mmap(-1, self.slots * SLOT_SIZE)
        self._open: asyncio.Future[int] | None = None
        self._write: asyncio.Future[int] | None = None
        self._read: asyncio.Future[int] | None = None
        # Last seen raw content per peer slot; None until the first read (the baseline).
        self._seen: dict[int, bytes] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._open_problem: str | None = None

    # ---------------------------------------------------------------- life cycle

    async def start(self, deliver: Deliver) -> None:
        """Open the device and poll the peers' slots every interval."""
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"disk-{self.name}")
        # A device that cannot be opened now (storage not attached yet, a slow path) must
        # not stop the agent: the poller keeps trying, and the link stays silent meanwhile.
        if await self._ensure_open():
            # The baseline read, before returning: a peer's write that lands after start()
            # must be news, not part of the baseline.
            await self._read_once(deliver)
        self._poller = asyncio.create_task(self._poll(deliver), name=f"disk-{self.name}")

    async def close(self) -> None:
        """Stop polling; close the device once no I/O of ours is still running on it."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        pending = [f for f in (self._open, self._write, self._read) if f and not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.io_timeout)
        pending = [f for f in pending if not f.done()]
        fd, self._fd = self._fd, None
        if pending:
            # Closing an fd that a stuck thread still uses would let a later open() reuse the
            # number, and the late pwrite would land in somebody else's file. Close it (and
            # free the buffers) only when the last of those I/Os returns.
            log.warning("link %s: closing with I/O stuck on %s", self.name, self.device)
            remaining = set(pending)

            def finished(fut: asyncio.Future[Any]) -> None:
                remaining.discard(fut)
                if not remaining:
                    self._release(fd)

            for fut in pending:
                fut.add_done_callback(finished)
        else:
            self._release(fd)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, fd: int | None) -> None:
        if fd is not None:
            with contextlib.suppress(OSError):
                self.io.close(fd)
        self._wbuf.close()
        self._rbuf.close()

    # ---------------------------------------------------------------- I/O plumbing

    def _submit(self, call: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        assert self._executor is not None
        fut = asyncio.get_running_loop().run_in_executor(self._executor, call, *args)
        # A result that arrives after its wait timed out is read by nobody; fetch the
        # exception so asyncio does not log "exception was never retrieved".
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return fut

    async def _finish(self, fut: asyncio.Future[T]) -> T:
        # shield: a timeout stops our waiting, not the thread (which cannot be stopped);
        # the future stays pending, which is what makes the next I/O count as io_busy.
        return await asyncio.wait_for(asyncio.shield(fut), self.io_timeout)

    async def _ensure_open(self) -> bool:
        if self._fd is not None:
            return True
        if self._open is not None and not self._open.done():
            return False  # an earlier open is still hanging
        self._open = fut = self._submit(self.io.open, self.device)
        fut.add_done_callback(self._opened)
        try:
            await self._finish(fut)
        except TimeoutError:
            self.stats.drop("open_timeout")
        except OSError as err:
            self.stats.drop(f"open_{_reason(err)}")
            # Retried every interval: say it once per kind of failure, not ten times a second.
            if self._open_problem != _reason(err):
                log.warning("link %s: cannot open %s: %s", self.name, self.device, err)
            self._open_problem = _reason(err)
        if self._fd is not None and self._open_problem is not None:
            log.info("link %s: %s is open again", self.name, self.device)
            self._open_problem = None
        return self._fd is not None

    def _opened(self, fut: asyncio.Future[int]) -> None:
        # Runs on the loop whenever the open returns, even long after its timeout.
        if fut.cancelled() or fut.exception() is not None:
            return
        fd = fut.result()
        if self._closed or self._fd is not None:
            with contextlib.suppress(OSError):
                self.io.close(fd)
        else:
            self._fd = fd

    # ---------------------------------------------------------------- writing

    def send(self, message: bytes) -> None:
        """Start writing the message into our slot; skip it while the last write runs."""
        if len(message) > MAX_SLOT_MESSAGE:
            self.stats.fail_send("oversized")
            return
        if self._closed or self._fd is None:
            self.stats.fail_send("not_open")
            return
        if self._write is not None and not self._write.done():
            self.stats.fail_send("io_busy")
            return
        # The buffer is free: the only write that could use it has returned.
        self._wbuf[:] = bytes(SLOT_SIZE)
        self._wbuf[: _LENGTH.size + len(message)] = _LENGTH.pack(len(message)) + message
        at = self.offset + self.slot * SLOT_SIZE
        self._write = self._submit(self._timed_write, self._fd, at)
        task = asyncio.create_task(self._await_write(self._write))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Wait until the write in flight, if any, has returned or timed out, and is counted."""
        # Bounded: each write task ends by io_timeout at the latest.
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _timed_write(self, fd: int, at: int) -> int:
        began = time.monotonic()
        written = self.io.pwrite(fd, self._wbuf, at)
        self.last_write_seconds = time.monotonic() - began
        return written

    async def _await_write(self, fut: asyncio.Future[int]) -> None:
        try:
            written = await self._finish(fut)
        except TimeoutError:
            self.stats.fail_send("io_timeout")
        except OSError as err:
            self.stats.fail_send(_reason(err))
        else:
            if written == SLOT_SIZE:
                self.stats.sent += 1
            else:
                self.stats.fail_send("short_write")

    # ---------------------------------------------------------------- reading

    async def _poll(self, deliver: Deliver) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        # Not `while True`: on Python 3.11, wait_for (in _finish) can swallow a cancel
        # that arrives as its I/O completes, and close() would then await this forever.
        while not self._closed:
            # Keep to the schedule; after a long stall, skip the missed turns instead of
            # firing them back to back.
            due += self.interval
            now = loop.time()
            due = max(due, now)
            await asyncio.sleep(due - now)
            await self._read_once(deliver)

    async def _read_once(self, deliver: Deliver) -> None:
        if self._read is not None and not self._read.done():
            self.stats.drop("io_busy")
            return
        if not await self._ensure_open():
            return
        assert self._fd is not None
        self._read = fut = self._submit(self._timed_read, self._fd)
        try:
            got = await self._finish(fut)
        except TimeoutError:
            # Whatever it returns later is discarded: content read that late could make a
            # dead peer look alive for a moment.
            self.stats.drop("io_timeout")
            return
        except OSError as err:
            self.stats.drop(f"read_{_reason(err)}")
            return
        if got != len(self._rbuf):
            self.stats.drop("short_read")
            return
        area = self._rbuf[:]
        self._take(area, deliver)

    def _timed_read(self, fd: int) -> int:
        began = time.monotonic()
        got = self.io.pread(fd, self._rbuf, self.offset)
        self.last_read_seconds = time.monotonic() - began
        return got

    def _take(self, area: bytes, deliver: Deliver) -> None:
        slots = {i: area[i * SLOT_SIZE : (i + 1) * SLOT_SIZE] for i in self.peers.values()}
        if self._seen is None:
            # The first read is a baseline, not news: what a slot held before we started may
            # be years old, and delivering it would announce a dead peer as alive.
            self._seen = slots
            return
        for i, raw in slots.items():
            if self._seen.get(i) == raw:
                continue  # unchanged: the peer wrote nothing new (or nothing at all)
            self._seen[i] = raw
            (length,) = _LENGTH.unpack_from(raw)
            if length == 0:
                continue
            if length > MAX_SLOT_MESSAGE:
                self.stats.drop("bad_slot")
                continue
            deliver(self.name, raw[_LENGTH.size : _LENGTH.size + length])
