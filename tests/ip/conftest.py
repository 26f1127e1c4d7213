"""Fixtures for the floating IP tests: a fresh two-node lab per test, skipped without root."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, skip_reason

#: Namespaces, state files and temp dirs of these tests all start with this.
TEST_PREFIX = "tip"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Nodes a and b and a client on one bridged LAN (no serial line, no disk)."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(TEST_PREFIX, serial=False, disk_size=0) as built:
        yield built
