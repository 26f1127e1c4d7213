"""Fixtures for the link tests: namespaces (the lab), a pty pair, loop devices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.lab import Lab
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.serial import SerialLine
from tests.links.linkhelp import PREFIX, clean_leftovers, require, run_dir


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Two nodes and a client on a LAN (IPv4 + IPv6) and a private link; removed afterwards."""
    require("ip", "nft", "tc", "sysctl")
    with Lab(PREFIX, serial=False, disk_size=0) as built:
        yield built


@pytest.fixture
def serial_line(tmp_path: Path) -> Iterator[SerialLine]:
    """A socat pty pair joining ends "a" and "b"; socat ended by its pid afterwards."""
    require("socat", root=False)  # a pty pair needs no privilege
    clean_leftovers()
    line = SerialLine(run_dir(tmp_path), "a", "b")
    line.start()
    try:
        yield line
    finally:
        line.stop()


@pytest.fixture
def shared_disk(tmp_path: Path) -> Iterator[SharedDisk]:
    """One sparse file seen through a loop device per node (a, b, c); detached afterwards."""
    require("losetup")
    clean_leftovers()
    disk = SharedDisk(run_dir(tmp_path) / "shared.img", 1 << 20, ["a", "b", "c"])
    try:
        disk.attach()
        yield disk
    finally:
        disk.detach()
