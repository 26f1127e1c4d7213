"""A real agent from Debian's fence-agents package through the adapter (when installed)."""

from __future__ import annotations

import asyncio
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hotstandby.agent.fence import FenceAgents

from .fakes import cluster

pytestmark = pytest.mark.skipif(
    shutil.which("fence_dummy") is None,
    reason="fence_dummy not installed (Debian package fence-agents)",
)


def test_fence_dummy_metadata_monitor_and_a_verified_fence(tmp_path: Path) -> None:
    # fence_dummy keeps its "power" in a file: on, off, and status reads it back.
    status_file = tmp_path / "power"
    method = {"agent": "dummy", "type": "file", "status_file": str(status_file)}
    adapter = FenceAgents(cluster(method), "alpha")
    dummy = adapter.methods[0]

    async def scenario() -> None:
        meta = await adapter.run(dummy, "metadata")
        assert meta.exit_code == 0
        root = ET.fromstring(meta.stdout)
        assert root.get("name") == "fence_dummy"
        assert "status_file" in {p.get("name") for p in root.iter("parameter")}
        assert (await adapter.run(dummy, "monitor")).exit_code == 0
        assert (await adapter.run(dummy, "on")).exit_code == 0
        on = await adapter.run(dummy, "status")
        assert (on.exit_code, on.stdout.strip()) == (0, "Status: ON")

        ok, detail = await adapter.fence("beta")
        assert ok, detail
        assert detail == "method 1 (fence_dummy): off confirmed, status reports off"

    asyncio.run(scenario())
    assert status_file.read_text() == "off"


def test_fence_dummy_failure_is_reported() -> None:
    # type=fail never reaches "off"; power_timeout (the agent's own wait for the new state,
    # 20s by default) must stay below the method's timeout, or the timeout reports instead.
    method = {"agent": "fence_dummy", "type": "fail", "power_timeout": 1}
    ok, detail = asyncio.run(FenceAgents(cluster(method), "alpha").fence("beta"))
    assert not ok
    assert detail.startswith("method 1 (fence_dummy): off failed, exit 1:")
    assert "Timed out waiting to power OFF" in detail
