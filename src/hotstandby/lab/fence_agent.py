"""The lab's fence agent: powers a lab node off, speaking the fence agents' stdin protocol.

Run as `python -m hotstandby.lab.fence_agent` (or through `write_wrapper`'s script, for
configurations that name an agent by path) with `name=value` lines on stdin, as the agents
of Debian's fence-agents package read them:

    action=off     off, on, reboot, status, monitor, list, list-status, metadata, validate-all
                   (default reboot, as fencing.py)
    plug=a         the lab node (`port` is the old name and is accepted)
    lab=hs-1a2b    the lab's id; default: the HOTSTANDBY_LAB environment variable

Exit codes as fencing.py: 0 success (for status: on), 2 for status off, 1 failure.

- off: as `Lab.power_loss`, from the lab's state record, so it works in any process and in
  any of the lab's namespaces: freeze every process in the node's namespace, cut both ends
  of its links, its serial line and its disk path, then kill the processes.
- on: heals those cuts. Processes are NOT restarted: the node comes back empty, like a
  machine whose services do not start at boot; the test restarts what it needs.
- reboot: off, then on.
- status: off (2) only when no process runs in the node's namespace AND every end of its
  links drops frames, as the kernel has it now (whoever cut them); otherwise on (0).
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path

from hotstandby.lab import power, state
from hotstandby.lab._cmd import LabError

NAME = "fence_hotstandby_lab"
ENV_LAB = "HOTSTANDBY_LAB"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STATUS_OFF = 2

ACTIONS = ("off", "on", "reboot", "status", "monitor", "list", "list-status", "metadata")
ACTIONS_ALL = (*ACTIONS, "validate-all")

# (name, required, default, description): what metadata prints and the parser accepts.
PARAMETERS: tuple[tuple[str, bool, str | None, str], ...] = (
    ("action", True, "reboot", "Fencing action"),
    ("plug", True, None, "The lab node to fence (port is accepted as an alias)"),
    ("lab", False, None, f"The lab's id (default: the {ENV_LAB} environment variable)"),
)
# Sent by cluster managers to every agent (fencing.py ignores them the same way).
_IGNORED = frozenset({"nodename", "verbose", "debug", "debug_file", "quiet", "delay"})
_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)=(.*)$")


class UsageError(Exception):
    """The input names no valid action, node or lab."""


def parse(lines: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """The options in fence-agents stdin lines, and warnings about lines it ignored."""
    options: dict[str, str] = {}
    warnings: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            warnings.append(f"ignoring malformed line {line[:40]!r}")
            continue
        name, value = match.group(1).replace("-", "_"), match.group(2)
        # fencing.py strips one pair of double quotes around a value; so do we.
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name == "port":
            name = "plug"
        if name in _IGNORED:
            continue
        if name not in {p[0] for p in PARAMETERS}:
            warnings.append(f"ignoring unknown option {name!r}")
            continue
        options[name] = value
    return options, warnings


def metadata() -> str:
    """The agent's self-description, in the XML shape of fence-agents' metadata."""
    root = ET.Element("resource-agent", name=NAME, shortdesc="Power off a hotstandby lab node")
    ET.SubElement(root, "longdesc").text = (
        "Powers a node of a hotstandby lab off the way a power loss does: its processes "
        "frozen, its links, serial line and shared-disk path cut, then its processes killed. "
        "on reconnects it but restarts nothing."
    )
    ET.SubElement(root, "vendor-url").text = "https://example.invalid/hotstandby"
    params = ET.SubElement(root, "parameters")
    for name, required, default, description in PARAMETERS:
        param = ET.SubElement(
            params, "parameter", name=name, unique="0", required="1" if required else "0"
        )
        ET.SubElement(param, "getopt", mixed=f"--{name}=[{name}]")
        content = ET.SubElement(param, "content", type="string")
        if default is not None:
            content.set("default", default)
        ET.SubElement(param, "shortdesc", lang="en").text = description
    actions = ET.SubElement(root, "actions")
    for action in ACTIONS_ALL:
        ET.SubElement(actions, "action", name=action)
    ET.indent(root)
    return '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _record(options: Mapping[str, str], env: Mapping[str, str]) -> state.LabRecord:
    lab_id = options.get("lab") or env.get(ENV_LAB, "")
    if not lab_id:
        raise UsageError(f"no lab: give lab=<id> on stdin or set {ENV_LAB}")
    return state.load(lab_id)


def _plug(options: Mapping[str, str], record: state.LabRecord) -> str:
    plug = options.get("plug", "")
    if not plug:
        raise UsageError("no plug: give plug=<lab node>")
    if plug not in record.nodes:
        raise UsageError(f"lab {record.lab_id} has no node {plug!r} ({sorted(record.nodes)})")
    return plug


def run(options: Mapping[str, str], env: Mapping[str, str]) -> tuple[int, str]:
    """Carry out the action in options; the exit code and what to print on stdout."""
    action = options.get("action", "reboot")
    if action not in ACTIONS_ALL:
        raise UsageError(f"unknown action {action!r} (one of {', '.join(ACTIONS_ALL)})")
    if action == "metadata":
        return EXIT_OK, metadata()
    record = _record(options, env)
    if action == "monitor":
        # The "device" is the lab: it answers as long as its record names live namespaces.
        return EXIT_OK, ""
    if action in ("list", "list-status"):
        lines = []
        for node in sorted(record.nodes):
            line = f"{node},{power.wiring(record, node).ns}"
            if action == "list-status":
                line += ",OFF" if power.power_state(record, node).off else ",ON"
            lines.append(line + "\n")
        return EXIT_OK, "".join(lines)
    node = _plug(options, record)
    if action == "validate-all":
        return EXIT_OK, ""
    if action in ("off", "reboot"):
        killed = power.power_off(record, node)
        message = f"Success: Powered OFF {node} ({len(killed)} processes killed)\n"
        if action == "off":
            return EXIT_OK, message
        power.power_on(record, node)
        return EXIT_OK, f"Success: Rebooted {node} (processes not restarted)\n"
    if action == "on":
        power.power_on(record, node)
        return EXIT_OK, f"Success: Powered ON {node} (processes not restarted)\n"
    found = power.power_state(record, node)
    if found.off:
        return EXIT_STATUS_OFF, "Status: OFF\n"
    return EXIT_OK, "Status: ON\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: options on stdin, as every fence agent."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(f"{NAME}: takes its options as name=value lines on stdin", file=sys.stderr)
        return EXIT_FAILED
    options, warnings = parse(sys.stdin)
    for warning in warnings:
        print(f"{NAME}: {warning}", file=sys.stderr)
    try:
        code, out = run(options, os.environ)
    except (UsageError, LabError, OSError) as exc:
        # Exit 1, never 2: a failing status must not read as "off".
        print(f"{NAME}: Failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.write(out)
    return code


def write_wrapper(directory: Path, python: str = sys.executable) -> Path:
    """Write an executable `fence_hotstandby_lab` into directory, for `agent = "<path>"`."""
    path = directory / NAME
    # A Python script, not a shell one: nothing passes through a shell.
    path.write_text(
        f"#!{python}\nimport sys\nfrom hotstandby.lab.fence_agent import main\nsys.exit(main())\n"
    )
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())
