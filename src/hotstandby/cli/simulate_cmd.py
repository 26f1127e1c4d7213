"""`hotstandby simulate` (being written)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the subcommand to the parser."""
    p: argparse.ArgumentParser = sub.add_parser("simulate", help="(not yet available)")
    p.set_defaults(func=lambda _args: 2)
