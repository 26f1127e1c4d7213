"""Where the shared-disk arbitration area lies, so that it never overlaps a heartbeat area.

The arbitration messages live at ARBITRATION_OFFSET on `[arbitration] device`: a square of
SLOT_SIZE cells, one row per node in node-list order (the node's message slot, which only
that node reads) and one cell in the row per writer (so every cell has a single writer and
two claimants can never overwrite each other). A disk link's heartbeat area is its own
slots, one per node, at the link's offset. The loader refuses a disk link on the
arbitration device whose area overlaps the arbitration area.
"""

from __future__ import annotations

SLOT_SIZE = 4096  # a multiple of any logical block size, so O_DIRECT accepts it
ARBITRATION_OFFSET = 1 << 20  # 1 MiB: far past a heartbeat area at offset 0 for 256 nodes


def arbitration_area(nodes: int) -> tuple[int, int]:
    """The byte range [start, end) of the arbitration cells for `nodes` nodes."""
    return ARBITRATION_OFFSET, ARBITRATION_OFFSET + nodes * nodes * SLOT_SIZE


def heartbeat_area(offset: int, nodes: int) -> tuple[int, int]:
    """The byte range [start, end) of a disk link's heartbeat slots at `offset`."""
    return offset, offset + nodes * SLOT_SIZE


def cell_offset(target: int, writer: int, nodes: int) -> int:
    """Where the cell that `writer` writes for `target` starts (node-list positions)."""
    return ARBITRATION_OFFSET + (target * nodes + writer) * SLOT_SIZE
