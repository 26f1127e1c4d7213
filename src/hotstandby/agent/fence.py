"""Fencing through fence agents: any program that speaks the fence agents' stdin protocol.

The agents of Debian's fence-agents package (fence_ipmilan, fence_virsh, PDUs, SCSI
reservations, ...) run unchanged: each is started with no arguments, reads `name=value`
lines on stdin (`action=off`, `plug=...`, `ip=...`, `password=...`) and answers with its
exit code: 0 success; for `status` 0 on, 2 off, anything else a failure.

The cluster file lists methods in the order tried (a fencing topology):

    [[arbitration.fence]]
    agent = "ipmilan"                    # runs fence_ipmilan from PATH; or an absolute path
    action = "off"                       # or "reboot"; default "off"
    verify = true                        # default true for off: status must then say off
    timeout = "8s"                       # this method's bound; default timers.fence_timeout
    password_file = "/etc/hotstandby/ipmi.pass"   # read here, sent on stdin only
    username = "admin"                   # every other key goes to the agent as given
    lanplus = true                       # true/false are sent as 1/0
    [arbitration.fence.targets.alpha]    # per fenced node: parameters that differ
    ip = "10.0.0.11"
    [arbitration.fence.targets.beta]
    ip = "10.0.0.12"

    [[arbitration.fence]]
    agent = "fence_apc_snmp"
    ip = "10.0.0.20"
    plug = "{node}"                      # the plug, {node} replaced by the fenced node's name
    [arbitration.fence.plugs]            # or per node; wins over the template
    alpha = "3"
    beta = "4"

A method with a `plugs` or `targets` table and no `plug` template fences only the nodes named
in those tables. Plain secrets (`password`, `passwd`, any `*passwd*` key other than a
`*_script`) are refused: the cluster file is the same on every node and not a secret store.

One pass over the methods per `fence()` call: the first method that confirms wins; every
failure or timeout moves on to the next; the core decides about retrying and alarms. Each
method is bounded by its own `timeout` (its action and the status checks together), so a
caller that bounds the whole call should allow `FenceAgents.total_timeout`, as the budget
in `hotstandby check` does (one fence_timeout per method).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from hotstandby.config.durations import DurationError, parse_duration
from hotstandby.core.cluster import Cluster

log = logging.getLogger("hotstandby.fence")

#: Keys of a method table that the adapter reads itself; all others go to the agent.
OWN_KEYS = frozenset(
    {"agent", "action", "verify", "timeout", "plug", "plugs", "targets", "password_file"}
)
FENCE_ACTIONS = ("off", "reboot")
#: Every action of the protocol that `FenceAgents.run` may be asked for.
ACTIONS = (
    "off",
    "on",
    "reboot",
    "status",
    "monitor",
    "list",
    "list-status",
    "metadata",
    "validate-all",
)

STATUS_ON = 0
STATUS_OFF = 2

#: Between status checks while waiting for a fenced node to report off.
VERIFY_INTERVAL = 0.5
#: How long a killed agent may take to be reaped (longer only in uninterruptible sleep).
REAP_TIMEOUT = 2.0
#: Characters of an agent's output kept in a detail (its last lines say why it failed).
DETAIL_CHARS = 300
#: Bytes of each output stream read back (its end); metadata of the largest agents fits.
OUTPUT_LIMIT = 1 << 20
REDACTED = "********"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE = re.compile(r"[\n\r\0]")


class FenceConfigError(ValueError):
    """A fence method table that cannot work; the message names the key."""


@dataclass(frozen=True)
class AgentResult:
    """One run of a fence agent: its exit code and (truncated, redacted) output."""

    exit_code: int
    stdout: str
    stderr: str

    def why(self) -> str:
        """The exit code and the agent's last words, for a detail."""
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", " | ")
        if len(text) > DETAIL_CHARS:
            text = "..." + text[-DETAIL_CHARS:]
        return f"exit {self.exit_code}" + (f": {text}" if text else "")


@dataclass(frozen=True)
class FenceMethod:
    """One configured fence method, validated."""

    index: int  # 1-based position in the topology, as people count
    agent: str  # the agent's name as written
    action: str = "off"
    verify: bool = True
    timeout: float = 10.0
    params: Mapping[str, str] = field(default_factory=dict)
    plug: str | None = None  # a template: "{node}" becomes the fenced node's name
    plugs: Mapping[str, str] = field(default_factory=dict)
    targets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    password_file: str | None = None

    @property
    def program(self) -> str:
        """The executable's name or absolute path: "ipmilan" means fence_ipmilan."""
        if os.path.isabs(self.agent) or self.agent.startswith("fence_"):
            return self.agent
        return f"fence_{self.agent}"

    @property
    def label(self) -> str:
        """How details and logs name this method."""
        return f"method {self.index} ({os.path.basename(self.program)})"

    def covers(self, target: str) -> bool:
        """Whether this method knows how to fence target."""
        if self.plug is not None or not (self.plugs or self.targets):
            return True
        return target in self.plugs or target in self.targets

    def params_for(self, target: str | None) -> dict[str, str]:
        """The agent's parameters for target (no action, no password); plug resolved."""
        params = dict(self.params)
        if target is not None:
            if target in self.plugs:
                params["plug"] = self.plugs[target]
            elif self.plug is not None:
                params["plug"] = self.plug.replace("{node}", target)
            params.update(self.targets.get(target, {}))
        return params


def _where(index: int, key: str | None = None) -> str:
    base = f"arbitration.fence[{index}]"
    return base if key is None else f"{base}.{key}"


def _value(index: int, key: str, value: object) -> str:
    """A parameter as the agent reads it: text on one line; booleans as 1 and 0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str | int | float):
        text = str(value)
        if _UNSAFE.search(text):
            # A newline would smuggle further name=value lines to the agent.
            raise FenceConfigError(f"{_where(index, key)}: expected one line, found a line break")
        return text
    found = type(value).__name__
    raise FenceConfigError(f"{_where(index, key)}: expected a string, number or boolean, {found}")


def _name(index: int, key: str, where: str = "") -> str:
    """key, checked as a parameter name the agent may be sent; where prefixes its location."""
    at = _where(index, where + key)
    if not _NAME.fullmatch(key):
        raise FenceConfigError(f"{at}: not a fence agent parameter name")
    lowered = key.lower()
    if lowered in ("password", "passwd") or (
        "passw" in lowered and not lowered.endswith("_script")
    ):
        raise FenceConfigError(
            f"{at}: plain secrets are not accepted in the cluster file; "
            "use password_file (or the agent's *_script option)"
        )
    if key == "port":
        raise FenceConfigError(f"{at}: port is the old name of plug; write plug")
    if key in ("action", "nodename"):
        raise FenceConfigError(f"{at}: set by hotstandby, not configurable")
    return key


def _table(index: int, key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FenceConfigError(f"{_where(index, key)}: expected a table")
    return value


def parse_method(
    index: int, table: Mapping[str, Any], default_timeout: float, nodes: tuple[str, ...]
) -> FenceMethod:
    """Validate one [[arbitration.fence]] table (index counts from 1)."""
    agent = table.get("agent")
    if not isinstance(agent, str) or not agent:
        raise FenceConfigError(f"{_where(index, 'agent')}: expected the fence agent's name")
    if "/" in agent and not os.path.isabs(agent):
        raise FenceConfigError(f"{_where(index, 'agent')}: a name or an absolute path")
    action = table.get("action", "off")
    if action not in FENCE_ACTIONS:
        raise FenceConfigError(f'{_where(index, "action")}: expected "off" or "reboot"')
    verify = table.get("verify", action == "off")
    if not isinstance(verify, bool):
        raise FenceConfigError(f"{_where(index, 'verify')}: expected true or false")
    if verify and action == "reboot":
        # A reboot ends with the node on again: a status check cannot confirm anything.
        raise FenceConfigError(f"{_where(index, 'verify')}: a reboot cannot be verified as off")
    timeout = default_timeout
    if "timeout" in table:
        try:
            timeout = parse_duration(table["timeout"])
        except DurationError as err:
            raise FenceConfigError(f"{_where(index, 'timeout')}: {err}") from None
        if timeout <= 0:
            raise FenceConfigError(f"{_where(index, 'timeout')}: expected more than 0s")
    password_file = table.get("password_file")
    if password_file is not None and (
        not isinstance(password_file, str) or not os.path.isabs(password_file)
    ):
        raise FenceConfigError(f"{_where(index, 'password_file')}: expected an absolute path")
    plug = table.get("plug")
    if plug is not None:
        plug = _value(index, "plug", plug)
    plugs = {
        _node(index, f"plugs.{n}", n, nodes): _value(index, f"plugs.{n}", v)
        for n, v in _table(index, "plugs", table.get("plugs", {})).items()
    }
    targets = {}
    for n, overrides in _table(index, "targets", table.get("targets", {})).items():
        where = f"targets.{n}"
        _node(index, where, n, nodes)
        targets[n] = {
            _name(index, k, f"{where}."): _value(index, f"{where}.{k}", v)
            for k, v in _table(index, where, overrides).items()
        }
    params = {_name(index, k): _value(index, k, v) for k, v in table.items() if k not in OWN_KEYS}
    return FenceMethod(
        index=index,
        agent=agent,
        action=action,
        verify=verify,
        timeout=timeout,
        params=params,
        plug=plug,
        plugs=plugs,
        targets=targets,
        password_file=password_file,
    )


def _node(index: int, where: str, name: str, nodes: tuple[str, ...]) -> str:
    if name not in nodes:
        raise FenceConfigError(f"{_where(index, where)}: no node {name!r} in the cluster")
    return name


def parse_methods(cluster: Cluster) -> tuple[FenceMethod, ...]:
    """Every configured fence method, validated, in the order tried."""
    return tuple(
        parse_method(i, table, cluster.timers.fence_timeout, cluster.node_names)
        for i, table in enumerate(cluster.arbitration.fence, start=1)
    )


def read_secret(path: str) -> str:
    """The password in path: its first line, without the line break."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    secret = text.removesuffix("\n").removesuffix("\r")
    if _UNSAFE.search(secret):
        raise ValueError(f"{path} holds more than one line")
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def _read_back(f: IO[bytes], secret: str | None) -> str:
    # The end, if it must be cut: that is where an agent says why it failed.
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - OUTPUT_LIMIT))
    text = f.read().decode("utf-8", errors="replace")
    # An agent may echo its input (debug output): the password never leaves this module.
    return text.replace(secret, REDACTED) if secret else text


def _kill_group(pid: int) -> None:
    # The agent leads its own process group (start_new_session): this reaches the helpers
    # it started too (ipmitool, ssh, snmpset), and nothing outside it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run_agent(
    program: str, params: Mapping[str, str], action: str, secret: str | None = None
) -> AgentResult:
    """Run one agent once with action and params on stdin; kill it if cancelled.

    No timeout of its own: callers bound it (asyncio.timeout, wait_for), and cancellation
    kills the agent's whole process group and reaps it before the CancelledError goes on.
    """
    lines = [f"action={action}", *(f"{k}={v}" for k, v in params.items())]
    if secret is not None:
        lines.append(f"password={secret}")
    data = ("\n".join(lines) + "\n").encode()
    # Output to anonymous files, not pipes: a helper the agent left behind holding a pipe
    # open would otherwise keep wait() from returning after the agent itself exited.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = await asyncio.create_subprocess_exec(
            program,
            stdin=asyncio.subprocess.PIPE,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(data)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it exited without reading: its exit code says what happened
            finally:
                proc.stdin.close()
            code = await proc.wait()
        except BaseException:
            _kill_group(proc.pid)
            # Shielded: a second cancellation must not leave the killed agent unreaped.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.shield(asyncio.wait_for(proc.wait(), REAP_TIMEOUT))
            raise
        # Helpers left running in its group are stray by now; the group is still ours.
        _kill_group(proc.pid)
        return AgentResult(code, _read_back(out, secret), _read_back(err, secret))


class FenceAgents:
    """The FenceAdapter: the configured fence methods, tried in order."""

    def __init__(self, cluster: Cluster, node: str) -> None:
        self.node = node
        self.nodes = cluster.node_names
        self.methods = parse_methods(cluster)

    @property
    def total_timeout(self) -> float:
        """The longest one `fence()` call can take: every method running to its timeout."""
        return sum(m.timeout for m in self.methods)

    async def fence(self, target: str) -> tuple[bool, str]:
        """Fence target: (True, detail) once a method confirmed it, else every failure."""
        if target == self.node:
            return False, f"refusing to fence {target}: that is this node"
        if target not in self.nodes:
            return False, f"no node {target!r} in the cluster"
        failures = []
        for method in self.methods:
            began = asyncio.get_running_loop().time()
            ok, detail = await self._try(method, target)
            took = asyncio.get_running_loop().time() - began
            if ok:
                log.info(
                    "fenced %s by %s in %.0f ms: %s", target, method.label, took * 1000, detail
                )
                return True, f"{method.label}: {detail}"
            log.warning(
                "fencing %s: %s failed in %.0f ms: %s", target, method.label, took * 1000, detail
            )
            failures.append(f"{method.label}: {detail}")
        if not failures:
            return False, "no fence method configured"
        return False, "; ".join(failures)

    async def _try(self, method: FenceMethod, target: str) -> tuple[bool, str]:
        if not method.covers(target):
            return False, f"not configured for {target} (no plug or targets entry)"
        step, last = method.action, ""
        try:
            async with asyncio.timeout(method.timeout):
                result = await self.run(method, method.action, target)
                if result.exit_code != 0:
                    return False, f"{method.action} failed, {result.why()}"
                if not method.verify:
                    return True, f"{method.action} succeeded (not verified)"
                step = "status"
                # Some devices report the new state a moment late: ask again until the
                # method's timeout ends the wait.
                while True:
                    result = await self.run(method, "status", target)
                    if result.exit_code == STATUS_OFF:
                        return True, f"{method.action} confirmed, status reports off"
                    if result.exit_code == STATUS_ON:
                        last = "status still reports on"
                    else:
                        last = f"status failed, {result.why()}"
                    await asyncio.sleep(VERIFY_INTERVAL)
        except TimeoutError:
            detail = f"timed out after {method.timeout:g}s during {step}"
            return False, f"{detail} ({method.action} succeeded; {last})" if last else detail
        except (OSError, ValueError) as err:
            # The agent not found or not executable, or the password file unreadable.
            return False, f"{type(err).__name__}: {err}"

    async def run(self, method: FenceMethod, action: str, target: str | None = None) -> AgentResult:
        """Run one protocol action of method (for target's plug); no retry, no timeout."""
        if action not in ACTIONS:
            raise ValueError(f"not a fence agent action: {action!r}")
        program = method.program
        if not os.path.isabs(program):
            found = shutil.which(program)
            if found is None:
                raise FileNotFoundError(f"{program} not found in PATH")
            program = found
        secret = None
        if method.password_file is not None:
            # Read at each call: a rotated password needs no restart.
            secret = await asyncio.to_thread(read_secret, method.password_file)
        return await run_agent(program, method.params_for(target), action, secret)


def build_fence(cluster: Cluster, node: str) -> FenceAgents | None:
    """The fencing adapter for node, or None when no fence method is configured."""
    if not cluster.arbitration.fence:
        return None
    return FenceAgents(cluster, node)
