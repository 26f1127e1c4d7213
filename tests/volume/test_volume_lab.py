"""The volume adapter on real loop devices and ext4: mount, check, unmount, holders stopped.

Each adapter runs in a helper process with a private mount namespace, as an agent runs in
its own; the tests look at its mounts and files through /proc/PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hotstandby.lab._cmd import run
from hotstandby.lab.volume import mount_points

from .volume_lab import VolumeLab, wait_for

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "src" / "hotstandby" / "examples"


def test_start_monitor_stop(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    assert host.run("probe").outcome == "stopped"
    assert host.run("monitor").outcome == "stopped"
    started = host.run("start")
    assert started.outcome == "ok", started.detail
    assert f"mounted {device} on {host.mountpoint}" in started.detail
    assert started.steps[0].startswith(f"start: fsck -p {device}: exit 0 (clean)")
    assert started.steps[1:] == [f"start: created the mount point {host.mountpoint}"]
    assert mount_points(host.pid, device) == [host.mountpoint]
    # Not in this test's own mount namespace: the mount is the helper's alone.
    assert mount_points(os.getpid(), device) == []
    again = host.run("start")
    assert (again.outcome, again.detail) == ("ok", f"already mounted on {host.mountpoint}")
    monitored = host.run("monitor")
    assert monitored.outcome == "ok" and "probe" in monitored.detail, monitored.detail
    assert not host.path(".hotstandby-probe").exists()  # the probe cleans up after itself
    assert host.run("probe").outcome == "ok"
    host.path("data.txt").write_text("kept\n")
    stopped = host.run("stop")
    assert stopped.outcome == "ok", stopped.detail
    assert stopped.steps == []  # nothing held it: no step to report
    assert mount_points(host.pid, device) == []
    assert host.run("monitor").outcome == "stopped"
    assert host.run("stop").detail == "not mounted"
    # What was written is on the device: a new start, fsck and all, finds it.
    assert host.run("start").outcome == "ok"
    assert host.path("data.txt").read_text() == "kept\n"


def test_start_refuses_what_it_must_not_mount(vlab: VolumeLab) -> None:
    volume = vlab.volume()
    device = volume.device("a")
    absent = vlab.host("/dev/hvo-no-such-device")
    result = absent.run("start")
    assert (result.outcome, result.detail) == ("failed", "no device /dev/hvo-no-such-device")
    not_block = vlab.host(str(volume.backing))
    assert not_block.run("start").detail == f"{volume.backing} is not a block device"
    host = vlab.host(device)
    other = vlab.workdir / "other"
    other.mkdir()
    assert host.enter(["mount", "-t", "ext4", device, str(other)]).returncode == 0
    refused = host.run("start")
    assert refused.outcome == "failed"
    assert refused.detail == f"{device} is already mounted on {other}: not mounting it twice"
    assert host.run("probe").outcome == "failed"
    # Stop releases every mount of the device on the node, wherever it is.
    assert host.run("stop").outcome == "ok"
    assert mount_points(host.pid, device) == []


def test_start_after_a_crash_replays_the_journal(vlab: VolumeLab) -> None:
    volume = vlab.volume()
    first = vlab.host(volume.device("a"))
    assert first.run("start").outcome == "ok"
    with first.path("before-crash.txt").open("w") as f:
        f.write("written before the crash\n")
        f.flush()
        os.fsync(f.fileno())
    # The image copied from under a mounted file system is what a power loss leaves behind:
    # marked in use (needs_recovery), the last transactions only in the journal.
    device = vlab.attach_copy(volume, "crashed")
    features = run(["dumpe2fs", "-h", device]).stdout
    assert "needs_recovery" in features
    host = vlab.host(device)
    started = host.run("start")
    assert started.outcome == "ok", started.detail
    assert "recovering journal" in started.steps[0], started.steps
    assert host.path("before-crash.txt").read_text() == "written before the crash\n"


def test_start_after_errors_runs_a_full_check(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    # State 0: neither "cleanly unmounted" nor "errors": e2fsck must check it in full.
    run(["debugfs", "-w", "-R", "ssv state 0", device])
    host = vlab.host(device)
    started = host.run("start")
    assert started.outcome == "ok", started.detail
    assert "exit 1 (errors corrected)" in started.steps[0]
    assert "was not cleanly unmounted, check forced" in started.steps[0]


def test_start_fails_when_fsck_cannot_repair(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    # With the root directory's inode cleared, `fsck -p` stops: it needs a human. (The state
    # must say "not clean" too, or the check trusts the superblock and looks no further.)
    run(["debugfs", "-w", "-R", "clri <2>", device])
    run(["debugfs", "-w", "-R", "ssv state 0", device])
    host = vlab.host(device)
    started = host.run("start")
    assert started.outcome == "failed"
    assert f"fsck -p {device} exited 4" in started.detail, started.detail
    assert "check it by hand" in started.detail
    assert mount_points(host.pid, device) == []
    # Without the check, the kernel itself refuses it: the check names the cause first.
    unchecked = vlab.host(device, fsck=False)
    refused = unchecked.run("start")
    assert refused.outcome == "failed" and refused.detail.startswith("mount exited 32")


def test_a_holder_is_terminated_and_the_unmount_succeeds(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device, kill_grace="5s", stop_timeout=12.0)
    assert host.run("start").outcome == "ok"
    holder = vlab.holder(host)
    stopped = host.run("stop")
    assert stopped.outcome == "ok", stopped.detail
    assert holder.wait(5) == -signal.SIGTERM
    assert len(stopped.steps) == 2, stopped.steps
    assert f"{host.mountpoint} is busy: 1 process holds it" in stopped.steps[0]
    assert f"sent SIGTERM to {holder.pid} (python" in stopped.steps[0]
    assert "cwd" in stopped.steps[0] and "fd 3" in stopped.steps[0]
    assert stopped.steps[1] == f"stop: unmounted {host.mountpoint} after SIGTERM"
    # It left at once on SIGTERM: the stop did not wait out kill_grace.
    assert stopped.took < 5.0
    assert mount_points(host.pid, device) == []


def test_a_holder_ignoring_term_is_killed(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device, kill_grace="300ms")
    assert host.run("start").outcome == "ok"
    holder = vlab.holder(host, ignore_term=True)
    stopped = host.run("stop")
    assert stopped.outcome == "ok", stopped.detail
    assert holder.wait(5) == -signal.SIGKILL
    mp = host.mountpoint
    assert [s.split(":", 2)[1] for s in stopped.steps] == [
        f" {mp} is busy", f" {mp} is busy", f" unmounted {mp} after SIGKILL",
    ]  # fmt: skip
    assert "sent SIGTERM" in stopped.steps[0] and "sent SIGKILL" in stopped.steps[1]
    assert stopped.took >= 0.3
    assert mount_points(host.pid, device) == []


def test_a_stop_that_cannot_succeed_fails_within_its_timeout(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device, kill_grace="200ms", stop_timeout=2.0)
    assert host.run("start").outcome == "ok"
    # The adapter's own process holds the volume: it is never signalled, so nothing helps.
    host.path("mine").write_text("x")
    host.hold(os.path.join(host.mountpoint, "mine"))
    stopped = host.run("stop")
    assert stopped.outcome == "failed", stopped.detail
    assert "still busy at the stop's deadline" in stopped.detail
    assert f"held by {host.pid} (python" in stopped.detail
    assert "not unmounted lazily" in stopped.detail
    assert "not signalled, the agent itself or its parent" in stopped.steps[0]
    assert stopped.took < 2.0
    # Still mounted, not lazily detached: the node must be fenced to free it.
    assert mount_points(host.pid, device) == [host.mountpoint]


def test_monitor_fails_when_read_only_or_unmounted_behind_its_back(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    assert host.run("start").outcome == "ok"
    assert host.run("monitor").outcome == "ok"
    assert host.enter(["mount", "-o", "remount,ro", host.mountpoint]).returncode == 0
    read_only = host.run("monitor")
    assert (read_only.outcome, read_only.detail) == ("failed", f"{host.mountpoint} is read-only")
    assert host.enter(["umount", host.mountpoint]).returncode == 0
    gone = host.run("monitor")
    assert (gone.outcome, gone.detail) == ("stopped", "not mounted")


def test_monitor_fails_when_the_probe_file_cannot_be_written(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device, probe="probe-dir")
    assert host.run("start").outcome == "ok"
    # A directory where the probe file goes: the write fails as on a broken file system.
    host.path("probe-dir").mkdir()
    failed = host.run("monitor")
    assert failed.outcome == "failed"
    assert failed.detail.startswith(f"probe file {host.mountpoint}/probe-dir: ")


def test_host_risks_of_a_real_device(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    fstab = vlab.workdir / "fstab"
    # Named through a link, as by-id names are: compared by device number.
    link = vlab.workdir / "by-id-link"
    link.symlink_to(device)
    fstab.write_text(f"{link} /elsewhere ext4 defaults 0 2\n")
    assert host.risks(fstab) == [
        ("device", f"{fstab} line 1 mounts {link} on /elsewhere at boot: add noauto to its "
                   "options or remove it, only the active node may mount it"),
    ]  # fmt: skip
    assert host.run("start").outcome == "ok"
    risks = host.risks(Path("/nonexistent"))
    assert risks == [
        ("device", f"{device} is mounted now on {host.mountpoint} on this machine: only the "
                   "active node may have it mounted"),
    ]  # fmt: skip


def test_stop_unmounts_what_is_mounted_below_it_first(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    assert host.run("start").outcome == "ok"
    below = os.path.join(host.mountpoint, "cache")
    host.path("cache").mkdir()
    assert host.enter(["mount", "-t", "tmpfs", "hvo-tmpfs", below]).returncode == 0
    stopped = host.run("stop")
    assert stopped.outcome == "ok", stopped.detail
    assert stopped.detail.startswith(f"unmounted {below}, {host.mountpoint} in ")
    mounted = Path(f"/proc/{host.pid}/mountinfo").read_text()
    assert host.mountpoint not in mounted


def test_a_mount_point_under_a_symbolic_link(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    real = vlab.workdir / "real"
    real.mkdir()
    (vlab.workdir / "link").symlink_to(real)
    host = vlab.host(device, mountpoint=str(vlab.workdir / "link" / "mnt"))
    assert host.run("start").outcome == "ok"
    # The mount table shows the resolved path; the adapter still knows it as its own.
    assert mount_points(host.pid, device) == [str(real / "mnt")]
    assert host.run("start").detail.startswith("already mounted")
    assert host.run("monitor").outcome == "ok"
    assert host.run("stop").outcome == "ok"
    assert mount_points(host.pid, device) == []


def test_a_probe_that_hangs_is_not_started_again(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device, monitor_timeout=0.5)
    assert host.run("start").outcome == "ok"
    # A FIFO where the probe file goes: opening it for writing blocks until a reader comes,
    # as a write to storage that stopped answering blocks.
    fifo = host.path(".hotstandby-probe")
    os.mkfifo(fifo)
    first = host.run("monitor")
    assert (first.outcome, first.detail) == ("failed", "timed out after 0.5s")
    second = host.run("monitor")
    assert second.outcome == "failed"
    assert "has not returned (I/O hangs)" in second.detail, second.detail
    assert second.took < 0.5  # it did not wait on a second stuck thread
    # The "storage" answers again: the stuck probe ends (in an error: a FIFO cannot be
    # fsynced), and with the FIFO gone the next probe works.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        host.run("probe")  # any round trip: gives the stuck thread time to finish
        fifo.unlink()
    finally:
        os.close(reader)

    def healthy() -> bool:
        return host.run("monitor").outcome == "ok"

    wait_for("the monitor to pass again", healthy)


def test_check_warns_of_the_volume_mounted_on_this_machine(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    assert host.run("start").outcome == "ok"
    example = (EXAMPLES / "classic-database.toml").read_text()
    old_device = 'device = "/dev/disk/by-id/wwn-0x600a0b800011aa02-part1"'
    assert old_device in example
    text = example.replace(old_device, f'device = "{device}"').replace(
        'mountpoint = "/srv/postgresql"', f'mountpoint = "{host.mountpoint}"'
    )
    config = vlab.workdir / "cluster.toml"
    config.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("device = "))
    argv = [sys.executable, "-m", "hotstandby", "check", str(config), "--node", "alpha"]
    done = host.enter(argv)
    assert done.returncode == 0, done.stdout + done.stderr
    flat = " ".join(done.stdout.split())
    assert (
        f"WARNING: {config}:{line}: resource[1].params.device: on alpha: resource 'data': "
        f"{device} is mounted now on {host.mountpoint} on this machine"
    ) in flat, done.stdout
    # Seen from this test's own mount namespace, where nothing has it mounted: no warning.
    outside = run(argv, check=False)
    assert "is mounted now" not in outside.stdout


def test_a_copy_of_the_mount_in_another_namespace_fails_the_stop(vlab: VolumeLab) -> None:
    device = vlab.volume().device("a")
    host = vlab.host(device)
    assert host.run("start").outcome == "ok"
    # A mount namespace copied from the node's while the volume is mounted, as a service
    # with private mounts gets: it holds its own mount of the file system.
    copy = subprocess.Popen(
        ["nsenter", "-t", str(host.pid), "-m", "--",
         "unshare", "--mount", "--propagation", "private", "--", "sleep", "600"],
    )  # fmt: skip
    try:
        wait_for(
            "the copied namespace",
            lambda: (
                os.readlink(f"/proc/{copy.pid}/ns/mnt") != os.readlink(f"/proc/{host.pid}/ns/mnt")
                and mount_points(copy.pid, device) == [host.mountpoint]
            ),
        )
        stopped = host.run("stop")
        assert stopped.outcome == "failed", stopped.detail
        assert stopped.detail.startswith(f"unmounted {host.mountpoint} in ")
        assert "still mounted in another mount namespace of this node" in stopped.detail
        assert f"{copy.pid} (sleep) on {host.mountpoint}" in stopped.detail
        assert mount_points(host.pid, device) == []
    finally:
        copy.kill()
        copy.wait(10)
    # With that namespace gone, nothing holds it any more: the stop succeeds.
    again = host.run("stop")
    assert (again.outcome, again.detail) == ("ok", "not mounted")
