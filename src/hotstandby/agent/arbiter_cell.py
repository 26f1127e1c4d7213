"""One cell of the disk arbitration area: what one node says to one other node.

A cell holds, in SLOT_SIZE bytes (zero padded):

    magic  b"HSARB"  | version u8 | cluster tag (4) | writer, target (u8 length + UTF-8)
    seq u64 | epoch u64 | request u64 | released u64 | mac (16)

`request` is the token of the writer's "release or die" to the target (0: none posted);
`released` is the token of the target's claim the writer acknowledged (0: none). The mac is
the first 16 bytes of HMAC-SHA256 under the cluster secret over everything before it, so a
cell written by another cluster, a garbled sector or a forgery is dropped and counted.
`seq` grows with every write of a writer, so an old cell written back is not taken as news.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from hotstandby.config.disk_layout import SLOT_SIZE
from hotstandby.wire.codec import MAC_SIZE, MIN_SECRET, cluster_tag

MAGIC = b"HSARB"
VERSION = 1
_NUMBERS = struct.Struct(">QQQQ")
_MAX_NAME = 255


class CellError(Exception):
    """A cell that is not a valid message; `reason` is the counter it goes to."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Cell:
    """The content of one cell."""

    writer: str
    target: str
    seq: int
    epoch: int
    request: int = 0
    released: int = 0


class CellCodec:
    """Seals and opens cells of one cluster under its shared secret."""

    def __init__(self, cluster: str, secret: bytes) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"secret shorter than {MIN_SECRET} bytes")
        self.tag = cluster_tag(cluster)
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def _seal(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()[:MAC_SIZE]

    def encode(self, cell: Cell) -> bytes:
        """The SLOT_SIZE bytes that hold `cell`."""
        names = b""
        for name in (cell.writer, cell.target):
            raw = name.encode()
            if not raw or len(raw) > _MAX_NAME:
                raise ValueError(f"node name {name!r} cannot be stored in a cell")
            names += bytes([len(raw)]) + raw
        numbers = _NUMBERS.pack(cell.seq, cell.epoch, cell.request, cell.released)
        body = MAGIC + bytes([VERSION]) + self.tag + names + numbers
        return (body + self._seal(body)).ljust(SLOT_SIZE, b"\0")

    def decode(self, raw: bytes) -> Cell | None:
        """The cell in `raw`; None for a never-written (all zero) cell; CellError if invalid."""
        if raw.count(0) == len(raw):
            return None
        if raw[: len(MAGIC)] != MAGIC:
            raise CellError("bad_magic")
        at = len(MAGIC)
        if raw[at] != VERSION:
            raise CellError("bad_version")
        at += 1
        if raw[at : at + len(self.tag)] != self.tag:
            raise CellError("wrong_cluster")
        at += len(self.tag)
        names: list[str] = []
        for _ in range(2):
            length = raw[at]
            name = raw[at + 1 : at + 1 + length]
            at += 1 + length
            try:
                names.append(name.decode())
            except UnicodeDecodeError:
                raise CellError("garbled") from None
        end = at + _NUMBERS.size
        if not names[0] or not names[1] or end + MAC_SIZE > len(raw):
            raise CellError("garbled")
        if not hmac.compare_digest(raw[end : end + MAC_SIZE], self._seal(raw[:end])):
            raise CellError("bad_mac")
        if raw[end + MAC_SIZE :].count(0) != len(raw) - end - MAC_SIZE:
            raise CellError("garbled")
        seq, epoch, request, released = _NUMBERS.unpack_from(raw, at)
        return Cell(names[0], names[1], seq, epoch, request, released)
