"""Two real agents with a replicated resource (a fake server shared by both): the wiring.

The core's rules are tested in tests/core/test_replication.py; here the agent carries out
RequireReplicas and FollowPrimary through the adapter, feeds the monitor's replication
report back, and shows the result in status, `why` and the HTTP health endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from hotstandby.agent.http.health import add_health_routes
from hotstandby.agent.http.server import HttpServer
from hotstandby.agent.ports import ActionResult, ReplicatedAdapter
from hotstandby.agent.replication_status import explain, replication_view
from hotstandby.config import load_text
from hotstandby.core.messages import (
    Action,
    AdminAction,
    FollowDone,
    Outcome,
    ReplicaInfo,
    ReplicasRequired,
    ReplicationReport,
    Role,
)

from .fakes import FakeResource
from .harness import CLUSTER_TOML, Pair, drive

REPLICATED_TOML = (
    CLUSTER_TOML.format(start_timeout="200ms", dead_time="100ms")
    .replace('unit = "web.service"', 'mode = "replicated"')
    .replace('name = "web"\nkind = "service"', 'name = "web"\nkind = "postgres"')
    + '\n[replication]\nresource = "web"\ndegrade_after = "1s"\nfollow_interval = "50ms"\n'
)


@dataclass
class FakeServers:
    """What both nodes' database servers are doing."""

    primary: str | None = None
    following: dict[str, str | None] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    lsn: int = 100


class FakeReplicated(FakeResource):
    """A replicated resource over FakeServers; start makes this node's server the primary."""

    follow_timeout = 2.0

    def __init__(self, name: str, node: str, servers: FakeServers, journal: list[str]) -> None:
        super().__init__(name, journal=journal)
        self.node = node
        self.servers = servers
        self.last_report: ReplicationReport | None = None
        self.required_calls: list[tuple[str, ...]] = []
        self.follow_calls: list[str | None] = []

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        result = await super().run(action, released=released)
        s = self.servers
        if result.outcome is Outcome.OK and action is Action.START:
            s.primary = self.node
            s.following.pop(self.node, None)
        if result.outcome is Outcome.OK and action is Action.STOP and s.primary == self.node:
            s.primary = None
        if result.outcome is Outcome.OK and s.primary == self.node:
            s.lsn += 10
            replicas = tuple(
                ReplicaInfo(n, "streaming", n in s.required, s.lsn)
                for n, p in s.following.items()
                if p == self.node
            )
            self.last_report = ReplicationReport(self.name, s.lsn, replicas, s.required)
        return result

    async def require(self, nodes: tuple[str, ...]) -> ReplicasRequired:
        self.required_calls.append(nodes)
        self.servers.required = nodes
        return ReplicasRequired(self.name, nodes, True, self.servers.lsn)

    async def follow(self, primary: str | None) -> FollowDone:
        self.follow_calls.append(primary)
        if primary is not None:
            self.servers.following[self.node] = primary
        return FollowDone(self.name, primary, True, streaming=primary is not None)

    async def health(self) -> dict[str, object]:
        s = self.servers
        mine = s.primary == self.node
        return {"running": True, "primary": mine, "replica": not mine,
                "streaming": s.following.get(self.node) == s.primary, "lag_bytes": 0,
                "detail": ""}  # fmt: skip


def replicated_pair(tmp_path: Path, body) -> None:  # type: ignore[no-untyped-def]
    """`body(pair, servers, adapters)` against a pair whose "web" is replicated."""
    servers = FakeServers()

    async def main(p: Pair) -> None:
        adapters = {}
        for node in p.nodes:
            fake = FakeReplicated("web", node.name, servers, p.journal)
            node.agent.adapters.resources["web"] = fake
            adapters[node.name] = fake
        p.start()
        await body(p, servers, adapters)

    drive(tmp_path, main, cluster=load_text(REPLICATED_TOML), start=False)


def test_the_fake_is_a_replicated_adapter() -> None:
    assert isinstance(FakeReplicated("web", "alpha", FakeServers(), []), ReplicatedAdapter)


def test_the_primary_requires_the_replica_once_it_follows(tmp_path: Path) -> None:
    async def body(p: Pair, servers: FakeServers, fakes: dict[str, FakeReplicated]) -> None:
        await p.settled()
        await p.until(lambda: servers.required == ("beta",), "alpha requires beta")
        alpha, beta = p.alpha.agent, p.beta.agent
        assert alpha.engine.repl is not None
        await p.until(
            lambda: alpha.engine.repl.promotable_list() == ("beta",),  # type: ignore[union-attr]
            "beta listed promotable",
        )
        await p.until(beta.engine.replica_word, "beta believes it is promotable")
        assert "alpha" in fakes["beta"].follow_calls
        assert fakes["alpha"].required_calls[0] == ()  # first: nothing until beta streams
        view = replication_view(alpha, alpha.clock())
        assert view is not None and view["primary"] and view["required"] == ["beta"]
        lines = explain(view)
        assert any("commits wait for: beta; promotable: beta" in line for line in lines)
        standby = explain(replication_view(beta, beta.clock()))
        assert any("copy may be promoted" in line for line in standby)
        assert any("copy follows alpha: streaming" in line for line in standby)
        assert p.alpha.records("replication") and p.beta.records("replica")

    replicated_pair(tmp_path, body)


def test_health_endpoints_answer_for_load_balancers(tmp_path: Path) -> None:
    async def body(p: Pair, servers: FakeServers, fakes: dict[str, FakeReplicated]) -> None:
        await p.settled()
        await p.until(lambda: servers.required == ("beta",), "alpha requires beta")
        await p.until(p.beta.agent.engine.replica_word, "beta promotable")
        got: dict[tuple[str, str], int] = {}
        for node in p.nodes:
            server = HttpServer(node.agent, "127.0.0.1", 0, None, extra=[add_health_routes])
            await server.start()
            try:
                url = f"http://127.0.0.1:{server.bound_port}"
                async with aiohttp.ClientSession(url) as client:
                    for path in ("primary", "replica", "promotable", "replica?max_lag=0"):
                        async with client.get(f"/health/{path}") as r:
                            got[(node.name, path)] = r.status
                            answer = await r.json()
                            assert answer["node"] == node.name
                    async with client.get("/health/replica?max_lag=x") as r:
                        assert r.status == 400
            finally:
                await server.close()
        assert got == {
            ("alpha", "primary"): 200,
            ("alpha", "replica"): 503,
            ("alpha", "promotable"): 503,
            ("alpha", "replica?max_lag=0"): 503,
            ("beta", "primary"): 503,
            ("beta", "replica"): 200,
            ("beta", "promotable"): 200,
            ("beta", "replica?max_lag=0"): 200,
        }

    replicated_pair(tmp_path, body)


def test_a_switchover_moves_the_primary_and_the_old_one_follows(tmp_path: Path) -> None:
    async def body(p: Pair, servers: FakeServers, fakes: dict[str, FakeReplicated]) -> None:
        await p.settled()
        await p.until(p.beta.agent.engine.replica_word, "beta promotable")
        reply = await p.alpha.agent.admin(AdminAction.SWITCHOVER)
        assert reply.ok, reply.message
        await p.until(
            lambda: p.beta.role is Role.ACTIVE and servers.following.get("alpha") == "beta",
            "beta primary, alpha following it",
        )
        await p.until(lambda: servers.required == ("alpha",), "beta requires alpha")

    replicated_pair(tmp_path, body)
