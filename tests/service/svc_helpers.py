"""Building service and ocf resources for tests, and running their actions."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hotstandby.agent.ports import ActionResult
from hotstandby.agent.resources import ocf, service
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map
from hotstandby.core.messages import Action

PYTHON = sys.executable
T = TypeVar("T")


def resource(kind: ResourceKind, params: dict[str, Any], **timeouts: Any) -> Resource:
    """A resource of `kind` named "svc" with these params and timeouts."""
    return Resource("svc", kind, frozen_map(params), **timeouts)


def service_adapter(params: dict[str, Any], node: str = "alpha", **timeouts: float) -> Any:
    """A service adapter built as the agent builds it."""
    r = resource(ResourceKind.SERVICE, params, **timeouts)
    return service.ServiceResource(r.name, service.parse_params(r, node), node)


def ocf_adapter(params: dict[str, Any], node: str = "alpha", **timeouts: float) -> Any:
    """An ocf adapter built as the agent builds it."""
    r = resource(ResourceKind.OCF, params, **timeouts)
    return ocf.OcfResource(r, ocf.parse_params(r, node), node)


class Loop:
    """One event loop for a test, as the agent has one: an adapter's processes belong to it."""

    runner: asyncio.Runner | None = None


def act(adapter: Any, action: str, timeout: float = 20.0) -> ActionResult:
    """Run one action to its end on the test's loop, bounded as the agent loop bounds it."""

    async def main() -> ActionResult:
        result: ActionResult = await asyncio.wait_for(adapter.run(Action(action)), timeout)
        return result

    if Loop.runner is None:
        Loop.runner = asyncio.Runner()
    return Loop.runner.run(main())


def close_loop() -> None:
    """Close the test's loop (its adapters' processes must be stopped by then)."""
    if Loop.runner is not None:
        Loop.runner.close()
        Loop.runner = None


def script(path: Path, body: str) -> str:
    """Write an executable Python script and return its path."""
    path.write_text(f"#!{PYTHON}\n{body}")
    path.chmod(0o755)
    return str(path)


def pid_alive(pid: int) -> bool:
    """Whether pid runs (a zombie does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll probe until it returns something true; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
