"""Finding the processes that hold a file system: real processes of this test, and a made-up
/proc for the cases a test cannot easily stage (zombies, mappings, a command with spaces)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hotstandby.agent.resources.volume import Holder, find_holders, lineage, mounted_elsewhere


def _stat_line(pid: int, command: str, state: str, ppid: int, start: int) -> str:
    # Fields after the command: state ppid, then 17 more, then the start time (field 22).
    rest = [state, str(ppid), *["0"] * 17, str(start), "0"]
    return f"{pid} ({command}) {' '.join(rest)}\n"


def _fake_process(proc: Path, pid: int, command: str, state: str = "S", ppid: int = 1) -> Path:
    entry = proc / str(pid)
    (entry / "fd").mkdir(parents=True)
    (entry / "stat").write_text(_stat_line(pid, command, state, ppid, 1000 + pid))
    return entry


def test_real_processes_holding_open_files_and_working_directories(tmp_path: Path) -> None:
    dev = os.stat(tmp_path).st_dev
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], cwd=tmp_path, stdin=subprocess.PIPE
    )
    try:
        with (tmp_path / "open-file").open("w") as f:
            holders = {h.pid: h for h in find_holders(dev)}
            assert f"fd {f.fileno()}" in holders[os.getpid()].uses
            assert "cwd" in holders[child.pid].uses
            assert holders[child.pid].command.startswith("python")
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    # Gone: no longer listed (a pid of an exited child is not a holder).
    assert child.pid not in {h.pid for h in find_holders(dev)}


def test_made_up_proc(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "data").write_text("x")
    dev = os.stat(volume).st_dev
    proc = tmp_path / "proc"
    # A process with its working directory and an open file on the volume.
    a = _fake_process(proc, 100, "post gres) x")
    (a / "cwd").symlink_to(volume)
    (a / "fd" / "0").symlink_to("/dev/null")
    (a / "fd" / "7").symlink_to(volume / "data")
    # A process that only maps a file of the volume (a library, a database's shared memory).
    b = _fake_process(proc, 200, "mapper")
    maps = f"7f00-7f10 r--p 00000000 {os.major(dev):02x}:{os.minor(dev):02x} 1234 /v/lib.so\n"
    (b / "maps").write_text("7e00-7e10 rw-p 00000000 00:00 0 [heap]\n" + maps)
    # A zombie: it has closed everything already, even where its entries still point.
    z = _fake_process(proc, 300, "zombie", state="Z")
    (z / "cwd").symlink_to(volume)
    # A process that holds nothing on it, and an entry that is not a process.
    c = _fake_process(proc, 400, "other")
    (c / "cwd").symlink_to("/proc")
    (proc / "self").mkdir()
    found = find_holders(dev, proc)
    assert found == [
        Holder(100, 1100, "post gres) x", ("cwd", "fd 7")),
        Holder(200, 1200, "mapper", ("mapped",)),
    ]
    assert str(found[0]) == "100 (post gres) x: cwd, fd 7)"


def test_lineage_is_this_process_and_its_ancestors(tmp_path: Path) -> None:
    mine = lineage()
    assert os.getpid() in mine and os.getppid() in mine
    proc = tmp_path / "proc"
    _fake_process(proc, 10, "init", ppid=0)
    _fake_process(proc, 20, "shell", ppid=10)
    _fake_process(proc, 30, "agent", ppid=20)
    _fake_process(proc, 40, "sibling", ppid=20)
    assert lineage(30, proc) == {30, 20, 10}


def test_mount_namespaces_still_mounting_the_device(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    line = "40 22 7:3 / /srv/data rw,relatime - ext4 /dev/loop3 rw\n"
    root = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
    for pid, namespace, table in [
        (10, "mnt:[1]", root),  # the node's own, already unmounted
        (20, "mnt:[2]", root + line),  # a copy that kept the volume
        (21, "mnt:[2]", root + line),  # the same namespace again: named once
        (30, "mnt:[3]", root),
    ]:
        entry = _fake_process(proc, pid, f"p{pid}")
        (entry / "ns").mkdir()
        (entry / "ns" / "mnt").symlink_to(namespace)
        (entry / "mountinfo").write_text(table)
    _fake_process(proc, 40, "zombie", state="Z")  # no ns link: skipped
    assert mounted_elsewhere({os.makedev(7, 3)}, proc) == ["20 (p20) on /srv/data"]
    assert mounted_elsewhere({os.makedev(7, 4)}, proc) == []
