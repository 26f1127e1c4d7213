"""The loader refuses a disk link whose heartbeat slots overlap the arbitration area."""

from __future__ import annotations

import pytest

from hotstandby.config import ConfigError, load_text
from hotstandby.config.disk_layout import (
    ARBITRATION_OFFSET,
    SLOT_SIZE,
    arbitration_area,
    cell_offset,
    heartbeat_area,
)
from hotstandby.config.errors import format_key
from tests.config.config_samples import BASE, line_with

DISK_LINK = """
[[link]]
name = "sd"
kind = "disk"
offset = {offset}
[link.endpoints]
alpha = "{a}"
beta = "{b}"
"""


def _with_disk_link(offset: int, a: str = "/dev/sdc", b: str = "/dev/sdc") -> str:
    head, sep, tail = BASE.partition("[arbitration]")
    return head + DISK_LINK.format(offset=offset, a=a, b=b) + "\n" + sep + tail


def test_cells_tile_the_area_without_overlap() -> None:
    start, end = arbitration_area(3)
    cells = {cell_offset(t, w, 3) for t in range(3) for w in range(3)}
    assert len(cells) == 9
    assert min(cells) == start == ARBITRATION_OFFSET
    assert max(cells) + SLOT_SIZE == end
    assert heartbeat_area(0, 2) == (0, 2 * SLOT_SIZE)


@pytest.mark.parametrize("offset", [0, ARBITRATION_OFFSET - 2 * SLOT_SIZE, arbitration_area(2)[1]])
def test_a_heartbeat_area_clear_of_the_arbitration_area_loads(offset: int) -> None:
    cluster = load_text(_with_disk_link(offset), "r.toml")
    assert cluster.links[-1].offset == offset


@pytest.mark.parametrize(
    "offset",
    [ARBITRATION_OFFSET - 2 * SLOT_SIZE + 512, ARBITRATION_OFFSET, arbitration_area(2)[1] - 1],
)
def test_an_overlap_on_the_arbitration_device_is_refused_with_its_line(offset: int) -> None:
    text = _with_disk_link(offset)
    with pytest.raises(ConfigError) as info:
        load_text(text, "r.toml")
    error = info.value
    keys = [format_key(p.key) for p in error.problems]
    assert keys == ["link[2].offset"]
    assert error.line == line_with(text, f"offset = {offset}")
    assert "clear of the arbitration area on /dev/sdc" in error.expected
    assert error.found == str(offset)


def test_the_same_offset_on_another_device_is_fine() -> None:
    cluster = load_text(_with_disk_link(ARBITRATION_OFFSET, "/dev/sdd", "/dev/sdd"), "r.toml")
    assert cluster.arbitration.device == "/dev/sdc"
