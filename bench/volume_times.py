"""How long the volume resource's start and stop take, on a loop device with ext4.

    sudo python bench/volume_times.py              # 10 repetitions, a 64 MiB volume
    sudo python bench/volume_times.py --reps 20 --size-mib 512

Runs the adapter in this process, in a private mount namespace of its own (it re-executes
itself under `unshare --mount --propagation private`), so nothing it mounts is seen outside.
Each repetition formats a fresh volume and measures, as the adapter reports them:

- start, clean: fsck (the superblock says clean) then mount;
- stop, idle: unmount with nothing holding the volume;
- start, unclean: the image copied from under a mounted file system (what a power loss
  leaves: the journal to replay), fsck replays it, then mount;
- start, forced check: the superblock marked not clean, fsck checks the whole file system;
- stop, holder leaves on SIGTERM: one process with its working directory and a file there;
- stop, holder ignores SIGTERM: SIGKILL after kill_grace (200 ms here).

Prints p50 / p95 / max in milliseconds for each, and the fsck and mount parts of the starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hotstandby.agent.resources.volume import VolumeResource, parse_params
from hotstandby.core.messages import Action, Outcome
from hotstandby.lab._cmd import run
from hotstandby.lab.volume import shared_volume

MARK = "HOTSTANDBY_VOLUME_BENCH_UNSHARED"
HOLDER = """
import os, signal, sys
if sys.argv[1] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.chdir(sys.argv[2])
f = open("held", "a")
print("ready", flush=True)
signal.pause()
"""
_PARTS = re.compile(r"in (\d+) ms \(mount (\d+) ms(?:, fsck (\d+) ms)?")


def _adapter(device: str, mountpoint: str) -> VolumeResource:
    raw = {"device": device, "mountpoint": mountpoint, "fstype": "ext4", "kill_grace": "200ms"}
    return VolumeResource("data", parse_params("data", raw, "bench", 10.0), stop_timeout=10.0)


async def _timed(adapter: VolumeResource, action: Action) -> tuple[float, str]:
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await adapter.run(action)
    took = (loop.time() - began) * 1000
    if result.outcome is not Outcome.OK:
        raise RuntimeError(f"{action.value} failed: {result.detail}")
    return took, result.detail


def _holder(mountpoint: str, ignore: bool) -> subprocess.Popen[bytes]:
    mode = "ignore" if ignore else "leave"
    argv = [sys.executable, "-c", HOLDER, mode, mountpoint]
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert popen.stdout is not None
    if popen.stdout.readline().strip() != b"ready":
        raise RuntimeError("holder did not start")
    return popen


async def one_rep(work: Path, size: int, figures: dict[str, list[float]]) -> None:
    """One repetition of every measurement, on fresh volumes in work."""
    mountpoint = str(work / "mnt")
    volume = shared_volume(work, ["bench"], name="bench", size=size)
    copies: list[str] = []
    try:
        device = volume.device("bench")
        adapter = _adapter(device, mountpoint)

        def record(name: str, took: float, detail: str = "") -> None:
            figures.setdefault(name, []).append(took)
            parts = _PARTS.search(detail)
            if parts and parts.group(3):
                figures.setdefault(f"{name}: fsck", []).append(float(parts.group(3)))
                figures.setdefault(f"{name}: mount", []).append(float(parts.group(2)))

        record("start, clean", *await _timed(adapter, Action.START))
        with open(os.path.join(mountpoint, "data"), "wb") as f:
            f.write(os.urandom(1 << 20))
            f.flush()
            os.fsync(f.fileno())
        # What a power loss leaves: the image as it is on the disk under a mounted fs.
        crash = work / "crash.img"
        shutil.copyfile(volume.backing, crash)
        record("stop, idle", (await _timed(adapter, Action.STOP))[0])

        copies.append(run(["losetup", "--find", "--show", str(crash)]).stdout.strip())
        crashed = _adapter(copies[-1], mountpoint)
        record("start, unclean (journal replay)", *await _timed(crashed, Action.START))
        await _timed(crashed, Action.STOP)

        run(["debugfs", "-w", "-R", "ssv state 0", device])
        record("start, forced full check", *await _timed(adapter, Action.START))

        for name, ignore in (("stop, holder leaves on TERM", False),
                             ("stop, holder ignores TERM", True)):  # fmt: skip
            holder = _holder(mountpoint, ignore)
            record(name, (await _timed(adapter, Action.STOP))[0])
            holder.wait(5)
            assert holder.stdout is not None
            holder.stdout.close()
            await _timed(adapter, Action.START)
        await _timed(adapter, Action.STOP)
    finally:
        for dev in copies:
            run(["losetup", "--detach", dev], check=False)
        volume.detach()
        (work / "crash.img").unlink(missing_ok=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    """Parse options, re-execute in a private mount namespace, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--size-mib", type=int, default=64)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("volume_times: needs root (loop devices, mount)")
    if os.environ.get(MARK) != "1":
        argv = ["unshare", "--mount", "--propagation", "private", "--",
                sys.executable, *sys.argv]  # fmt: skip
        os.execvpe("unshare", argv, {**os.environ, MARK: "1"})
    figures: dict[str, list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="hsvolbench-"))
    try:
        for rep in range(args.reps):
            print(f"repetition {rep + 1}/{args.reps}", file=sys.stderr)
            asyncio.run(one_rep(work, args.size_mib << 20, figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"volume start/stop, ext4 on a loop device, {args.size_mib} MiB, {args.reps} reps (ms)")
    print(f"{'':44} {'p50':>8} {'p95':>8} {'max':>8}")
    for name, values in figures.items():
        p50, p95 = _pct(values, 50), _pct(values, 95)
        print(f"{name:44} {p50:8.1f} {p95:8.1f} {max(values):8.1f}")


if __name__ == "__main__":
    main()
