"""The `hotstandby` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module defines register(subparsers); each subcommand sets `func(args) -> int`.
MODULES = ("agent_cmd", "check_cmd", "simulate_cmd", "demo_cmd", "control_cmds", "witness_cmd")
# The daemon runs for months with its memory locked: it loads only its own module, not
# the simulator, the lab and the demo that the other subcommands bring in.
DAEMON = ("agent", "agent_cmd")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand, or only the daemon's when `command` is it."""
    parser = argparse.ArgumentParser(
        prog="hotstandby",
        description="A hot-standby failover manager: two nodes, many heartbeat links.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (DAEMON[1],) if command == DAEMON[0] else MODULES:
        module = importlib.import_module(f"hotstandby.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hotstandby` command."""
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
