"""The arbiter the agent builds for each arbitration mode."""

from __future__ import annotations

from hotstandby.agent.arbiter import build_arbiter
from hotstandby.agent.disk_arbiter import DiskArbiter
from hotstandby.config import load_text
from tests.config.config_samples import BASE, with_arbitration


def test_disk_mode_gets_the_disk_cells_with_a_timeout_below_the_loops() -> None:
    cluster = load_text(BASE, "c.toml")
    arbiter = build_arbiter(cluster, "alpha", b"s" * 32)
    assert isinstance(arbiter, DiskArbiter)
    assert arbiter.device == "/dev/sdc"
    assert (arbiter.node, arbiter.nodes) == ("alpha", cluster.node_names)
    assert arbiter.io_timeout == cluster.timers.lease / 5 < cluster.timers.lease / 4
    assert arbiter.status() == {"kind": "disk", "device": "/dev/sdc", "dropped": {}, "failed": {}}


def test_modes_without_an_arbiter_to_ask_get_none() -> None:
    cluster = load_text(with_arbitration('[arbitration]\nmode = "none"\n'), "c.toml")
    assert build_arbiter(cluster, "alpha", b"s" * 32) is None
