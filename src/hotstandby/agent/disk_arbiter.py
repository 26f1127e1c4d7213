"""Disk arbitration: "release or die" messages in cells of the shared disk.

The area (`config/disk_layout.py`) lies at ARBITRATION_OFFSET on `[arbitration] device`,
apart from any disk link's heartbeat slots: row t is node t's message slot, cell (t, w) in
it is what node w says to t, written only by w (`agent/arbiter_cell.py`: authenticated, with
a sequence number). The requests of the core:

- CLAIM(peer, token): post "release or die" with the claim's token in our cell of the peer's
  row; GRANTED once it is written and read back.
- RENEW: read our own row; answer RELEASE_REQUESTED(peer, token) for every request posted
  there and not yet acknowledged by us, PEER_RELEASED(peer, token) once when the peer
  acknowledged the claim we now post to it, then RENEWED last (the read is complete). The
  lease itself is counted by the core from the request's time: a node that cannot read the
  disk cannot renew it, and gives up what it holds when the lease runs out.
- ACK(peer, token): tell the claimant we released, echoing its token; no answer.
- RELEASE(peer): take our release request back off the peer's row; no answer.

Any failed or late I/O raises, which the agent loop turns into UNREACHABLE. All I/O runs in
a worker thread (never on the event loop), one job at a time, and requests are carried out
one at a time in the order asked. A job still stuck in the kernel makes every later request
fail at once ("io_busy") instead of queueing behind it: a hung device costs one (daemon)
thread, and a request never lands after a later one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import threading
from dataclasses import dataclass, field

from hotstandby.agent.arbiter_cell import Cell, CellCodec, CellError
from hotstandby.agent.links.disk import DiskIO
from hotstandby.config.disk_layout import SLOT_SIZE, arbitration_area, cell_offset
from hotstandby.core.messages import ArbiterAnswer, ArbiterOutcome, ArbiterRequest

log = logging.getLogger("hotstandby.arbiter.disk")


class DiskArbiterError(OSError):
    """A request that could not be carried out on the device."""


@dataclass
class ArbiterStats:
    """What the disk arbiter counts: dropped cells and failed requests, by reason."""

    dropped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        """Count one cell ignored on a read."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def fail(self, reason: str) -> None:
        """Count one request that failed."""
        self.failed[reason] = self.failed.get(reason, 0) + 1


class DiskArbiter:
    """This node's message cells on the arbitration device."""

    def __init__(
        self,
        cluster: str,
        nodes: tuple[str, ...],
        node: str,
        secret: bytes,
        device: str,
        *,
        io_timeout: float = 0.5,
        io: DiskIO | None = None,
        first_seq: int = 0,
    ) -> None:
        if node not in nodes:
            raise ValueError(f"arbiter: {node!r} is not one of the nodes {nodes}")
        self.nodes = nodes
        self.node = node
        self.index = nodes.index(node)
        self.device = device
        self.io_timeout = io_timeout
        self.io = io or DiskIO()
        self.codec = CellCodec(cluster, secret)
        self.stats = ArbiterStats()
        # What our cell for each peer holds (as last written successfully).
        self._mine: dict[str, tuple[int, int]] = {n: (0, 0) for n in nodes if n != node}
        # Sequence numbers grow across restarts too: the caller seeds them from the clock.
        self._seq = first_seq
        self._seq_checked = False
        self._last_seq: dict[str, int] = {}  # per writer: the highest seq read from it
        self._acked: set[tuple[str, int]] = set()  # requests we acknowledged
        self._reported: dict[str, int] = {}  # per writer: the claim token last reported acked
        self._fd: int | None = None
        self._job: asyncio.Future[bytes | None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------ the port

    async def ask(
        self, request: ArbiterRequest, epoch: int, at: float, peer: str | None, token: int = 0
    ) -> list[ArbiterAnswer]:
        """Carry out one request of the core; raises DiskArbiterError when the disk fails."""
        async with self._lock:
            if request is ArbiterRequest.RENEW:
                first = cell_offset(self.index, 0, len(self.nodes))
                row = await self._run(None, first, first + len(self.nodes) * SLOT_SIZE)
                assert row is not None
                return [*self._news(row, at), ArbiterAnswer(ArbiterOutcome.RENEWED, at)]
            targets = [n for n in self._mine if peer is None or n == peer]
            for target in targets:
                posted, released = self._mine[target]
                if request is ArbiterRequest.CLAIM:
                    posted = token
                elif request is ArbiterRequest.RELEASE:
                    if token and posted != token:
                        continue  # a newer claim's request stays
                    posted = 0
                elif request is ArbiterRequest.ACK:
                    released = token
                await self._write(target, epoch, posted, released)
                if request is ArbiterRequest.ACK:
                    # Only once it is on the disk: until then the request is still news.
                    self._acked.add((target, token))
            if request is ArbiterRequest.CLAIM:
                return [ArbiterAnswer(ArbiterOutcome.GRANTED, at, peer, token=token)]
            return []

    def status(self) -> dict[str, object]:
        """The `arbiter` section of `hotstandby status`: the device and what was counted."""
        return {
            "kind": "disk",
            "device": self.device,
            "dropped": dict(self.stats.dropped),
            "failed": dict(self.stats.failed),
        }

    async def close(self) -> None:
        """Close the device once no I/O of ours still runs on it."""
        self._closed = True
        job = self._job
        if job is not None and not job.done():
            with contextlib.suppress(Exception):
                await asyncio.wait([job], timeout=self.io_timeout)
        if job is None or job.done():
            self._release()
        else:
            # A stuck thread still uses the fd: closing it now could let a later open() reuse
            # the number, and the late write would land in another file.
            job.add_done_callback(lambda _f: self._release())

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                self.io.close(fd)

    # ------------------------------------------------------------ reading

    def _news(self, row: bytes, at: float) -> list[ArbiterAnswer]:
        out: list[ArbiterAnswer] = []
        for writer in self._mine:
            w = self.nodes.index(writer)
            raw = row[w * SLOT_SIZE : (w + 1) * SLOT_SIZE]
            try:
                cell = self.codec.decode(raw)
            except CellError as err:
                self.stats.drop(err.reason)
                continue
            if cell is None:
                continue
            if cell.writer != writer or cell.target != self.node:
                self.stats.drop("misplaced")  # a cell copied from another place
                continue
            if cell.seq < self._last_seq.get(writer, 0):
                self.stats.drop("replayed")
                continue
            self._last_seq[writer] = cell.seq
            if cell.request and (writer, cell.request) not in self._acked:
                out.append(
                    ArbiterAnswer(ArbiterOutcome.RELEASE_REQUESTED, at, writer, token=cell.request)
                )
            # Only an acknowledgement of the claim we post now is news: one that echoes an
            # older claim's token says nothing about the peer since (DiskSlots clears those).
            posted = self._mine[writer][0]
            if cell.released and cell.released == posted and self._reported.get(writer) != posted:
                self._reported[writer] = posted
                out.append(
                    ArbiterAnswer(ArbiterOutcome.PEER_RELEASED, at, writer, token=cell.released)
                )
        return out

    # ------------------------------------------------------------ writing

    async def _write(self, target: str, epoch: int, posted: int, released: int) -> None:
        if not self._seq_checked:
            # Go on from the highest number we ever wrote, as found on the disk: a clock
            # stepped back across a restart must not make our new cells look like replays.
            area = await self._run(None, *arbitration_area(len(self.nodes)))
            assert area is not None
            self._seq = max(self._seq, self._highest_own_seq(area))
            self._seq_checked = True
        self._seq += 1
        cell = Cell(self.node, target, self._seq, epoch, posted, released)
        offset = cell_offset(self.nodes.index(target), self.index, len(self.nodes))
        await self._run(self.codec.encode(cell), offset, offset + SLOT_SIZE)
        self._mine[target] = (posted, released)

    def _highest_own_seq(self, area: bytes) -> int:
        count = len(self.nodes)
        highest = 0
        for t in range(count):
            at = cell_offset(t, self.index, count) - cell_offset(0, 0, count)
            with contextlib.suppress(CellError):
                cell = self.codec.decode(area[at : at + SLOT_SIZE])
                if cell is not None and cell.writer == self.node:
                    highest = max(highest, cell.seq)
        return highest

    # ------------------------------------------------------------ the worker thread

    async def _run(self, data: bytes | None, start: int, end: int) -> bytes | None:
        """One job in a worker thread: write `data` at `start` and read it back, or read
        [start, end) when `data` is None. Raises DiskArbiterError on failure or timeout."""
        if self._closed:
            raise DiskArbiterError("arbiter closed")
        if self._job is not None and not self._job.done():
            self.stats.fail("io_busy")
            raise DiskArbiterError(f"{self.device}: an earlier I/O is still stuck")
        loop = asyncio.get_running_loop()
        self._job = job = loop.create_future()
        # A result that arrives after its wait timed out is read by nobody.
        job.add_done_callback(lambda f: f.cancelled() or f.exception())

        def work() -> None:
            try:
                result: bytes | BaseException | None = self._io(data, start, end)
            except BaseException as err:  # handed to the loop, raised there
                result = err
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, job, result)

        # A daemon thread per job (at most one runs): one stuck in the kernel must not
        # keep the process from exiting, as an executor's joined workers would.
        threading.Thread(target=work, name="arbiter-disk", daemon=True).start()
        try:
            # shield: a timeout stops our waiting, not the thread (which cannot be stopped).
            return await asyncio.wait_for(asyncio.shield(job), self.io_timeout)
        except TimeoutError:
            self.stats.fail("io_timeout")
            raise DiskArbiterError(f"{self.device}: no answer in {self.io_timeout:g}s") from None
        except OSError as err:
            self.stats.fail(type(err).__name__ if err.errno is None else f"errno_{err.errno}")
            raise DiskArbiterError(f"{self.device}: {err}") from err

    def _io(self, data: bytes | None, start: int, end: int) -> bytes | None:
        if self._fd is None:
            self._fd = self.io.open(self.device)
        fd = self._fd
        # O_DIRECT needs page-aligned memory; an anonymous mmap always is.
        with mmap.mmap(-1, end - start) as buf:
            if data is not None:
                buf[:] = data
                written = self.io.pwrite(fd, buf, start)
                if written != len(buf):
                    raise DiskArbiterError(f"{self.device}: short write ({written} bytes)")
                # Read back through the device (O_DIRECT: not our cache): it really landed.
                buf[:] = bytes(len(buf))
            got = self.io.pread(fd, buf, start)
            if got != len(buf):
                raise DiskArbiterError(f"{self.device}: short read ({got} bytes)")
            if data is None:
                return buf[:]
            if buf[:] != data:
                raise DiskArbiterError(f"{self.device}: the cell read back differs")
            return None


def _settle(job: asyncio.Future[bytes | None], result: bytes | BaseException | None) -> None:
    if job.done():
        return
    if isinstance(result, BaseException):
        job.set_exception(result)
    else:
        job.set_result(result)
