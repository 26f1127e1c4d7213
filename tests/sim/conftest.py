"""Shared clusters for the simulator's tests."""

from __future__ import annotations

import pytest

from hotstandby.config import load
from hotstandby.core.cluster import Cluster

from .sim_fakes import EXAMPLE, make_cluster


@pytest.fixture
def cluster() -> Cluster:
    """The small test cluster."""
    return make_cluster()


@pytest.fixture
def example() -> Cluster:
    """The shipped classic-database example."""
    return load(EXAMPLE)
