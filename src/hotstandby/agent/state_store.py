"""What must survive an agent restart: the epoch and whether this node was active.

Written atomically (write a temporary file, fsync it, rename it over the old one,
fsync the directory), so a power cut leaves either the old state or the new one.
A corrupt or unreadable file is never trusted: it is reported and set aside, and
the node starts from epoch 0 as "not active" - which is safe, because the core
probes what runs and takes nothing without evidence; the epoch only orders
histories, and a node that restarted from 0 loses a split-brain tie, as it should.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "state.json"
FORMAT = 1


@dataclass(frozen=True)
class StoredState:
    """The persisted part of a node's state."""

    epoch: int = 0
    active: bool = False
    boots: int = 0  # agent starts so far: makes boot ids grow (see Heartbeat.boot)


@dataclass(frozen=True)
class LoadResult:
    """What was read, and a problem to report if the file could not be trusted."""

    state: StoredState
    problem: str | None = None


class StateStore:
    """The state file in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE

    def load(self) -> LoadResult:
        """Read the state; a missing file is a first start, a bad one is set aside."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return LoadResult(StoredState())
        except OSError as err:
            return LoadResult(StoredState(), f"{self.path}: cannot read: {err.strerror}")
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("unknown format")
            epoch, active, boots = data["epoch"], data["active"], data.get("boots", 0)
            if type(epoch) is not int or epoch < 0 or type(active) is not bool:
                raise ValueError("bad field types")
            if type(boots) is not int or boots < 0:
                raise ValueError("bad boot counter")
        except (ValueError, KeyError) as err:
            kept = self._set_aside()
            return LoadResult(
                StoredState(),
                f"{self.path}: corrupt ({err}); kept as {kept.name}, starting from epoch 0",
            )
        return LoadResult(StoredState(epoch=epoch, active=active, boots=boots))

    def save(self, state: StoredState) -> None:
        """Write the state durably, replacing the old one in one step."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        body = json.dumps(
            {"format": FORMAT, "epoch": state.epoch, "active": state.active, "boots": state.boots}
        )
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _set_aside(self) -> Path:
        n = 0
        while (kept := self.path.with_name(f"{STATE_FILE}.corrupt.{n}")).exists():
            n += 1
        os.replace(self.path, kept)
        return kept
