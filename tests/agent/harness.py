"""Two real agents joined by fake links in one event loop, and ways to wait on them.

Nothing here sleeps for a fixed time: `Pair.until` re-checks its condition after
every step of either agent (and when an agent's task ends), with a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from hotstandby.agent.loop import Adapters, Agent, Record
from hotstandby.agent.state_store import StateStore
from hotstandby.config import load_text
from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import Role

from .fakes import FakeArbiter, FakeFence, FakeLink, FakeResource, LinkPair, link_pair

SECRET = b"k" * 32
OTHER_SECRET = b"x" * 32
LINKS = ("net", "serial")
RESOURCES = ("vip", "web")  # in start order

CLUSTER_TOML = """
[cluster]
name = "unit"
secret_file = "/etc/hotstandby/secret"

[[node]]
name = "alpha"
priority = 200

[[node]]
name = "beta"
priority = 100

[[link]]
name = "net"
kind = "udp"
[link.endpoints]
alpha = "192.0.2.1"
beta = "192.0.2.2"

[[link]]
name = "serial"
kind = "serial"
[link.endpoints]
alpha = "/dev/ttyS0"
beta = "/dev/ttyS0"

[[resource]]
name = "vip"
kind = "service"
start_timeout = "{start_timeout}"
stop_timeout = "200ms"
monitor_timeout = "100ms"
monitor_interval = "50ms"
[resource.params]
unit = "vip.service"

[[resource]]
name = "web"
kind = "service"
start_timeout = "200ms"
stop_timeout = "200ms"
monitor_timeout = "100ms"
monitor_interval = "50ms"
[resource.params]
unit = "web.service"

[arbitration]
mode = "none"

[timers]
interval = "20ms"
warn_time = "60ms"
dead_time = "{dead_time}"
initial_dead = "300ms"
release = "100ms"
"""


def make_cluster(start_timeout: str = "200ms", dead_time: str = "100ms") -> Cluster:
    """The test cluster (heartbeat-only, small timers), through the real loader."""
    return load_text(CLUSTER_TOML.format(start_timeout=start_timeout, dead_time=dead_time))


class Node:
    """One agent and its fakes."""

    def __init__(
        self,
        name: str,
        cluster: Cluster,
        links: list[FakeLink],
        state_dir: Path,
        journal: list[str],
        secret: bytes = SECRET,
    ) -> None:
        self.name = name
        self.links = links
        self.resources = {r: FakeResource(r, journal=journal) for r in RESOURCES}
        for r in self.resources.values():
            r.label = f"{name}.{r.name}"
        self.fence = FakeFence()
        self.arbiter = FakeArbiter()
        self.store = StateStore(state_dir)
        self.self_fenced: list[str] = []
        adapters = Adapters(
            links=list(links),
            resources=dict(self.resources),
            fence=self.fence,
            arbiter=self.arbiter,
        )
        self.agent = Agent(
            cluster, name, secret, adapters, self.store, on_self_fence=self.self_fenced.append
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def role(self) -> Role:
        """The engine's role now."""
        return self.agent.engine.role

    def cut(self) -> None:
        """Lose everything this node sends and receives."""
        for link in self.links:
            link.dropping = True
            if link.other is not None:
                link.other.dropping = True

    def records(self, kind: str) -> list[Record]:
        """The history records of `kind` (a prefix)."""
        return [r for r in self.agent.history if r.kind.startswith(kind)]


class Pair:
    """alpha (priority 200) and beta (100), every link joined."""

    def __init__(
        self, state_root: Path, cluster: Cluster | None = None, beta_secret: bytes = SECRET
    ) -> None:
        self.cluster = cluster or make_cluster()
        self.links: dict[str, LinkPair] = {name: link_pair(name) for name in LINKS}
        self.journal: list[str] = []
        self.alpha = Node(
            "alpha",
            self.cluster,
            [p.a for p in self.links.values()],
            state_root / "alpha",
            self.journal,
        )
        self.beta = Node(
            "beta",
            self.cluster,
            [p.b for p in self.links.values()],
            state_root / "beta",
            self.journal,
            beta_secret,
        )
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        for node in self.nodes:
            node.agent.on_step.append(self.check)

    @property
    def nodes(self) -> tuple[Node, Node]:
        """Both nodes."""
        return (self.alpha, self.beta)

    def start(self, *nodes: Node) -> None:
        """Run the agents of `nodes` (default: both) as tasks."""
        for node in nodes or self.nodes:
            node.task = asyncio.create_task(node.agent.run())
            node.task.add_done_callback(lambda _t: self.check())

    async def stop(self) -> None:
        """Cancel every agent still running; re-raise the error of one that crashed."""
        tasks = [n.task for n in self.nodes if n.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            assert not pending, "an agent ignored its cancellation"
        self._raise_crash()

    def _raise_crash(self) -> None:
        for node in self.nodes:
            task = node.task
            if task is not None and task.done() and not task.cancelled():
                err = task.exception()
                if err is not None:
                    raise AssertionError(f"the agent of {node.name} crashed: {err!r}") from err

    def check(self) -> None:
        """Resolve the waiters whose condition now holds."""
        for predicate, future in self._waiters:
            if not future.done() and predicate():
                future.set_result(None)

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
        """Wait until `predicate()` holds after some step, or fail saying `what`."""
        self._raise_crash()
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            self._raise_crash()
            roles = ", ".join(f"{n.name} {n.role.value}" for n in self.nodes)
            raise AssertionError(f"timed out waiting for {what} ({roles})") from None
        finally:
            self._waiters.remove(entry)
        self._raise_crash()

    async def settled(self) -> None:
        """Wait for alpha active with its group up and beta standby."""
        await self.until(
            lambda: self.alpha.role is Role.ACTIVE and self.beta.role is Role.STANDBY,
            "alpha active, beta standby",
        )


def drive(
    state_root: Path,
    body: Callable[[Pair], Awaitable[None]],
    *,
    cluster: Cluster | None = None,
    beta_secret: bytes = SECRET,
    start: bool = True,
    timeout: float = 10.0,
) -> None:
    """Build a pair, run `body` against it in a fresh event loop, then stop both agents."""

    async def main() -> None:
        pair = Pair(state_root, cluster, beta_secret)
        if start:
            pair.start()
        try:
            await asyncio.wait_for(body(pair), timeout)
        finally:
            await pair.stop()

    asyncio.run(main())


async def next_event_of(agent: Agent, timeout: float = 2.0) -> object:
    """The next event the agent's adapters put on its queue (for tests of a lone agent)."""
    return await asyncio.wait_for(agent.queue.get(), timeout)


__all__ = [
    "OTHER_SECRET",
    "SECRET",
    "FakeArbiter",
    "FakeFence",
    "FakeResource",
    "Node",
    "Pair",
    "drive",
    "make_cluster",
]
