"""The shared volume: a block device on shared storage, mounted on the active node only.

Parameters of a `volume` resource ([resource.params] in the cluster file):

- `device`: the block device's absolute path ("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), or
  a table of node name to path when the nodes see the shared device under different names.
  Required. Compared by device number, never by name: a by-id link and /dev/sdb are the same.
- `mountpoint`: the absolute directory to mount it on ("/srv/data"); not "/", written without
  "." or ".." parts or a trailing slash. Created (mode 0755) when it does not exist. Required.
- `fstype`: the file system type given to mount and fsck ("ext4", "xfs"). Required: a probed
  type would let a damaged or reformatted device mount as something else.
- `options`: mount options, a list (["noatime", "data=ordered"]) or one comma-separated string;
  default none. "ro" is refused (the monitor writes a probe file), and so are the mount
  operations that are not mounting a device (remount, bind, rbind, move).
- `fsck`: run the file system's check (`fsck -p`) before mounting; default true. It is run on
  every start: on a clean file system it reads the superblock and exits within milliseconds
  (about 15 ms for ext4 here), and each checker knows best what "not cleanly unmounted" means
  for its own type (ext4 replays its journal, xfs's check is a no-op and the mount replays).
  A full check of a large damaged volume can take minutes: the resource's start_timeout bounds
  it, and a check that runs out of time is cancelled (SIGTERM, then SIGKILL, to its process
  group) and the start fails.
- `kill_grace`: on stop, the time between SIGTERM and SIGKILL for the processes that hold the
  volume: a duration ("2s", the default) or a number of seconds. Twice it must fit in the
  resource's stop_timeout (a wait after SIGTERM, then one after SIGKILL).
- `probe`: the name of the probe file the monitor writes at the top of the volume; default
  ".hotstandby-probe". A plain file name, no slash.

Actions:

- start: the device must be present and a block device. OK at once when it is already mounted
  on the mountpoint. Refused (FAILED) when the device is mounted elsewhere on this node or
  another file system is mounted on the mountpoint. Then fsck (a step the operator sees, with
  its exit code: 0 clean, 1 errors corrected; 2, asking for a reboot, only happens for a file
  system in use, and 4 and above are errors left or a checker that could not run: FAILED),
  then mount(8) with the type and options, then a look that the mount is there.
- stop: unmounts every mount of the device on this node (and first whatever is mounted below
  the mountpoint, which would keep it busy). When processes hold it (open files, working or
  root directory, mapped files, found by scanning /proc for that device number), they get
  SIGTERM, then after kill_grace SIGKILL, each a step in the event history, and the unmount
  is tried again. Never a lazy unmount (umount -l): it would report success while the
  processes still write to the file system the peer is about to mount. The agent itself and
  its ancestors are never signalled. When the volume is still busy shortly before the
  stop_timeout, the stop FAILS, naming who holds it; the core then has the node fenced before
  the peer may take the volume. Last, every mount namespace of the machine is looked at: one
  that still mounts the device (a copy made while it was mounted, by a service with private
  mounts or `unshare -m`) keeps the file system in use, and the stop FAILS naming it.
- monitor: OK when the device is mounted on the mountpoint read-write and a probe file can be
  written, fsynced, read back and removed. STOPPED when nothing is mounted there; FAILED when
  something else is, when the file system is read-only (ext4 turns read-only on an I/O error
  with errors=remount-ro) or the probe fails. The probe runs in a worker thread: a probe stuck
  on a dead disk is not started again while the last one has not returned; the monitor fails.
- probe: OK when the device is mounted on the mountpoint, STOPPED when it is not mounted on
  this node at all, FAILED when it is mounted elsewhere or something else is mounted there.

The agent sees mounts of its own mount namespace (/proc/self/mountinfo): run it in the host's.
Processes in other mount namespaces that hold the file system are found and stopped too (the
scan compares device numbers, which do not depend on the namespace).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import signal
import stat
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.agent.ports import ActionResult, StepReport, ignore_steps
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.core.messages import Action, Outcome

KEYS = frozenset({"device", "mountpoint", "fstype", "options", "fsck", "kill_grace", "probe"})
DEFAULT_PROBE = ".hotstandby-probe"
DEFAULT_KILL_GRACE = 2.0
MAX_KILL_GRACE = 300.0
# Options that are not "mount this device here"; ro would make every monitor fail.
REFUSED_OPTIONS = frozenset({"ro", "remount", "bind", "rbind", "move"})
_FSTYPE_RE = re.compile(r"[a-z0-9][a-z0-9._+-]{0,31}\Z")
_OPTION_RE = re.compile(r"[^\s,\0]+\Z")
NAME_MAX = 255

# Programs live in sbin; the agent may have been started with a user's PATH.
PROGRAM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# How often a stop looks again at processes it signalled, and retries a busy unmount.
POLL = 0.02
# What a stop keeps back from its stop_timeout, to return FAILED with the holders named
# rather than be cut off by the agent's own timeout.
STOP_MARGIN = 0.5
# Bound on a child process's exit after SIGTERM to its group, before SIGKILL.
CHILD_TERM_WAIT = 2.0

FSCK_MEANING = {
    0: "clean",
    1: "errors corrected",
    2: "errors corrected, reboot asked for",
}


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VolumeParams:
    """A volume resource's validated parameters, for one node."""

    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...] = ()
    fsck: bool = True
    kill_grace: float = DEFAULT_KILL_GRACE
    probe: str = DEFAULT_PROBE


class _Params(ParamReader):
    """Reads one volume resource's raw params; every error names the resource and the key."""

    def __init__(self, resource: str, raw: Mapping[str, Any]) -> None:
        super().__init__(resource, "volume", raw, KEYS)

    def device(self, node: str) -> str:
        value = self.per_node("device", node)
        key = "device" if not isinstance(self.raw.get("device"), Mapping) else f"device.{node}"
        expected = 'an absolute device path ("/dev/disk/by-id/..."), or a table of node to path'
        if value is None:
            raise self.missing("device", expected)
        if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
            raise self.error(key, expected, value)
        return value

    def mountpoint(self) -> str:
        value = self.absolute_path("mountpoint")
        if value == "/" or os.path.normpath(value) != value or value.startswith("//"):
            raise ParamError(
                self.resource,
                "mountpoint",
                f'expected a directory other than "/", written without "." or ".." parts or '
                f"a trailing slash, found {value!r}",
            )
        return value

    def fstype(self) -> str:
        value = self.raw.get("fstype")
        expected = 'a file system type ("ext4", "xfs")'
        if value is None:
            raise self.missing("fstype", expected)
        if not isinstance(value, str) or not _FSTYPE_RE.match(value) or value in ("auto", "none"):
            raise self.error("fstype", expected + ", not auto", value)
        return value

    def options(self) -> tuple[str, ...]:
        value = self.raw.get("options")
        expected = 'mount options, a list of strings or one string ("noatime,data=ordered")'
        if value is None:
            return ()
        if isinstance(value, str):
            items: list[object] = list(value.split(","))
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise self.error("options", expected, value)
        out: list[str] = []
        for i, item in enumerate(items):
            key = "options" if isinstance(value, str) else f"options[{i}]"
            if not isinstance(item, str) or not _OPTION_RE.match(item):
                raise self.error(key, "a mount option without spaces or commas", item)
            if item in REFUSED_OPTIONS:
                why = (
                    "the monitor writes a probe file, so the volume must be read-write"
                    if item == "ro"
                    else "a volume resource mounts its device, nothing else"
                )
                raise ParamError(self.resource, "options", f"{item!r} is not allowed: {why}")
            out.append(item)
        return tuple(out)

    def probe(self) -> str:
        value = self.string("probe", DEFAULT_PROBE)
        if "/" in value or value in (".", "..") or "\0" in value or len(value.encode()) > NAME_MAX:
            raise self.error("probe", "a plain file name (no slash)", value)
        return value


def parse_params(
    resource: str, raw: Mapping[str, Any], node: str, stop_timeout: float | None = None
) -> VolumeParams:
    """The validated parameters of volume `resource` on `node` (ParamError otherwise)."""
    p = _Params(resource, raw)
    kill_grace = p.seconds("kill_grace", DEFAULT_KILL_GRACE, MAX_KILL_GRACE)
    if stop_timeout is not None and 2 * kill_grace + STOP_MARGIN > stop_timeout:
        raise ParamError(
            resource,
            "kill_grace",
            f"{kill_grace:g}s is too long for the stop_timeout of {stop_timeout:g}s: a stop "
            f"waits kill_grace after SIGTERM and again after SIGKILL, so stop_timeout must be "
            f"at least {2 * kill_grace + STOP_MARGIN:g}s",
        )
    return VolumeParams(
        device=p.device(node),
        mountpoint=p.mountpoint(),
        fstype=p.fstype(),
        options=p.options(),
        fsck=p.boolean("fsck", True),
        kill_grace=kill_grace,
        probe=p.probe(),
    )


# ---- the mount table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """One line of /proc/PID/mountinfo."""

    mount_id: int
    dev: int  # the file system's device number (st_dev of its files)
    point: str
    options: frozenset[str]  # this mount's options
    fstype: str
    source: str
    super_options: frozenset[str]  # the file system's options (ro after errors=remount-ro)

    @property
    def read_only(self) -> bool:
        """Whether writes through this mount fail: the mount or the file system is read-only."""
        return "ro" in self.options or "ro" in self.super_options


def _unescape(text: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo file's text, in its order (a mount after those below it)."""
    mounts: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        major, minor = fields[2].split(":")
        tail = fields[dash + 1 :]
        mounts.append(
            Mount(
                mount_id=int(fields[0]),
                dev=os.makedev(int(major), int(minor)),
                point=_unescape(fields[4]),
                options=frozenset(fields[5].split(",")),
                fstype=tail[0],
                source=_unescape(tail[1]) if len(tail) > 1 else "",
                super_options=frozenset(tail[2].split(",")) if len(tail) > 2 else frozenset(),
            )
        )
    return mounts


def read_mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """The mounts this process sees."""
    with open(path) as f:
        return parse_mountinfo(f.read())


def top_mount(mounts: Sequence[Mount], point: str) -> Mount | None:
    """The mount visible at `point` (the last one mounted there), if any."""
    found = [m for m in mounts if m.point == point]
    return found[-1] if found else None


def resolved_point(mountpoint: str) -> str:
    """The mount point as the mount table shows it: its parent's symbolic links resolved.

    Only the parent is resolved: a stat of the mount point itself would reach into the
    mounted file system, and hang with it when its storage hangs.
    """
    parent, name = os.path.split(mountpoint)
    return os.path.join(os.path.realpath(parent), name)


def device_number(path: str) -> int | None:
    """The device number of block device `path`; None when absent or not a block device."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


# ---- who holds a file system -----------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """A process using files of the file system, and how."""

    pid: int
    start_time: int  # in clock ticks since boot: tells the process from a reused pid
    command: str
    uses: tuple[str, ...]  # "cwd", "root", "exe", "fd 3", "mapped"

    def __str__(self) -> str:
        return f"{self.pid} ({self.command}: {', '.join(self.uses)})"


def _stat_fields(proc: Path, pid: int) -> tuple[str, str, int, int] | None:
    """(command, state, parent pid, start time) of pid, None when it is gone."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command may hold spaces and parentheses; the fields resume after the last ')'.
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    return head.partition("(")[2], fields[0], int(fields[1]), int(fields[19])


def lineage(pid: int | None = None, proc: Path = Path("/proc")) -> set[int]:
    """pid (this process by default) and its ancestors: never to be signalled by a stop."""
    found: set[int] = set()
    current = os.getpid() if pid is None else pid
    while current > 0 and current not in found:
        found.add(current)
        fields = _stat_fields(proc, current)
        if fields is None:
            break
        current = fields[2]
    return found


def _same_dev(path: Path, dev: int) -> bool:
    try:
        return os.stat(path).st_dev == dev
    except OSError:
        return False


def _maps_dev(path: Path, major: int, minor: int) -> bool:
    # Each line: address perms offset dev(major:minor in hex) inode path.
    try:
        text = path.read_text()
    except OSError:
        return False
    wanted = f"{major:02x}:{minor:02x}"
    for line in text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) >= 5 and fields[4] != "0" and fields[3] == wanted:
            return True
    return False


def find_holders(dev: int, proc: Path = Path("/proc")) -> list[Holder]:
    """Every process with a file of device `dev` open, as cwd, root, executable or mapping."""
    holders: list[Holder] = []
    major, minor = os.major(dev), os.minor(dev)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        fields = _stat_fields(proc, pid)
        # A zombie has closed every file already; only its exit status is left.
        if fields is None or fields[1] in ("Z", "X"):
            continue
        uses = [name for name in ("cwd", "root", "exe") if _same_dev(entry / name, dev)]
        with contextlib.suppress(OSError):
            fds = sorted(os.listdir(entry / "fd"), key=lambda n: int(n) if n.isdigit() else -1)
            uses += [f"fd {fd}" for fd in fds if _same_dev(entry / "fd" / fd, dev)]
        if _maps_dev(entry / "maps", major, minor):
            uses.append("mapped")
        if uses:
            holders.append(Holder(pid, fields[3], fields[0], tuple(uses)))
    return sorted(holders, key=lambda h: h.pid)


def mounted_elsewhere(devs: Collection[int], proc: Path = Path("/proc")) -> list[str]:
    """Mount namespaces of this machine that still mount one of devs, as "pid (command) on path".

    A namespace made as a copy while the volume was mounted (a service's private mounts, an
    `unshare -m`) keeps its own mount of it: unmounting ours succeeds, yet the file system
    stays in use and writable here, and the peer must not mount it.
    """
    seen: set[str] = set()
    found: list[str] = []
    pids = sorted(int(e.name) for e in proc.iterdir() if e.name.isdigit())
    for entry in (proc / str(pid) for pid in pids):
        try:
            namespace = os.readlink(entry / "ns" / "mnt")
            if namespace in seen:
                continue
            seen.add(namespace)
            mounts = read_mounts(str(entry / "mountinfo"))
        except (OSError, ValueError):
            continue  # gone meanwhile, or a zombie
        points = [m.point for m in mounts if m.dev in devs]
        if points:
            fields = _stat_fields(proc, int(entry.name))
            command = fields[0] if fields is not None else "?"
            found.append(f"{entry.name} ({command}) on {', '.join(points)}")
    return found


def _signal(holder: Holder, sig: signal.Signals, proc: Path = Path("/proc")) -> bool:
    """Send sig to the holder if it is still the same process; False when it is gone."""
    try:
        fd = os.pidfd_open(holder.pid)
    except OSError:
        return False
    try:
        # Checked after the pidfd is open: from then on the pid cannot be reused under us.
        fields = _stat_fields(proc, holder.pid)
        if fields is None or fields[3] != holder.start_time:
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


# ---- system calls and programs ---------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def umount(point: str) -> int:
    """umount2(point, 0): 0 on success, else the errno (EBUSY when in use)."""
    if _libc.umount2(os.fsencode(point), 0) == 0:
        return 0
    return ctypes.get_errno()


async def run_program(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run a program (no shell) to completion within timeout: (exit code, its output).

    On timeout or cancellation its whole process group gets SIGTERM, then SIGKILL: fsck
    starts the type's own checker as a child, which must not outlive the action.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": PROGRAM_PATH, "LC_ALL": "C"},
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except BaseException:
        await _end_group(proc)
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace").strip()


async def _end_group(proc: asyncio.subprocess.Process) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        # Shielded: this runs while the action is being cancelled, and must still reap.
        waiter = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.shield(asyncio.wait([waiter], timeout=CHILD_TERM_WAIT))
        if done:
            return


def _probe_file(path: str, payload: bytes) -> None:
    """Write, fsync, read back and remove the probe file; OSError when any step fails."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        back = f.read()
    os.unlink(path)
    if back != payload:
        raise OSError(errno.EIO, f"read back {len(back)} bytes unlike the {len(payload)} written")


def _short(text: str, limit: int = 300) -> str:
    flat = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ---- the adapter -----------------------------------------------------------------------------


class VolumeResource:
    """A ResourceAdapter for one file system on a shared block device."""

    def __init__(
        self,
        name: str,
        params: VolumeParams,
        report: StepReport = ignore_steps,
        *,
        start_timeout: float = 20.0,
        stop_timeout: float = 20.0,
        mountinfo: str = "/proc/self/mountinfo",
    ) -> None:
        self.name = name
        self.params = params
        self.report = report
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.mountinfo = mountinfo
        # Start and stop must not interleave: a stop between a start's fsck and its mount
        # would leave the volume mounted after the stop returned.
        self._lock = asyncio.Lock()
        self._probe: asyncio.Future[None] | None = None
        self._point = params.mountpoint  # as the mount table shows it; see resolved_point
        self._probe_began = 0.0

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe.

        `released` (the peer confirmed it holds nothing) changes nothing here: the checks
        of a start are of this node's own state, and fsck costs milliseconds on a volume
        its peer unmounted cleanly, while it is what a volume left by a crash needs.
        """
        try:
            if action is Action.START:
                async with self._lock:
                    return await self._start()
            if action is Action.STOP:
                async with self._lock:
                    return await self._stop()
            if action is Action.MONITOR:
                return await self._monitor()
            return await self._probe_state()
        except OSError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: {err}")

    def _step(self, message: str) -> None:
        self.report(self.name, message)

    async def _mounts(self) -> list[Mount]:
        def look() -> list[Mount]:
            self._point = resolved_point(self.params.mountpoint)
            return read_mounts(self.mountinfo)

        return await asyncio.to_thread(look)

    # ---- start

    async def _start(self) -> ActionResult:
        p = self.params
        began = time.monotonic()
        dev = device_number(p.device)
        if dev is None:
            present = os.path.exists(p.device)
            return ActionResult(
                Outcome.FAILED,
                f"{p.device} is not a block device" if present else f"no device {p.device}",
            )
        mounts = await self._mounts()
        here = top_mount(mounts, self._point)
        if here is not None and here.dev == dev:
            if here.read_only:
                return ActionResult(Outcome.FAILED, f"mounted on {p.mountpoint}, but read-only")
            return ActionResult(Outcome.OK, f"already mounted on {p.mountpoint}")
        elsewhere = [m.point for m in mounts if m.dev == dev]
        if elsewhere:
            return ActionResult(
                Outcome.FAILED,
                f"{p.device} is already mounted on {', '.join(elsewhere)}: not mounting it twice",
            )
        if here is not None:
            return ActionResult(
                Outcome.FAILED, f"{p.mountpoint} already has {here.source} ({here.fstype}) on it"
            )
        fsck_note = ""
        if p.fsck:
            failed, fsck_note = await self._fsck(began)
            if failed is not None:
                return failed
        if not os.path.isdir(p.mountpoint):
            os.makedirs(p.mountpoint, mode=0o755, exist_ok=True)
            self._step(f"start: created the mount point {p.mountpoint}")
        mount_began = time.monotonic()
        argv = ["mount", "-t", p.fstype]
        if p.options:
            argv += ["-o", ",".join(p.options)]
        code, out = await run_program([*argv, p.device, p.mountpoint], self._left(began))
        mount_took = time.monotonic() - mount_began
        if code != 0:
            return ActionResult(Outcome.FAILED, f"mount exited {code}: {_short(out)}")
        here = top_mount(await self._mounts(), self._point)
        if here is None or here.dev != dev:
            return ActionResult(Outcome.FAILED, f"mount succeeded but {p.mountpoint} lacks it")
        took = time.monotonic() - began
        return ActionResult(
            Outcome.OK,
            f"mounted {p.device} on {p.mountpoint} in {took * 1000:.0f} ms "
            f"(mount {mount_took * 1000:.0f} ms{fsck_note})",
        )

    def _left(self, began: float) -> float:
        return max(0.1, self.start_timeout - (time.monotonic() - began))

    async def _fsck(self, began: float) -> tuple[ActionResult | None, str]:
        """Check the file system: (a FAILED result or None, a note for the start's detail)."""
        p = self.params
        fsck_began = time.monotonic()
        code, out = await run_program(
            ["fsck", "-T", "-t", p.fstype, "-p", p.device], self._left(began)
        )
        took = time.monotonic() - fsck_began
        meaning = FSCK_MEANING.get(code, "errors left uncorrected or the check could not run")
        self._step(
            f"start: fsck -p {p.device}: exit {code} ({meaning}) in {took * 1000:.0f} ms"
            + (f": {_short(out)}" if out else "")
        )
        if code in (0, 1):
            return None, f", fsck {took * 1000:.0f} ms: {meaning}"
        # 2 is "reboot": the checker changed a file system that is mounted, here or by a
        # node that should not have it. 4 and above: damage -p would not repair, or no check.
        return (
            ActionResult(
                Outcome.FAILED,
                f"fsck -p {p.device} exited {code} ({meaning}): {_short(out)}; "
                f"check it by hand before mounting",
            ),
            "",
        )

    # ---- stop

    async def _stop(self) -> ActionResult:
        p = self.params
        began = time.monotonic()
        deadline = began + max(0.1, self.stop_timeout - STOP_MARGIN)
        dev = device_number(p.device)
        mounts = await self._mounts()
        targets = [
            m
            for m in mounts
            if (dev is not None and m.dev == dev)
            # The device node may be gone (storage lost): what is mounted from it still is.
            or (m.point == self._point and m.source == p.device)
        ]
        # Ours by number; by name when the device node is gone.
        devs = {dev} if dev is not None else set()
        devs |= {m.dev for m in targets if m.point == self._point and m.source == p.device}
        if not targets:
            return await self._released(devs, "not mounted")
        if any(m.point == self._point for m in targets):
            # Mounts below ours keep it busy: they go first (last mounted, first unmounted).
            below = self._point + "/"
            targets = [m for m in mounts if m in targets or m.point.startswith(below)]
        done: list[str] = []
        # Last mounted first: a mount below the mountpoint keeps the one above it busy.
        for m in reversed(targets):
            failure = await self._unmount(m, deadline)
            if failure is not None:
                return ActionResult(Outcome.FAILED, failure)
            done.append(m.point)
        took = time.monotonic() - began
        return await self._released(devs, f"unmounted {', '.join(done)} in {took * 1000:.0f} ms")

    async def _released(self, devs: Collection[int], detail: str) -> ActionResult:
        """OK with detail, unless another mount namespace here still mounts the volume."""
        left = await asyncio.to_thread(mounted_elsewhere, devs) if devs else []
        if left:
            return ActionResult(
                Outcome.FAILED,
                f"{detail}, but {self.params.device} is still mounted in another mount "
                f"namespace of this node: {'; '.join(left)}; it stays in use here, so it is "
                "not released",
            )
        return ActionResult(Outcome.OK, detail)

    async def _unmount(self, mount: Mount, deadline: float) -> str | None:
        """Unmount one mount, stopping what holds it; None when done, else why not."""
        point = mount.point
        code = await asyncio.to_thread(umount, point)
        if code in (0, errno.EINVAL, errno.ENOENT):  # EINVAL: no longer a mount point
            return None
        if code != errno.EBUSY:
            return f"cannot unmount {point}: {os.strerror(code)}"
        protected = lineage()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            holders = await asyncio.to_thread(find_holders, mount.dev)
            kept = [h for h in holders if h.pid in protected]
            targets = [h for h in holders if h.pid not in protected]
            note = f"stop: {point} is busy: " + (
                f"{len(holders)} process{'es' if len(holders) > 1 else ''} hold"
                f"{'' if len(holders) > 1 else 's'} it"
                if holders
                else "no process holds it (a mount below it, or in another namespace?)"
            )
            if targets:
                signalled = [h for h in targets if _signal(h, sig)]
                note += f"; sent {sig.name} to " + ", ".join(map(str, signalled))
            if kept:
                note += "; not signalled, the agent itself or its parent: " + ", ".join(
                    map(str, kept)
                )
            self._step(note)
            wait_until = min(deadline, time.monotonic() + self.params.kill_grace)
            if sig is signal.SIGKILL:
                wait_until = deadline
            code = await self._retry_unmount(point, [h.pid for h in targets], wait_until)
            if code in (0, errno.EINVAL, errno.ENOENT):
                self._step(f"stop: unmounted {point} after {sig.name}")
                return None
            if code != errno.EBUSY:
                return f"cannot unmount {point}: {os.strerror(code)}"
        left = await asyncio.to_thread(find_holders, mount.dev)
        return (
            f"{point} still busy at the stop's deadline; held by "
            + (", ".join(map(str, left)) if left else "no process (a mount in another namespace?)")
            + ": not unmounted lazily; the node must be fenced"
        )

    async def _retry_unmount(self, point: str, pids: Collection[int], until: float) -> int:
        """Once the signalled pids are gone, try to unmount until `until`; the last errno."""
        code = errno.EBUSY
        while True:
            if all(_gone(pid) for pid in pids):
                code = await asyncio.to_thread(umount, point)
                if code != errno.EBUSY:
                    return code
            if time.monotonic() >= until:
                return code
            await asyncio.sleep(POLL)

    # ---- monitor and probe

    async def _probe_state(self) -> ActionResult:
        p = self.params
        dev = device_number(p.device)
        mounts = await self._mounts()
        here = top_mount(mounts, self._point)
        if here is not None and (here.dev == dev or (dev is None and here.source == p.device)):
            return ActionResult(Outcome.OK, f"mounted on {p.mountpoint}")
        elsewhere = [m.point for m in mounts if dev is not None and m.dev == dev]
        if elsewhere:
            return ActionResult(Outcome.FAILED, f"mounted on {', '.join(elsewhere)} instead")
        if here is not None:
            return ActionResult(
                Outcome.FAILED, f"{p.mountpoint} has {here.source} ({here.fstype}) on it"
            )
        return ActionResult(Outcome.STOPPED, "not mounted")

    async def _monitor(self) -> ActionResult:
        state = await self._probe_state()
        if state.outcome is not Outcome.OK:
            return state
        p = self.params
        here = top_mount(await self._mounts(), self._point)
        if here is not None and here.read_only:
            return ActionResult(Outcome.FAILED, f"{p.mountpoint} is read-only")
        loop = asyncio.get_running_loop()
        if self._probe is not None and not self._probe.done():
            stuck = loop.time() - self._probe_began
            return ActionResult(
                Outcome.FAILED, f"the probe started {stuck:.1f}s ago has not returned (I/O hangs)"
            )
        path = os.path.join(p.mountpoint, p.probe)
        payload = f"hotstandby probe {os.getpid()} {time.time_ns()}\n".encode()
        self._probe_began = loop.time()
        self._probe = loop.run_in_executor(None, _probe_file, path, payload)
        # A probe abandoned by a timed-out monitor may end in an error nobody awaits.
        self._probe.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            # Shielded: a monitor cut off by its timeout leaves the thread running, and the
            # next monitor must see that rather than start another one.
            await asyncio.shield(self._probe)
        except OSError as err:
            return ActionResult(Outcome.FAILED, f"probe file {path}: {err.strerror or err}")
        took = loop.time() - self._probe_began
        return ActionResult(Outcome.OK, f"mounted read-write, probe {took * 1000:.0f} ms")


def _gone(pid: int) -> bool:
    fields = _stat_fields(Path("/proc"), pid)
    return fields is None or fields[1] in ("Z", "X")


# ---- this machine's risks --------------------------------------------------------------------

_TAG_DIRS = {
    "UUID": "/dev/disk/by-uuid",
    "LABEL": "/dev/disk/by-label",
    "PARTUUID": "/dev/disk/by-partuuid",
    "PARTLABEL": "/dev/disk/by-partlabel",
}


def _fstab_device(spec: str) -> str:
    tag, sep, value = spec.partition("=")
    if sep and tag in _TAG_DIRS:
        return os.path.join(_TAG_DIRS[tag], _unescape(value))
    return _unescape(spec)


def find_host_risks(
    params: VolumeParams,
    fstab: str = "/etc/fstab",
    mountinfo: str = "/proc/self/mountinfo",
) -> list[tuple[str | None, str]]:
    """The fstab lines that mount the volume at boot, and where it is mounted right now."""
    risks: list[tuple[str | None, str]] = []
    dev = device_number(params.device)
    try:
        lines = Path(fstab).read_text().splitlines()
    except OSError:
        lines = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith("#"):
            continue
        options = fields[3].split(",") if len(fields) > 3 else []
        if "noauto" in options:
            continue
        device = _fstab_device(fields[0])
        same_device = device == params.device or (dev is not None and device_number(device) == dev)
        if same_device or _unescape(fields[1]) == params.mountpoint:
            risks.append(
                (
                    "device" if same_device else "mountpoint",
                    f"{fstab} line {number} mounts {fields[0]} on {fields[1]} at boot: add "
                    f"noauto to its options or remove it, only the active node may mount it",
                )
            )
    try:
        mounts = read_mounts(mountinfo)
    except OSError:
        mounts = []
    for m in mounts:
        if dev is not None and m.dev == dev:
            risks.append(
                (
                    "device",
                    f"{params.device} is mounted now on {m.point} on this machine: only the "
                    f"active node may have it mounted",
                )
            )
    return risks
