"""Fixtures for lab tests: a fresh lab per test, skipped where the lab cannot run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, skip_reason

#: Namespaces, state files and temp dirs of these tests all start with this.
TEST_PREFIX = "tlab"


@pytest.fixture
def lab_required() -> None:
    """Skip the test, saying why, when not root or a needed program is missing."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def lab(lab_required: None) -> Iterator[Lab]:
    """A two-node lab with a client, a serial line and a shared disk; removed afterwards."""
    with Lab(TEST_PREFIX) as built:
        yield built
