"""A service: a process the cluster starts, stops and monitors, as a systemd unit or by commands.

Parameters of a `service` resource ([resource.params] in the cluster file). Give either
`unit` (unit mode) or `start` (command mode), not both.

Unit mode:

- `unit`: the systemd unit ("postgresql@15-main.service"). Only the cluster may start it:
  `check` warns when it is enabled to start at boot (`systemctl is-enabled`). Used only where
  systemd runs the machine (/run/systemd/system exists); elsewhere every action fails and
  says so. No other key goes with `unit`.

Command mode (every command an array of strings: the program as an absolute path, then its
arguments; run without a shell, in a session of its own, with a clean environment):

- `start`: the command that starts the service. Required.
- `daemon`: false (the default): the start command *is* the service, a process that stays in
  the foreground and that the agent supervises: its death shows in the next monitor, stop
  ends it by its process group, and it dies with the agent (PR_SET_PDEATHSIG, through
  util-linux's setpriv), so an agent restart never leaves an unmanaged copy running (the
  death signal reaches the process itself: one that forks workers should end them when it
  dies, as servers do; a stop ends the whole group in any case).
  true: the start command starts a daemon and returns (an init script, `pg_ctl start`); then
  `stop` and `monitor` are required, since only they can find the daemon.
- `stop`: the command that stops it. Foreground: optional; without it stop sends SIGTERM to
  the process group; either way, what is left after `stop_grace` gets SIGKILL.
- `monitor`: the command that checks it: exit status 0 is running, `not_running_code` is
  not running, any other status (or a kill by a signal) is failed. Foreground: optional;
  without it the process being alive is the check.
- `not_running_code`: the monitor's "not running" exit status, 0 to 255; default 3 (what an
  LSB init script's `status` returns; an OCF-style check would use 7).
- `stop_grace`: how long a foreground process has to exit after SIGTERM (or after the stop
  command) before it is killed: a duration or a number of seconds; default "5s"; must be
  shorter than the resource's stop_timeout.
- `settle`: foreground without a monitor command: how long the process must stay up for
  start to call it started; default "500ms".
- `env`: a table of extra environment variables. The commands get a clean environment:
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, LANG=C.UTF-8,
  HOTSTANDBY_RESOURCE (the resource's name), HOTSTANDBY_NODE, then these.
- `user`: run every command as this user (with its primary and supplementary groups);
  default: as the agent (root).
- `cwd`: the working directory, an absolute path; default "/".
- `log`: a file the commands' and the foreground process's output is appended to; default
  none (a daemon's output then goes to an unlinked temporary file: a daemon that keeps
  writing to its inherited stdout should be given a `log`, or redirect its own output).

In `env` values and in `log`, "{node}" becomes the node's name.

Actions, command mode:

- start: OK at once when it already runs (the foreground process is alive and its monitor
  passes; a daemon's monitor passes). Otherwise runs the start command (a daemon's must
  exit 0), then waits until it is ready: until the monitor command passes, polling every
  100 ms, or (foreground without one) until the process has stayed up for `settle`. A
  foreground process that exits meanwhile fails the start, with its exit status. The
  configured start_timeout bounds all of it; a start cut short by it kills what it started.
- stop: foreground: the stop command (or SIGTERM to the group), `stop_grace`, SIGKILL to
  what is left of the group. Daemon: the stop command must exit 0, then the monitor command
  must no longer find it running.
- monitor, probe: foreground: STOPPED when the process has exited (the detail says how), or
  when this agent started none and the monitor command (if any) does not find it running;
  FAILED when the monitor command fails or finds it running without a process of this
  agent (someone started it by hand); OK otherwise. Daemon: the monitor command's answer.

Actions, unit mode (systemctl with --no-ask-password; a blocking start or stop waits for
systemd's job, within systemd's own unit timeouts and ours; a start cut short by our timeout
leaves its job queued in systemd, and the stop that follows replaces it):

- start: `systemctl start UNIT`, then `systemctl is-active UNIT` must say "active".
- stop: `systemctl stop UNIT`, then is-active must say "inactive" or "failed".
- monitor, probe: is-active: "active" or "reloading" is OK; "inactive" or "failed" (the
  unit's processes are gone) STOPPED; "activating", "deactivating" and anything else FAILED.

A failed action's detail carries the tail of the command's output (of a foreground process
that exited: the tail of what it wrote to `log` since it was started, when it has one).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotstandby.agent.ports import ActionResult
from hotstandby.agent.resources.child import (
    Completed,
    child_env,
    describe_status,
    kill_group,
    read_tail,
    reap_killed,
    run_command,
    user_exists,
    user_options,
)
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.core.cluster import Resource
from hotstandby.core.messages import Action, Outcome

KEYS = frozenset(
    {
        "unit",
        "start",
        "stop",
        "monitor",
        "daemon",
        "not_running_code",
        "stop_grace",
        "settle",
        "env",
        "user",
        "cwd",
        "log",
    }
)
COMMAND_KEYS = KEYS - {"unit"}
#: Where systemd keeps its runtime state; present exactly when systemd runs the machine.
SYSTEMD_RUNTIME = Path("/run/systemd/system")
#: setpriv sets the death signal of the process it then becomes (util-linux, always on Debian).
SETPRIV = "/usr/bin/setpriv"
#: Between two runs of the monitor command while a start waits for the service to be ready.
READY_POLL = 0.1
#: Bound on `systemctl is-enabled` when `check` looks at this machine.
CHECK_TIMEOUT = 5.0
MAX_GRACE = 3600.0
# systemd's unit name characters; "@" for template instances.
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]{1,255}")
UNIT_SUFFIXES = (".service", ".socket", ".target", ".mount", ".timer", ".path", ".scope")
ENABLED_STATES = frozenset({"enabled", "enabled-runtime"})


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceParams:
    """A service resource's validated parameters, for one node."""

    unit: str | None = None
    start: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()
    monitor: tuple[str, ...] = ()
    daemon: bool = False
    not_running_code: int = 3
    stop_grace: float = 5.0
    settle: float = 0.5
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: str = "/"
    log: str | None = None


class _Params(ParamReader):
    def __init__(self, resource: str, raw: Mapping[str, Any]) -> None:
        super().__init__(resource, "service", raw, KEYS)

    def argv(self, key: str, *, required: bool) -> tuple[str, ...]:
        expected = (
            'a command: an array of strings, the program\'s absolute path first (["/usr/bin/x"])'
        )
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.missing(key, expected)
            return ()
        if (
            not isinstance(value, list | tuple)
            or not value
            or not all(isinstance(item, str) and item and "\0" not in item for item in value)
            or not value[0].startswith("/")
        ):
            raise self.error(key, expected, value)
        return tuple(value)

    def unit(self) -> str:
        value = self.string("unit")
        if not UNIT_NAME.fullmatch(value) or value.startswith("-"):
            raise self.error("unit", 'a systemd unit name ("postgresql.service")', value)
        return value if value.endswith(UNIT_SUFFIXES) else value + ".service"


def parse_params(resource: Resource, node: str) -> ServiceParams:
    """The validated parameters of service `resource` on `node` (ParamError otherwise)."""
    name = resource.name
    p = _Params(name, resource.params)
    if "unit" in p.raw:
        if "start" in p.raw:
            raise ParamError(
                name, None, "give either 'unit' (a systemd unit) or 'start' (commands), not both"
            )
        extra = sorted(COMMAND_KEYS & set(p.raw))
        if extra:
            raise ParamError(name, extra[0], "goes with 'start' (command mode), not with 'unit'")
        return ServiceParams(unit=p.unit())
    if "start" not in p.raw:
        raise ParamError(
            name, None, "give 'unit' (a systemd unit) or 'start' (the command that starts it)"
        )
    daemon = p.boolean("daemon", False)
    params = ServiceParams(
        start=p.argv("start", required=True),
        stop=p.argv("stop", required=daemon),
        monitor=p.argv("monitor", required=daemon),
        daemon=daemon,
        not_running_code=p.integer("not_running_code", 3, 0, 255),
        stop_grace=p.seconds("stop_grace", 5.0, MAX_GRACE),
        settle=p.seconds("settle", 0.5, MAX_GRACE),
        env={k: v.replace("{node}", node) for k, v in p.string_table("env").items()},
        user=p.optional_string("user"),
        cwd=p.absolute_path("cwd", default="/"),
        log=p.absolute_path("log", required=False).replace("{node}", node) or None,
    )
    if params.not_running_code == 0:
        raise p.error("not_running_code", "an integer from 1 to 255 (0 means running)", 0)
    if not daemon and params.stop_grace >= resource.stop_timeout:
        raise ParamError(
            name,
            "stop_grace",
            f"must be shorter than the resource's stop_timeout ({resource.stop_timeout:g}s), "
            "or a process that ignores SIGTERM is never killed",
        )
    for key in ("env",):
        bad = [k for k in params.env if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise p.error(f"{key}.{bad[0]}", "an environment variable name", bad[0])
    return params


def host_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    """What this machine's state risks for the service: a unit enabled at boot, no program."""
    params = parse_params(resource, node)
    if params.unit is not None:
        return _unit_risks(params.unit)
    found: list[tuple[str | None, str]] = []
    for key, argv in (("start", params.start), ("stop", params.stop), ("monitor", params.monitor)):
        if argv and not os.access(argv[0], os.X_OK):
            found.append((key, f"{argv[0]} is not an executable program on this machine"))
    if params.user is not None and not user_exists(params.user):
        found.append(("user", f"no user {params.user!r} on this machine"))
    if not os.path.isdir(params.cwd):
        found.append(("cwd", f"no directory {params.cwd} on this machine"))
    return found


def _unit_risks(unit: str) -> list[tuple[str | None, str]]:
    if not SYSTEMD_RUNTIME.is_dir():
        return [("unit", "systemd does not run this machine: the unit cannot be managed here")]
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return [("unit", "systemctl is not installed on this machine")]
    try:
        done = subprocess.run(
            [systemctl, "--no-ask-password", "is-enabled", unit],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
            env=child_env({}),
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return [("unit", f"could not ask systemd whether {unit} is enabled: {err}")]
    state = done.stdout.strip()
    if state in ENABLED_STATES:
        return [
            (
                "unit",
                f"{unit} is {state}: it starts at boot, yet only the cluster may start it "
                f"(systemctl disable {unit})",
            )
        ]
    return []


# ---- the adapter -----------------------------------------------------------------------------


class ServiceResource:
    """A ResourceAdapter for one service, in command mode or unit mode."""

    def __init__(self, name: str, params: ServiceParams, node: str) -> None:
        self.name = name
        self.params = params
        self._env = child_env({"HOTSTANDBY_RESOURCE": name, "HOTSTANDBY_NODE": node, **params.env})
        # The foreground process this agent started (command mode, daemon = false), and
        # where its output begins in the log.
        self._proc: asyncio.subprocess.Process | None = None
        self._log_start = 0
        # Start and stop must not interleave: a stop between a start's spawn and its
        # readiness check would leave a process running after the stop returned.
        self._lock = asyncio.Lock()

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe."""
        try:
            if self.params.unit is not None:
                return await self._unit(action, self.params.unit)
            if action is Action.START:
                async with self._lock:
                    return await self._start()
            if action is Action.STOP:
                async with self._lock:
                    return await self._stop()
            return await self._monitor()
        except OSError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: cannot run a command: {err}")
        except KeyError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: no user {err}")

    async def _command(self, argv: Sequence[str]) -> Completed:
        p = self.params
        return await run_command(argv, self._env, cwd=p.cwd, user=p.user, log=p.log)

    async def _check(self) -> Completed | None:
        """The monitor command's result, None when there is none."""
        return await self._command(self.params.monitor) if self.params.monitor else None

    def _running(self) -> asyncio.subprocess.Process | None:
        proc = self._proc
        return proc if proc is not None and proc.returncode is None else None

    # ---- command mode

    async def _start(self) -> ActionResult:
        p = self.params
        if p.daemon:
            check = await self._check()
            if check is not None and check.returncode == 0:
                return ActionResult(Outcome.OK, "already running")
            done = await self._command(p.start)
            if done.returncode != 0:
                return ActionResult(Outcome.FAILED, f"start command: {done.describe()}")
            return await self._await_ready(None)
        proc = self._running()
        if proc is not None:
            check = await self._check()
            if check is None or check.returncode == 0:
                return ActionResult(Outcome.OK, f"already running (pid {proc.pid})")
            return ActionResult(
                Outcome.FAILED, f"pid {proc.pid} runs but its monitor fails: {check.describe()}"
            )
        proc = await self._spawn()
        try:
            return await self._await_ready(proc)
        except asyncio.CancelledError:
            await reap_killed(proc)
            raise

    async def _spawn(self) -> asyncio.subprocess.Process:
        p = self.params
        argv = list(p.start)
        if not os.access(argv[0], os.X_OK):
            # Checked here: through setpriv, a missing program would only be an exit status.
            raise FileNotFoundError(errno.ENOENT, "not an executable program", argv[0])
        if os.access(SETPRIV, os.X_OK):
            # Dies with the agent: an agent that restarts finds nothing of its own running.
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        out = open(p.log, "ab") if p.log else None  # noqa: SIM115 (closed below)
        self._log_start = out.seek(0, os.SEEK_END) if out is not None else 0
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if out else None,
                env=self._env,
                cwd=p.cwd,
                start_new_session=True,
                **user_options(p.user),
            )
        finally:
            if out is not None:
                out.close()  # the child has its own copy
        return self._proc

    async def _await_ready(self, proc: asyncio.subprocess.Process | None) -> ActionResult:
        """Wait until the monitor passes (or a foreground process stayed up for `settle`)."""
        p = self.params
        if proc is not None and not p.monitor:
            try:
                async with asyncio.timeout(p.settle):
                    await proc.wait()
            except TimeoutError:
                return ActionResult(Outcome.OK, f"started (pid {proc.pid})")
            return ActionResult(Outcome.FAILED, f"exited at once: {self._exit(proc)}")
        attempts = 0
        while True:
            if proc is not None and proc.returncode is not None:
                return ActionResult(Outcome.FAILED, f"exited while starting: {self._exit(proc)}")
            check = await self._command(p.monitor)
            attempts += 1
            if check.returncode == 0:
                pid = f" (pid {proc.pid})" if proc is not None else ""
                return ActionResult(Outcome.OK, f"started{pid}, ready after {attempts} checks")
            await asyncio.sleep(READY_POLL)

    def _exit(self, proc: asyncio.subprocess.Process) -> str:
        code = proc.returncode
        text = describe_status(code if code is not None else 0)
        if not self.params.log:
            return text
        try:
            with open(self.params.log, "rb") as log:
                tail = read_tail(log, self._log_start)
        except OSError:
            tail = ""
        return f"{text}: {tail}" if tail else f"{text} (no output in {self.params.log})"

    async def _stop(self) -> ActionResult:
        p = self.params
        if p.daemon:
            done = await self._command(p.stop)
            if done.returncode != 0:
                return ActionResult(Outcome.FAILED, f"stop command: {done.describe()}")
            check = await self._command(p.monitor)
            if check.returncode == 0:
                return ActionResult(Outcome.FAILED, "still running after the stop command")
            return ActionResult(Outcome.OK, "stopped")
        proc = self._running()
        if proc is None:
            if self._proc is not None:
                # What the dead leader left in its group: the group id cannot be reused
                # while members remain, so this reaches only those.
                kill_group(self._proc.pid)
            return await self._stop_stranger()
        steps: list[str] = []
        if p.stop:
            done = await self._command(p.stop)
            steps.append(f"stop command: {describe_status(done.returncode)}")
        else:
            kill_group(proc.pid, signal.SIGTERM)
            steps.append("sent SIGTERM")
        try:
            async with asyncio.timeout(p.stop_grace):
                await proc.wait()
        except TimeoutError:
            steps.append(f"still running after {p.stop_grace:g}s: sent SIGKILL")
        # The group id outlives its leader while members remain, so this reaches only ours.
        await reap_killed(proc)
        steps.append(f"pid {proc.pid} {describe_status(proc.returncode or 0)}")
        self._proc = None  # stopped on purpose: a later monitor says "not running", no more
        return ActionResult(Outcome.OK, "; ".join(steps))

    async def _stop_stranger(self) -> ActionResult:
        """No process of this agent runs: stop a copy the monitor finds (started by hand)."""
        p = self.params
        check = await self._check()
        if check is None or check.returncode != 0:
            return ActionResult(Outcome.OK, "not running")
        if not p.stop:
            return ActionResult(
                Outcome.FAILED,
                "running without a process of this agent, and no stop command to stop it",
            )
        done = await self._command(p.stop)
        after = await self._command(p.monitor)
        if after.returncode == 0:
            return ActionResult(
                Outcome.FAILED, f"still running after the stop command ({done.describe()})"
            )
        return ActionResult(
            Outcome.OK, f"stopped a copy this agent had not started: {done.describe()}"
        )

    async def _monitor(self) -> ActionResult:
        p = self.params
        if p.daemon:
            return self._judge(await self._command(p.monitor))
        proc = self._running()
        if proc is None:
            found = await self._check()
            if found is not None and found.returncode == 0:
                return ActionResult(
                    Outcome.FAILED, "running, but not as a process this agent started"
                )
            if self._proc is not None:
                return ActionResult(Outcome.STOPPED, f"exited: {self._exit(self._proc)}")
            return ActionResult(Outcome.STOPPED, "not running")
        check = await self._check()
        if check is None:
            return ActionResult(Outcome.OK, f"running (pid {proc.pid})")
        result = self._judge(check)
        if result.outcome is Outcome.STOPPED:
            return ActionResult(
                Outcome.FAILED, f"pid {proc.pid} runs but its monitor says not running"
            )
        return result

    def _judge(self, check: Completed) -> ActionResult:
        if check.returncode == 0:
            return ActionResult(Outcome.OK, "running")
        if check.returncode == self.params.not_running_code:
            return ActionResult(Outcome.STOPPED, "not running")
        return ActionResult(Outcome.FAILED, f"monitor command: {check.describe()}")

    # ---- unit mode

    async def _unit(self, action: Action, unit: str) -> ActionResult:
        if not SYSTEMD_RUNTIME.is_dir():
            return ActionResult(
                Outcome.FAILED,
                f"systemd does not run this machine ({SYSTEMD_RUNTIME} is missing): "
                f"cannot {action.value} {unit}",
            )
        systemctl = shutil.which("systemctl")
        if systemctl is None:
            return ActionResult(Outcome.FAILED, "systemctl is not installed")
        if action is Action.START:
            async with self._lock:
                done = await self._systemctl(systemctl, "start", unit)
                if done.returncode != 0:
                    return ActionResult(Outcome.FAILED, f"systemctl start: {done.describe()}")
                state = await self._is_active(systemctl, unit)
                if state != "active":
                    return ActionResult(Outcome.FAILED, f"{unit} is {state} after start")
                return ActionResult(Outcome.OK, f"{unit} is active")
        if action is Action.STOP:
            async with self._lock:
                done = await self._systemctl(systemctl, "stop", unit)
                if done.returncode != 0:
                    return ActionResult(Outcome.FAILED, f"systemctl stop: {done.describe()}")
                state = await self._is_active(systemctl, unit)
                if state not in ("inactive", "failed"):
                    return ActionResult(Outcome.FAILED, f"{unit} is {state} after stop")
                return ActionResult(Outcome.OK, f"{unit} is {state}")
        state = await self._is_active(systemctl, unit)
        if state in ("active", "reloading"):
            return ActionResult(Outcome.OK, f"{unit} is {state}")
        if state in ("inactive", "failed"):
            return ActionResult(Outcome.STOPPED, f"{unit} is {state}")
        return ActionResult(Outcome.FAILED, f"{unit} is {state}")

    async def _systemctl(self, systemctl: str, *args: str) -> Completed:
        return await run_command([systemctl, "--no-ask-password", *args], child_env({}))

    async def _is_active(self, systemctl: str, unit: str) -> str:
        done = await self._systemctl(systemctl, "is-active", unit)
        # Output is the state word; any systemctl complaint comes before it.
        lines = done.output.splitlines()
        return lines[-1].strip() if lines else f"unknown ({done.describe()})"
