"""Fixtures for two real agents in a lab: a fresh lab and cluster per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, skip_reason
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "tag"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, a serial line and a shared disk."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built


@pytest.fixture
def cluster(lab: Lab) -> LabCluster:
    """The cluster file written for the lab (fencing through the lab), agents not started."""
    c = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab)))
    c.write()
    return c
