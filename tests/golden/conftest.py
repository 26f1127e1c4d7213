"""`pytest tests/golden --update-golden` rewrites the .expected files from the engine's output."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register --update-golden."""
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/scenarios/*.expected instead of comparing (review the diff!)",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether to rewrite the expected files."""
    return bool(request.config.getoption("--update-golden", default=False))
