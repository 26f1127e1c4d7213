"""An OCF resource agent (the agents that ship for Pacemaker), called as the OCF standard says.

Parameters of an `ocf` resource ([resource.params] in the cluster file):

- `agent`: "PROVIDER:TYPE" ("heartbeat:IPaddr2"; an "ocf:" in front is allowed), the
  program `$OCF_ROOT/resource.d/PROVIDER/TYPE`. Required.
- `params`: a table of the agent's parameters, each passed as OCF_RESKEY_<name>. Checked at
  `check` time against the agent's own meta-data (`meta-data` action, parsed as XML):
  a name the agent does not declare, or a parameter it marks required="1" missing, is an
  error naming the resource and the parameter. Where the agent is not installed on the
  machine running `check`, the check cannot be made and `check` warns instead.
- `ocf_root`: default "/usr/lib/ocf".
- `rsctmp`: the directory agents keep their state in (HA_RSCTMP; Dummy's state file,
  IPaddr2's send_arp pid file), created when missing; default the agents' own default,
  /run/resource-agents (a tmpfs, emptied at boot, as the agents expect).
- `validate`: run the agent's `validate-all` before the first start; default true.

In `params` values and in `rsctmp`, "{node}" becomes the node's name.

Every call gets a clean environment: PATH, OCF_ROOT, OCF_FUNCTIONS_DIR ($OCF_ROOT/lib/
heartbeat), OCF_RA_VERSION_MAJOR=1, OCF_RA_VERSION_MINOR=0, OCF_RESOURCE_INSTANCE (the
resource's name), OCF_RESOURCE_TYPE, OCF_RESOURCE_PROVIDER, HA_RSCTMP when set, the
OCF_RESKEY_* parameters, and what Pacemaker passes that agents read:
OCF_RESKEY_CRM_meta_timeout (the action's timeout in ms), OCF_RESKEY_CRM_meta_interval (the
monitor interval in ms for a recurring monitor, 0 for every other action, which is how an
agent tells a probe from a monitor: `ocf_is_probe`) and OCF_RESKEY_CRM_meta_on_node.

Actions and exit codes (OCF 1.1):

- start: `validate-all` first, once per agent process (any code but 0 fails the start),
  then `start`; 0 is OK, anything else FAILED.
- stop: `stop`; 0 is OK, and so is 7 (not running: nothing to stop); anything else FAILED
  (the engine then treats the node as unclean, as Pacemaker would). An agent not installed
  here is OK to stop (nothing of it can run here) and fails to start: a node without the
  agent hands the group on rather than fencing itself over a stop it cannot make.
- monitor (a recurring monitor) and probe (`monitor` with interval 0): 0 OK, 7 STOPPED,
  8 (running promoted) OK; 1 to 6 and 9 FAILED; a probe's 5 (not installed) is STOPPED,
  since what is not installed here cannot be running here.

A result's detail names the code's meaning ("7 not running") and the agent's exit reason
(its "ocf-exit-reason:" line) or else the tail of its output.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotstandby.agent.ports import ActionResult
from hotstandby.agent.resources.child import Completed, child_env, run_command
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.core.cluster import Resource
from hotstandby.core.messages import Action, Outcome

KEYS = frozenset({"agent", "params", "ocf_root", "rsctmp", "validate"})
DEFAULT_OCF_ROOT = "/usr/lib/ocf"
#: Bound on the meta-data action at check time.
META_DATA_TIMEOUT = 10.0
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The OCF exit codes and what they mean.
OCF_SUCCESS = 0
OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
OCF_NOT_INSTALLED = 5
MEANING = {
    0: "success",
    1: "generic error",
    2: "invalid argument",
    3: "unimplemented feature",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    8: "running promoted",
    9: "failed promoted",
}


def meaning(code: int) -> str:
    """An OCF exit code in words ('7 not running')."""
    if code < 0:
        return f"killed by signal {-code}"
    return f"{code} {MEANING.get(code, 'not an OCF exit code')}"


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OcfParams:
    """An ocf resource's validated parameters, for one node."""

    provider: str
    type: str
    params: Mapping[str, str] = field(default_factory=dict)
    ocf_root: str = DEFAULT_OCF_ROOT
    rsctmp: str | None = None
    validate: bool = True

    @property
    def path(self) -> str:
        """The agent program."""
        return f"{self.ocf_root}/resource.d/{self.provider}/{self.type}"


@dataclass(frozen=True)
class MetaData:
    """What an agent's meta-data declares about its parameters."""

    parameters: frozenset[str]
    required: frozenset[str]


class MetaDataError(Exception):
    """An agent that cannot say what parameters it takes."""


# Per agent path, for the life of the process: check and the agent's start parse every
# resource once per node, and an agent's meta-data does not change under a running process.
_META_DATA: dict[str, MetaData] = {}


def parse_params(resource: Resource, node: str) -> OcfParams:
    """The validated parameters of ocf resource `resource` on `node` (ParamError otherwise).

    When the agent is installed here, its parameters are checked against its meta-data.
    """
    name = resource.name
    p = ParamReader(name, "ocf", resource.params, KEYS)
    agent = p.string("agent", required=True)
    parts = agent.split(":")
    if len(parts) == 3 and parts[0] == "ocf":
        parts = parts[1:]
    if len(parts) != 2 or not all(NAME.fullmatch(part) for part in parts):
        raise p.error("agent", 'an OCF agent as "PROVIDER:TYPE" ("heartbeat:IPaddr2")', agent)
    values = {k: v.replace("{node}", node) for k, v in p.string_table("params").items()}
    for key in values:
        if not PARAM_NAME.fullmatch(key):
            raise p.error(f"params.{key}", "a parameter name (letters, digits, _)", key)
    rsctmp = p.absolute_path("rsctmp", required=False)
    params = OcfParams(
        provider=parts[0],
        type=parts[1],
        params=values,
        ocf_root=p.absolute_path("ocf_root", default=DEFAULT_OCF_ROOT).rstrip("/") or "/",
        rsctmp=rsctmp.replace("{node}", node) if rsctmp else None,
        validate=p.boolean("validate", True),
    )
    if os.access(params.path, os.X_OK):
        try:
            meta = meta_data(params)
        except MetaDataError as err:
            raise ParamError(name, "agent", str(err)) from None
        unknown = sorted(set(values) - meta.parameters)
        if unknown:
            raise ParamError(
                name,
                "params",
                f"agent {agent} has no parameter {unknown[0]!r} "
                f"(it takes {', '.join(sorted(meta.parameters)) or 'none'})",
            )
        missing = sorted(meta.required - set(values))
        if missing:
            raise ParamError(name, "params", f"agent {agent} requires parameter {missing[0]!r}")
    return params


def meta_data(params: OcfParams) -> MetaData:
    """The agent's declared parameters (cached per agent); MetaDataError when it cannot say."""
    cached = _META_DATA.get(params.path)
    if cached is not None:
        return cached
    env = child_env(_base_env(params))
    where = f"{params.provider}:{params.type} meta-data"
    try:
        done = subprocess.run(
            [params.path, "meta-data"],
            capture_output=True,
            timeout=META_DATA_TIMEOUT,
            check=False,
            env=env,
            cwd="/",
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise MetaDataError(f"{where} did not answer within {META_DATA_TIMEOUT:g}s") from None
    except OSError as err:
        raise MetaDataError(f"cannot run {where}: {err}") from None
    if done.returncode != 0:
        raise MetaDataError(f"{where} failed: {meaning(done.returncode)}")
    try:
        root = ET.fromstring(done.stdout)
    except ET.ParseError as err:
        raise MetaDataError(f"{where} is not XML: {err}") from None
    names: set[str] = set()
    required: set[str] = set()
    for element in root.iterfind("./parameters/parameter"):
        param = element.get("name")
        if param:
            names.add(param)
            if element.get("required") in ("1", "true", "yes"):
                required.add(param)
    found = MetaData(frozenset(names), frozenset(required))
    _META_DATA[params.path] = found
    return found


def host_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    """What this machine's state risks for the resource: the agent not installed here."""
    params = parse_params(resource, node)
    if not os.access(params.path, os.X_OK):
        return [
            (
                "agent",
                f"{params.path} is not installed here (or not executable): the resource "
                "cannot run on this machine, and its parameters were not checked",
            )
        ]
    return []


def _base_env(p: OcfParams) -> dict[str, str]:
    env = {
        "OCF_ROOT": p.ocf_root,
        "OCF_FUNCTIONS_DIR": f"{p.ocf_root}/lib/heartbeat",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "0",
        "OCF_RESOURCE_TYPE": p.type,
        "OCF_RESOURCE_PROVIDER": p.provider,
    }
    if p.rsctmp is not None:
        env["HA_RSCTMP"] = p.rsctmp
    return env


# ---- the adapter -----------------------------------------------------------------------------


class OcfResource:
    """A ResourceAdapter that calls an OCF resource agent."""

    def __init__(self, resource: Resource, params: OcfParams, node: str) -> None:
        self.name = resource.name
        self.params = params
        self._timeouts = {
            Action.START: resource.start_timeout,
            Action.STOP: resource.stop_timeout,
            Action.MONITOR: resource.monitor_timeout,
            Action.PROBE: resource.monitor_timeout,
        }
        self._interval = resource.monitor_interval
        self._env: dict[str, Any] = {
            **_base_env(params),
            "OCF_RESOURCE_INSTANCE": resource.name,
            "OCF_RESKEY_CRM_meta_on_node": node,
            **{f"OCF_RESKEY_{k}": v for k, v in params.params.items()},
        }
        self._validated = False
        self._lock = asyncio.Lock()

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe."""
        if action in (Action.START, Action.STOP):
            async with self._lock:
                return await self._run(action)
        return await self._run(action)

    async def _run(self, action: Action) -> ActionResult:
        if not os.access(self.params.path, os.X_OK):
            code = OCF_NOT_INSTALLED
            detail = f"{meaning(code)}: no agent {self.params.path}"
            if action is Action.PROBE:
                return ActionResult(Outcome.STOPPED, detail)
            return ActionResult(Outcome.OK if action is Action.STOP else Outcome.FAILED, detail)
        if self.params.rsctmp is not None or action is Action.START:
            err = self._make_rsctmp()
            if err:
                return ActionResult(Outcome.FAILED, err)
        if action is Action.START and self.params.validate and not self._validated:
            done = await self._call("validate-all", action)
            if done.returncode != OCF_SUCCESS:
                return ActionResult(Outcome.FAILED, f"validate-all: {self._describe(done)}")
            self._validated = True
        verb = {Action.PROBE: "monitor"}.get(action, action.value)
        done = await self._call(verb, action)
        return ActionResult(self._outcome(action, done.returncode), self._describe(done))

    def _make_rsctmp(self) -> str:
        path = self.params.rsctmp or "/run/resource-agents"
        try:
            Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot create the agents' state directory {path}: {err}"
        return ""

    async def _call(self, verb: str, action: Action) -> Completed:
        interval = self._interval if action is Action.MONITOR else 0.0
        env = child_env(
            {
                **self._env,
                "OCF_RESKEY_CRM_meta_timeout": str(int(self._timeouts[action] * 1000)),
                "OCF_RESKEY_CRM_meta_interval": str(int(interval * 1000)),
            }
        )
        return await run_command([self.params.path, verb], env)

    @staticmethod
    def _outcome(action: Action, code: int) -> Outcome:
        if action is Action.START:
            return Outcome.OK if code == OCF_SUCCESS else Outcome.FAILED
        if action is Action.STOP:
            return Outcome.OK if code in (OCF_SUCCESS, OCF_NOT_RUNNING) else Outcome.FAILED
        if code in (OCF_SUCCESS, OCF_RUNNING_PROMOTED):
            return Outcome.OK
        if code == OCF_NOT_RUNNING or (action is Action.PROBE and code == OCF_NOT_INSTALLED):
            return Outcome.STOPPED
        return Outcome.FAILED

    @staticmethod
    def _describe(done: Completed) -> str:
        text = meaning(done.returncode)
        reasons = [
            line.split("ocf-exit-reason:", 1)[1].strip()
            for line in done.output.splitlines()
            if "ocf-exit-reason:" in line
        ]
        if reasons:
            return f"{text}: {reasons[-1]}"
        if done.returncode in (OCF_SUCCESS, OCF_NOT_RUNNING) or not done.output:
            return text
        return f"{text}: {done.output}"
