"""The `hotstandby` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines register(subparsers); each subcommand sets `func(args) -> int`.
MODULES = ("agent_cmd", "check_cmd", "simulate_cmd", "demo_cmd", "control_cmds")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hotstandby",
        description="A hot-standby failover manager: two nodes, many heartbeat links.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in MODULES:
        module = importlib.import_module(f"hotstandby.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hotstandby` command."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
