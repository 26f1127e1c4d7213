"""Fake fence agents written into a test's directory, and clusters that use them."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hotstandby.core.cluster import (
    Arbitration,
    ArbitrationMode,
    Cluster,
    Node,
    Timers,
    frozen_map,
)


@dataclass(frozen=True)
class Does:
    """What a fake agent does for one action."""

    exit: int = 0
    stdout: str = ""
    stderr: str = ""
    echo: bool = False  # write its whole stdin to stdout and stderr (a debug-minded agent)
    hang: bool = False  # start a helper process, then sleep until killed


# The fake logs every call (argv and the parsed stdin) before acting, so tests see exactly
# what the adapter sent. Standard library only; it runs under the test's interpreter.
_SCRIPT = """\
import json, os, subprocess, sys, time
spec = json.loads({spec!r})
text = sys.stdin.read()
params = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
with open(spec["log"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "params": params, "pid": os.getpid()}}) + "\\n")
does = spec["actions"].get(params.get("action"), spec["other"])
if does["hang"]:
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    with open(spec["log"] + ".pids", "w") as f:
        json.dump([os.getpid(), helper.pid], f)
    time.sleep(3600)
if does["echo"]:
    sys.stdout.write(text)
    sys.stderr.write(text)
sys.stdout.write(does["stdout"])
sys.stderr.write(does["stderr"])
sys.exit(does["exit"])
"""


def fake_agent(directory: Path, name: str, other: Does = Does(exit=1), **actions: Does) -> Path:
    """Write an executable fence_NAME into directory; actions not given do `other`."""
    path = directory / f"fence_{name}"
    spec = {
        "log": str(directory / f"fence_{name}.log"),
        "actions": {action.replace("_", "-"): asdict(d) for action, d in actions.items()},
        "other": asdict(other),
    }
    path.write_text(f"#!{sys.executable}\n" + _SCRIPT.format(spec=json.dumps(spec)))
    path.chmod(0o755)
    return path


def calls(agent: Path) -> list[dict[str, Any]]:
    """Every call the fake agent at path received, in order."""
    log = agent.with_name(agent.name + ".log")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def hung_pids(agent: Path) -> list[int]:
    """The pids of a hanging fake agent and of the helper it started."""
    pids: list[int] = json.loads(agent.with_name(agent.name + ".log.pids").read_text())
    return pids


def cluster(
    *methods: Mapping[str, Any],
    nodes: tuple[str, ...] = ("alpha", "beta"),
    fence_timeout: float = 5.0,
) -> Cluster:
    """A cluster in fence mode with these [[arbitration.fence]] tables."""
    return Cluster(
        name="test",
        secret_file="/nonexistent",
        nodes=tuple(Node(n) for n in nodes),
        links=(),
        resources=(),
        arbitration=Arbitration(
            mode=ArbitrationMode.FENCE, fence=tuple(frozen_map(dict(m)) for m in methods)
        ),
        timers=Timers(fence_timeout=fence_timeout),
    )
