"""Fixtures of the replicated-mode adapter tests: one initdb'd template, a fresh pair per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pg_lab import skip_reason
from .pg_repl_lab import Pair, make_pair, make_template, remove_pair


@pytest.fixture(scope="module")
def template() -> Iterator[Path]:
    """One initdb'd cluster for the whole module."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    made = make_template()
    try:
        yield made
    finally:
        shutil.rmtree(made.parents[1], ignore_errors=True)


@pytest.fixture
def pair(template: Path) -> Iterator[Pair]:
    """alpha holding a cluster, beta empty; every server left is killed, the dir removed."""
    made = make_pair(template)
    try:
        yield made
    finally:
        remove_pair(made)
