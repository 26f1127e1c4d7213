"""`hotstandby agent`: run this node's daemon in the foreground, and `hotstandby keygen`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.agent.alarms import AlarmConfigError, ChannelSpec, parse_channels
from hotstandby.agent.arbiter import build_arbiter
from hotstandby.agent.control import ControlServer, ControlSocketBusyError, default_socket
from hotstandby.agent.disk_arbiter import DiskArbiter
from hotstandby.agent.fence import build_fence
from hotstandby.agent.history import Rotation
from hotstandby.agent.links import build_links
from hotstandby.agent.loop import Adapters, Agent
from hotstandby.agent.recording import attach
from hotstandby.agent.resources import build_resources
from hotstandby.agent.state_store import StateStore
from hotstandby.agent.system import go_realtime, lock_memory, notify, watchdog_interval
from hotstandby.agent.watchdog import Watchdog, WatchdogError, arm_watchdog
from hotstandby.config import ConfigError, load
from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import AdminAction, AdminRequest
from hotstandby.wire.keys import SecretError, load_secret, write_new_secret

log = logging.getLogger("hotstandby.agent")

THREAD_STACK = 512 * 1024  # bytes per worker thread (disk I/O, state file, name lookups)


def secret_path(cluster: Cluster, config: Path) -> Path:
    """The secret file, relative paths taken from the configuration file's folder."""
    path = Path(cluster.secret_file)
    return path if path.is_absolute() else config.parent / path


def cmd_agent(args: argparse.Namespace) -> int:
    """Run the agent until a planned stop (SIGTERM) completes."""
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # Memory is locked below (mlockall, current and future): every thread's stack
    # would be made resident in full, 8 MiB each by default. Ours need little.
    threading.stack_size(THREAD_STACK)
    config = Path(args.config)
    try:
        cluster = load(config)
        node = args.node or socket.gethostname()
        if node not in cluster.node_names:
            names = ", ".join(cluster.node_names)
            print(
                f"hotstandby: {config}: no node {node!r} (nodes: {names}); use --node",
                file=sys.stderr,
            )
            return 2
        secret = load_secret(secret_path(cluster, config))
        # The adapters are built before the agent that records their steps.
        agents: list[Agent] = []

        def report(resource: str, message: str) -> None:
            for agent in agents:
                agent.resource_step(resource, message)

        adapters = Adapters(
            links=build_links(cluster, node),
            resources=build_resources(cluster, node, report),
            fence=build_fence(cluster, node),
            arbiter=build_arbiter(cluster, node, secret),
        )
        channels = parse_channels(cluster)
    except AlarmConfigError as err:
        print(f"hotstandby: {config}: {err}", file=sys.stderr)
        return 2
    except (ConfigError, SecretError, ValueError) as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    for problem in (go_realtime(), lock_memory()):
        if problem:
            log.warning("%s", problem)
    store = StateStore(Path(args.state_dir) / cluster.name)
    agent = Agent(cluster, node, secret, adapters, store)
    agents.append(agent)
    if isinstance(adapters.arbiter, DiskArbiter):
        agent.status_sections["arbiter"] = adapters.arbiter.status
    rotation = Rotation(max(1, args.history_max_kib) * 1024, max(0, args.history_keep))
    recording = (store.directory, channels, rotation)
    # Everything built so far (modules, configuration, adapters) lives as long as the
    # agent: keep it out of the collector's way, so a collection looks only at new objects.
    gc.collect()
    gc.freeze()
    return asyncio.run(_serve(agent, args.socket or default_socket(cluster.name), recording))


async def _serve(
    agent: Agent,
    socket_path: str,
    recording: tuple[Path, list[ChannelSpec], Rotation] | None = None,
) -> int:
    control = ControlServer(agent, socket_path)
    try:
        await control.start()
    except ControlSocketBusyError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    close_recording = attach(agent, *recording) if recording is not None else None
    loop = asyncio.get_running_loop()
    shutdown = AdminRequest("signal.shutdown", AdminAction.SHUTDOWN)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.submit, shutdown)
    _systemd_hooks(agent)
    # The optional HTTP interface (off unless [http] names this node).
    from hotstandby.agent.http.plan import start_http  # noqa: PLC0415

    web = await start_http(agent)
    arbitration = agent.cluster.arbitration
    dog: Watchdog | None = None
    planned = False
    try:
        # Armed last: from here on, only a planned stop that completes disarms it.
        try:
            dog = arm_watchdog(
                arbitration.watchdog_timeout, arbitration.watchdog_device, agent.on_step
            )
        except WatchdogError as err:
            print(f"hotstandby: {err}", file=sys.stderr)
            return 2
        await agent.run()
        planned = True
    finally:
        if dog is not None:
            await dog.stop(planned)
        if web is not None:
            await web.close()
        await control.close()
        if close_recording is not None:
            await close_recording()
        notify("STOPPING=1")
    return 0


@dataclass
class _NotifyState:
    ready: bool = False
    role: str = ""
    petted: float = float("-inf")


def _systemd_hooks(agent: Agent) -> None:
    """READY once booted, STATUS on every role change, WATCHDOG from the loop itself."""
    interval = watchdog_interval()
    state = _NotifyState()

    def hook() -> None:
        now = agent.clock()
        if not state.ready:
            notify("READY=1")
            state.ready = True
        role = agent.engine.role.value
        if role != state.role:
            state.role = role
            notify(f"STATUS={role} (epoch {agent.engine.epoch})")
        if interval is not None and now - state.petted >= interval:
            # Petted from the loop itself: a stalled loop stops the pets.
            state.petted = now
            notify("WATCHDOG=1")

    agent.on_step.append(hook)


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new shared secret, readable by root only."""
    try:
        write_new_secret(args.path, overwrite=args.force)
    except SecretError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    print(f"wrote a new secret to {args.path}; copy it to every node (same path, mode 0600)")
    return 0


def register(sub: Any) -> None:
    """Add `agent` and `keygen` to the parser."""
    p: argparse.ArgumentParser = sub.add_parser("agent", help="run this node's agent")
    p.add_argument("-c", "--config", default="/etc/hotstandby/cluster.toml")
    p.add_argument("--node", help="this node's name (default: the host name)")
    p.add_argument("--socket", help="the control socket (default: /run/hotstandby/NAME.sock)")
    p.add_argument("--state-dir", default="/var/lib/hotstandby")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    p.add_argument(
        "--history-max-kib",
        type=int,
        default=10 * 1024,
        help="rotate the event history file beyond this size, in KiB (default 10240)",
    )
    p.add_argument(
        "--history-keep", type=int, default=5, help="rotated history files kept (default 5)"
    )
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("keygen", help="write a new shared secret file")
    p.add_argument("path", help="where to write it, e.g. /etc/hotstandby/secret")
    p.add_argument("--force", action="store_true", help="replace an existing secret")
    p.set_defaults(func=cmd_keygen)
