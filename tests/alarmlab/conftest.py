"""Fixtures for the alarm and history lab tests: a two-node lab of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hotstandby.lab import Lab, skip_reason

#: Namespaces, state files and temp dirs of these tests start with this.
PREFIX = "hal7"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A two-node lab (alpha, beta) with a client, a serial line and a shared disk."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, nodes=("alpha", "beta")) as built:
        yield built
