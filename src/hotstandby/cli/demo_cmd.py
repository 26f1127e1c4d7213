"""`hotstandby demo`: the embedded example cluster through a power loss and the takeover."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from hotstandby.config import ConfigError, load
from hotstandby.demo import lab_demo, simulated
from hotstandby.lab import skip_reason

EXAMPLE = "classic-database.toml"


def example_path() -> Path:
    """The example cluster file shipped inside the package."""
    return Path(str(resources.files("hotstandby") / "examples" / EXAMPLE))


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    path = Path(args.config) if args.config else example_path()
    try:
        cluster = load(path)
    except ConfigError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    if not args.simulated and not args.config:
        problem = skip_reason()
        if problem is None:
            print("hotstandby demo: real agents in a lab on this machine\n", flush=True)
            return lab_demo.run(sys.stdout)
        print(f"the real two-node demo needs root and the lab's programs: {problem}")
        print("showing the same takeover in the simulator instead\n")
    print(f"hotstandby demo: cluster '{cluster.name}' from {path}")
    links = ", ".join(f"{x.name} ({x.kind.value})" for x in cluster.links)
    print(f"nodes {', '.join(cluster.node_names)}; links {links}; "
          f"arbitration {cluster.arbitration.mode.value}")  # fmt: skip
    print("mode: simulated (the real decision engine of each node in a simulated world)\n")
    return simulated.run(cluster, sys.stdout, power_loss_at=args.power_loss_at, seed=args.seed)


def register(sub: Any) -> None:
    """Add the subcommand to the parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo", help="the example cluster through a power loss of its active node"
    )
    p.add_argument("-c", "--config", help="another cluster file (default: the shipped example)")
    p.add_argument("--simulated", action="store_true", help="the simulator, even as root")
    p.add_argument("--seed", type=int, default=1, help="the simulator's seed")
    p.add_argument("--power-loss-at", type=float, default=5.0, help="seconds after boot")
    p.set_defaults(func=cmd_demo)
