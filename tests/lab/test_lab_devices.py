"""The lab's serial line, shared disk and processes, and what power loss does to them."""

from __future__ import annotations

import errno
import mmap
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest

from hotstandby.lab import CLIENT, Lab, LabError
from hotstandby.lab.procs import process_state

pytestmark = pytest.mark.lab

BLOCK = 4096


def _open_port(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)


def _read_exactly(fd: int, size: int, timeout: float = 2.0) -> bytes:
    data = b""
    while len(data) < size:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            break
        data += os.read(fd, size - len(data))
    return data


def _nothing_arrives(fd: int, wait: float = 0.3) -> bool:
    ready, _, _ = select.select([fd], [], [], wait)
    return not ready


def _aligned(fill: bytes) -> mmap.mmap:
    # O_DIRECT needs a page-aligned buffer; an anonymous mmap is one.
    buf = mmap.mmap(-1, BLOCK)
    buf.write(fill * BLOCK)
    return buf


def test_serial_line_carries_bytes_both_ways(lab: Lab) -> None:
    assert lab.serial is not None
    fa, fb = _open_port(lab.serial.path("a")), _open_port(lab.serial.path("b"))
    try:
        os.write(fa, b"ping from a")
        assert _read_exactly(fb, 11) == b"ping from a"
        os.write(fb, b"\x00\xffback")
        assert _read_exactly(fa, 6) == b"\x00\xffback"
        lab.cut_serial()
        os.write(fa, b"stale")
        assert _nothing_arrives(fb)
        assert _nothing_arrives(fa)
        lab.heal_serial()
        os.write(fa, b"fresh")
        # What was written during the cut waited in the pty buffer (see SerialLine).
        assert _read_exactly(fb, 10) == b"stalefresh"
    finally:
        os.close(fa)
        os.close(fb)


def test_shared_disk_direct_io_is_seen_by_both_nodes(lab: Lab) -> None:
    assert lab.disk is not None
    dev_a, dev_b = lab.disk.device("a"), lab.disk.device("b")
    fa = os.open(dev_a, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
    fb = os.open(dev_b, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
    try:
        assert os.pwritev(fa, [_aligned(b"A")], BLOCK) == BLOCK
        back = _aligned(b"\0")
        assert os.preadv(fb, [back], BLOCK) == BLOCK
        assert back[:] == b"A" * BLOCK
        lab.cut_disk("a")
        with pytest.raises(OSError) as refused:
            os.pwritev(fa, [_aligned(b"X")], BLOCK)
        assert refused.value.errno == errno.EPERM
        assert os.pwritev(fb, [_aligned(b"B")], 2 * BLOCK) == BLOCK
        lab.heal_disk("a")
        assert os.pwritev(fa, [_aligned(b"C")], BLOCK) == BLOCK
    finally:
        os.close(fa)
        os.close(fb)


def test_freeze_resume_and_kill_a_process(lab: Lab) -> None:
    proc = lab.spawn("a", ["sleep", "600"])
    lab.freeze(proc)
    assert process_state(proc.pid) == "T"
    lab.resume(proc)
    assert process_state(proc.pid) != "T"
    lab.kill(proc)
    assert not proc.alive()
    assert proc.wait(timeout=1) == -9
    with pytest.raises(LabError):
        lab.kill(os.getpid())  # never signal a process the lab did not start


def _forking_process(lab: Lab) -> tuple[int, int]:
    """Start a process in a that forks a child; return both pids."""
    code = "import os, time\npid = os.fork()\nif pid: print(pid, flush=True)\ntime.sleep(600)\n"
    proc = lab.spawn("a", [sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.popen.stdout is not None
    ready, _, _ = select.select([proc.popen.stdout], [], [], 10)
    assert ready, "the forking process printed no child pid"
    return proc.pid, int(proc.popen.stdout.readline())


def test_power_loss_kills_processes_and_cuts_everything(lab: Lab) -> None:
    assert lab.serial is not None and lab.disk is not None
    parent, child = _forking_process(lab)
    assert lab.ping(CLIENT, lab.node("a").lan_ipv4)

    lab.power_loss("a")

    assert lab.processes("a") == []
    assert process_state(parent) is None
    # The orphaned child is reparented; gone or a zombie nobody reaped means dead.
    assert process_state(child) in (None, "Z")
    for link in lab.links_of("a"):
        for end in (link.a.owner, link.b.owner):
            assert lab.is_cut(link, to=end), link.name
    assert not lab.ping(CLIENT, lab.node("a").lan_ipv4, timeout=0.5)
    assert lab.ping(CLIENT, lab.node("b").lan_ipv4)  # the rest of the lab is untouched
    assert lab.serial.is_cut
    fd = os.open(lab.disk.device("a"), os.O_RDWR | os.O_DIRECT)
    try:
        with pytest.raises(OSError):
            os.pwritev(fd, [_aligned(b"Z")], 0)
    finally:
        os.close(fd)

    lab.power_on("a")
    assert lab.ping(CLIENT, lab.node("a").lan_ipv4)
    assert not lab.serial.is_cut
