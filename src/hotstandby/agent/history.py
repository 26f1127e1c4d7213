"""The persistent event history: JSON lines in <state-dir>/<cluster>/events.jsonl.

Every record the agent keeps in memory is also appended here, so `hotstandby events`
and `why` show what happened before a restart. The file is rotated by size
(events.jsonl.1 is the newest old one, up to events.jsonl.N; the oldest goes).

Writes happen in one worker thread fed by an unbounded in-memory queue: the loop only
appends to the queue (about a microsecond), so a slow or stuck disk never stalls the
heartbeats. Each record is flushed to the kernel at once (a crash of the agent loses
nothing written), but not fsynced: a power cut may lose the last few seconds of history,
which is a price worth paying against a disk flush per record - fsync takes milliseconds
on a loaded disk, and the history is for people; what safety rests on (the epoch, the
active flag) is in the state file, which is fsynced (see state_store).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger("hotstandby.agent")

EVENTS_FILE = "events.jsonl"
MAX_BYTES = 10 * 1024 * 1024  # rotate beyond this size
KEEP = 5  # rotated files kept


@dataclass(frozen=True)
class Rotation:
    """How big the current file may grow and how many old ones are kept."""

    max_bytes: int = MAX_BYTES
    keep: int = KEEP


class EventLog:
    """Appends records to the history file in a worker thread; reads it back at start."""

    def __init__(self, directory: str | os.PathLike[str], rotation: Rotation = Rotation()) -> None:
        self.directory = Path(directory)
        self.path = self.directory / EVENTS_FILE
        self.rotation = rotation
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.errors = 0
        self.last_error = ""
        self.appended = 0

    # ------------------------------------------------------------ reading

    def files(self) -> list[Path]:
        """The history's files, oldest first."""
        old = [self.path.with_name(f"{EVENTS_FILE}.{n}") for n in range(self.rotation.keep, 0, -1)]
        return [p for p in [*old, self.path] if p.exists()]

    def load(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` records across the files, oldest first; bad lines are skipped."""
        records: list[dict[str, Any]] = []
        for path in reversed(self.files()):
            chunk = list(_read(path))
            records[:0] = chunk
            if len(records) >= limit:
                break
        return records[len(records) - limit :] if limit else []

    # ------------------------------------------------------------ writing

    def start(self) -> None:
        """Start the writer thread."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write_all, name="history", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        """Queue one record for the file; returns at once."""
        self.appended += 1
        self._queue.put(record)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most `timeout` seconds) and stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued is written or failed (for tests and measurements)."""
        deadline = time.monotonic() + timeout
        while self.written + self.errors < self.appended:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _write_all(self) -> None:
        f: BinaryIO | None = None
        size = 0
        try:
            while True:
                record = self._queue.get()
                if record is None:
                    return
                try:
                    if f is None:
                        f = self.path.open("ab")
                        size = os.fstat(f.fileno()).st_size
                    line = json.dumps(record, default=str).encode() + b"\n"
                    f.write(line)
                    f.flush()
                    size += len(line)
                    self.written += 1
                    if size >= self.rotation.max_bytes:
                        f.close()
                        f = None
                        self._rotate()
                except OSError as err:
                    # A full or failing disk must not end the history for good: count it,
                    # drop the record, and try again with the next one.
                    self.errors += 1
                    self.last_error = f"{self.path}: {err.strerror or err}"
                    if self.errors == 1 or self.errors % 1000 == 0:
                        log.warning(
                            "event history: %s (%d records lost)", self.last_error, self.errors
                        )
                    if f is not None:
                        with contextlib.suppress(OSError):
                            f.close()
                        f = None
        finally:
            if f is not None:
                f.close()

    def _rotate(self) -> None:
        keep = self.rotation.keep
        if keep == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(keep - 1, 0, -1):
            older = self.path.with_name(f"{EVENTS_FILE}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{EVENTS_FILE}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{EVENTS_FILE}.1"))


def _read(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(record, dict) and isinstance(record.get("at"), int | float):
                    yield record
    except OSError as err:
        log.warning("event history: cannot read %s: %s", path, err.strerror)
