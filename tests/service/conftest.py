"""Fixtures of the service and ocf tests: one event loop per test, closed after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .svc_helpers import close_loop

#: Namespaces, interfaces and temp dirs of these tests start with this.
PREFIX = "hsv"


@pytest.fixture(autouse=True)
def _loop() -> Iterator[None]:
    yield
    close_loop()
