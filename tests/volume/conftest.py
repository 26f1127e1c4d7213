"""Fixtures for the volume tests: loop-device volumes made per test, skipped without root."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from hotstandby.lab import skip_reason

from .volume_lab import PROGRAMS, VolumeLab

#: Temp dirs and backing files of these tests start with this.
TEST_PREFIX = "hvo"


@pytest.fixture
def vlab() -> Iterator[VolumeLab]:
    """A work dir for volumes, helpers and holders, all removed after the test."""
    reason = skip_reason()
    if reason is None:
        missing = [p for p in PROGRAMS if shutil.which(p) is None]
        if missing:
            reason = f"programs missing: {', '.join(missing)}"
    if reason is not None:
        pytest.skip(reason)
    built = VolumeLab(TEST_PREFIX)
    try:
        yield built
    finally:
        built.close()
