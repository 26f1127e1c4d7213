"""The witness's state file: the lease holder and each node's last request number.

Written atomically (a temporary file, fsync, rename, fsync of the folder) on every
change of holder, before the answer that reports the change leaves, so a grant the
witness forgets in a crash was never heard by anyone. The remaining time is for the
operator only: after a restart the witness assumes the full span (see `lease`).

The request numbers are written with each change of holder and at a clean stop, not
on every renewal (an fsync per renewal would make a slow disk look like an absent
witness). Between those writes a restart forgets how far a node's numbers went; a
recording of that node's requests from the gap, replayed right after a restart,
could then be applied once. A replayed RELEASE can free nothing another node could
take within the restart hold-off, and the real node's next request moves its number
past the recording; a replayed CLAIM or RENEW of a node gives that node a lease it
may not use, delaying the other's takeover by one span per replayed datagram.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1


class StateFileError(Exception):
    """The state file exists but cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Saved:
    """What the state file holds."""

    cluster: str
    holder: str | None = None
    remaining: float = 0.0
    numbers: dict[str, int] = field(default_factory=dict)


def load(path: Path, cluster: str) -> Saved:
    """The saved state at `path` (empty when there is none); StateFileError when unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Saved(cluster)
    except OSError as err:
        raise StateFileError(f"witness state {path}: cannot be read: {err.strerror}") from err
    try:
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"expected format {FORMAT}")
        if data.get("cluster") != cluster:
            raise ValueError(f"written for cluster {data.get('cluster')!r}, not {cluster!r}")
        holder = data.get("holder")
        numbers = data.get("numbers", {})
        if holder is not None and not isinstance(holder, str):
            raise ValueError("holder must be a node name or null")
        if not isinstance(numbers, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in numbers.items()
        ):
            raise ValueError("numbers must map node names to non-negative integers")
        remaining = float(data.get("remaining", 0.0))
    except (ValueError, TypeError) as err:
        raise StateFileError(f"witness state {path}: {err}") from err
    return Saved(cluster, holder, remaining, dict(numbers))


def save(path: Path, saved: Saved) -> None:
    """Write `saved` to `path` atomically and durably."""
    data = {
        "format": FORMAT,
        "cluster": saved.cluster,
        "holder": saved.holder,
        "remaining": round(saved.remaining, 3),
        "numbers": saved.numbers,
    }
    text = json.dumps(data, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
