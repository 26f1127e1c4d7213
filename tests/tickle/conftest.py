"""Fixtures for the tickle lab tests: a fresh two-node lab per test, skipped without root."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, skip_reason

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "htk"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Nodes alpha and beta and a client on a bridged LAN, a private link, a serial line."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta"), disk_size=0) as built:
        yield built
