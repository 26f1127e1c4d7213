"""Programs the volume adapter runs (fsck, mount) never outlive their action."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hotstandby.agent.resources.volume import run_program
from hotstandby.lab.procs import await_gone


def test_output_and_exit_code() -> None:
    code, out = asyncio.run(run_program(["sh", "-c", "echo checked; exit 1"], 5.0))
    assert (code, out) == (1, "checked")


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_the_whole_process_group_ends_with_the_action(tmp_path: Path, how: str) -> None:
    # fsck runs the type's checker as its child: that grandchild must end too.
    pidfile = tmp_path / "child.pid"
    argv = ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"]

    async def go() -> None:
        if how == "timeout":
            await run_program(argv, 2.0)
            return
        task = asyncio.create_task(run_program(argv, 30.0))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(TimeoutError if how == "timeout" else asyncio.CancelledError):
        asyncio.run(go())
    child = int(pidfile.read_text())
    assert await_gone([child], 5.0)
