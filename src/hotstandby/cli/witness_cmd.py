"""`hotstandby witness`: the lease service for a third machine (see `hotstandby.witness`).

It reads the cluster file the nodes use: the cluster name, the secret file and the
lease timers all come from there, so the witness and the nodes cannot disagree on the
span of a lease. The secret file must be copied to the witness like to a node.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hotstandby.agent.witness_client import split_address
from hotstandby.config import ConfigError, load
from hotstandby.wire.keys import SecretError, load_secret
from hotstandby.witness.server import WitnessServer
from hotstandby.witness.state import StateFileError


def register(sub: Any) -> None:
    """Add `witness` to the parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "witness",
        help="run the lease service on a third machine",
        description="Grant the cluster's lease to one node at a time over authenticated UDP. "
        "Runs on a machine that is neither node; needs the cluster file and its secret file.",
    )
    p.add_argument("-c", "--config", default="/etc/hotstandby/cluster.toml")
    p.add_argument(
        "--listen",
        help="ADDR:PORT to listen on ([v6]:PORT for IPv6); default: the cluster file's witness",
    )
    p.add_argument("--state-dir", default="/var/lib/hotstandby")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    p.set_defaults(func=cmd_witness)


def cmd_witness(args: argparse.Namespace) -> int:
    """Run the witness until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = Path(args.config)
    try:
        cluster = load(config)
        listen = args.listen or cluster.arbitration.witness
        if listen is None:
            print(f"hotstandby: {config}: no [arbitration] witness; use --listen", file=sys.stderr)
            return 2
        try:
            host, port = split_address(listen)
        except ValueError:
            print(f"hotstandby: --listen: expected ADDR:PORT, found {listen!r}", file=sys.stderr)
            return 2
        path = Path(cluster.secret_file)
        secret = load_secret(path if path.is_absolute() else config.parent / path)
        state_dir = Path(args.state_dir) / cluster.name
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        server = WitnessServer(cluster, secret, state_dir / "witness.json")
    except (ConfigError, SecretError, StateFileError) as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(server, host, port))


async def _serve(server: WitnessServer, host: str, port: int) -> int:
    try:
        await server.start(host, port)
    except OSError as err:
        print(f"hotstandby: cannot listen on {host} port {port}: {err}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()
        logging.getLogger("hotstandby.witness").info(
            "stopped; answered %d, dropped %s", server.answered, server.dropped or "none"
        )
    return 0
