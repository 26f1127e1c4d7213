"""The witness server and the agent's client over real UDP on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from hotstandby.agent.arbiter import build_arbiter
from hotstandby.agent.witness_client import WitnessClient
from hotstandby.core.cluster import ArbitrationMode, Cluster, Timers
from hotstandby.core.messages import ArbiterOutcome, ArbiterRequest
from hotstandby.witness.protocol import Kind, Request, Verdict, WitnessCodec
from hotstandby.witness.server import WitnessServer, lease_span
from tests.core.pair import make_cluster

SECRET = b"s" * 32
CLAIM, RENEW, RELEASE = ArbiterRequest.CLAIM, ArbiterRequest.RENEW, ArbiterRequest.RELEASE


def witness_cluster(address: str = "127.0.0.1:9") -> Cluster:
    """A witness cluster with a 3 s lease whose witness is at `address`."""
    timers = Timers(initial_dead=2.0, lease=3.0, release=0.5)
    cluster = make_cluster(ArbitrationMode.WITNESS, timers=timers, watchdog=0.0)
    return replace(cluster, arbitration=replace(cluster.arbitration, witness=address))


class Setup:
    """A witness on a free loopback port and a client per node."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.server: WitnessServer | None = None
        self.address = ""
        self.clients: list[WitnessClient] = []

    async def start(self, *, hold_off: bool = True) -> WitnessServer:
        port = int(self.address.rpartition(":")[2]) if self.address else 0
        server = WitnessServer(witness_cluster(), SECRET, self.state)
        if not hold_off:
            # A first start waits one span too (it cannot tell itself from a witness
            # that lost its file); tests of other things skip that wait.
            table = replace(server.ledger.table, quiet_until=0.0)
            server.ledger = replace(server.ledger, table=table)
        host, bound = await server.start("127.0.0.1", port)
        self.address = f"{host}:{bound}"
        self.server = server
        return server

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def client(self, node: str) -> WitnessClient:
        built = build_arbiter(witness_cluster(self.address), node, SECRET)
        assert isinstance(built, WitnessClient)
        self.clients.append(built)
        return built

    def close(self) -> None:
        self.stop()
        for c in self.clients:
            c.close()


async def outcome(client: WitnessClient, request: ArbiterRequest, at: float = 1.0) -> str:
    """The one outcome of a request, with its detail; checks sent_at echoes `at`."""
    answers = await client.ask(request, 3, at, None)
    assert len(answers) == 1 and answers[0].sent_at == at
    return f"{answers[0].outcome.value} {answers[0].detail}".strip()


async def recv(sock: socket.socket) -> bytes:
    """One datagram from a non-blocking socket, within 2 s."""
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 512), 2)


def run(coro_fn: object) -> None:
    asyncio.run(coro_fn)  # type: ignore[arg-type]


def test_one_holder_at_a_time_and_release_frees_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            await s.start(hold_off=False)
            alpha, beta = s.client("alpha"), s.client("beta")
            assert await outcome(alpha, CLAIM) == "granted"
            assert (await outcome(beta, CLAIM)).startswith("denied alpha holds the lease for")
            assert await outcome(alpha, RENEW) == "renewed"
            assert await alpha.ask(RELEASE, 3, 2.0, None) == []
            assert await outcome(beta, CLAIM) == "granted"
            assert (await outcome(alpha, RENEW)).startswith("denied beta holds")
            saved = json.loads(s.state.read_text())
            assert saved["holder"] == "beta" and saved["cluster"] == "test"
        finally:
            s.close()

    run(scenario())


def test_a_restarted_witness_keeps_the_lease_of_its_holder(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            await s.start(hold_off=False)
            alpha, beta = s.client("alpha"), s.client("beta")
            assert await outcome(alpha, CLAIM) == "granted"
            s.stop()
            # While it is down, both get "unreachable", never a denial or a grant.
            assert (await outcome(beta, CLAIM)).startswith("unreachable no answer")
            await s.start()
            assert (await outcome(beta, CLAIM)).startswith("denied alpha holds")
            assert await outcome(alpha, RENEW) == "renewed"
        finally:
            s.close()

    run(scenario())


def test_a_restarted_witness_grants_nobody_new_for_one_span(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            server = await s.start()
            beta = s.client("beta")
            started = asyncio.get_running_loop().time()
            assert "restarted recently" in await outcome(beta, CLAIM)
            span = lease_span(server.cluster)
            while asyncio.get_running_loop().time() - started < span + 0.1:
                await asyncio.sleep(0.05)
            assert await outcome(beta, CLAIM) == "granted"
        finally:
            s.close()

    # No state file at all: a witness that lost it behaves as one that just restarted.
    run(scenario())


def test_requests_are_applied_in_number_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            server = await s.start(hold_off=False)
            alpha = s.client("alpha")
            assert await outcome(alpha, CLAIM) == "granted"
            codec = WitnessCodec("test", SECRET)
            host, port = s.address.rsplit(":", 1)
            n = alpha.number
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
                raw.setblocking(False)
                raw.connect((host, int(port)))
                # A later RENEW arrives before an earlier RELEASE (reordered on the way):
                # the RELEASE is stale and must not free the lease alpha renewed.
                raw.send(codec.encode_request(Request("alpha", n + 10, Kind.RENEW, 3)))
                assert codec.decode_answer(await recv(raw)).verdict is Verdict.RENEWED
                raw.send(codec.encode_request(Request("alpha", n + 5, Kind.RELEASE, 3)))
                stale = codec.decode_answer(await recv(raw))
                assert (stale.verdict, stale.last) == (Verdict.STALE, n + 10)
                assert server.ledger.table.holder == "alpha"
                # The same request again (a retry whose answer was lost): answered, not reapplied.
                raw.send(codec.encode_request(Request("alpha", n + 10, Kind.RENEW, 3)))
                assert codec.decode_answer(await recv(raw)).verdict is Verdict.RENEWED
                assert server.dropped == {"stale": 1, "repeated": 1}
            # The client's own number is now behind: it is told so, and renumbers.
            assert await outcome(alpha, RENEW) == "renewed"
            assert alpha.number > n + 10
        finally:
            s.close()

    run(scenario())


def test_forged_and_foreign_datagrams_are_dropped_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            server = await s.start()
            host, port = s.address.rsplit(":", 1)
            forged = WitnessCodec("test", b"f" * 32).encode_request(
                Request("alpha", 1, Kind.CLAIM, 1)
            )
            other = WitnessCodec("other", SECRET).encode_request(Request("alpha", 1, Kind.CLAIM, 1))
            stranger = WitnessCodec("test", SECRET).encode_request(
                Request("mallory", 1, Kind.CLAIM, 1)
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
                for data in (forged, other, stranger, forged[:20]):
                    raw.sendto(data, (host, int(port)))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 2
            while sum(server.dropped.values()) < 4 and loop.time() < deadline:
                await asyncio.sleep(0.01)
            assert server.dropped == {
                "bad_mac": 1,
                "wrong_cluster": 1,
                "unknown_node": 1,
                "truncated": 1,
            }
            assert server.answered == 0 and server.ledger.table.holder is None
        finally:
            s.close()

    run(scenario())


def test_a_grant_that_cannot_be_written_is_not_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "gone" / "witness.json")
        try:
            server = await s.start(hold_off=False)
            alpha = s.client("alpha")
            assert (await outcome(alpha, CLAIM)).startswith("unreachable")
            assert server.write_errors >= 1 and server.ledger.table.holder is None
        finally:
            s.close()

    run(scenario())


def test_no_witness_is_unreachable_within_the_budget(tmp_path: Path) -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
            hole.bind(("127.0.0.1", 0))  # bound, never answers
            port = hole.getsockname()[1]
            client = build_arbiter(witness_cluster(f"127.0.0.1:{port}"), "alpha", SECRET)
            assert isinstance(client, WitnessClient)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            answers = await client.ask(RENEW, 1, 5.0, None)
            took = loop.time() - t0
            client.close()
        assert [a.outcome for a in answers] == [ArbiterOutcome.UNREACHABLE]
        assert answers[0].sent_at == 5.0 and "5 tries" in answers[0].detail
        assert took < 3.0 / 4  # inside the loop's own timeout for a request

    run(scenario())


def test_only_a_witness_cluster_gets_a_witness_client() -> None:
    assert build_arbiter(make_cluster(ArbitrationMode.FENCE), "alpha", SECRET) is None
    assert isinstance(build_arbiter(witness_cluster(), "alpha", SECRET), WitnessClient)


@pytest.mark.parametrize("request_kind", [ArbiterRequest.ACK])
def test_a_disk_request_is_no_witness_business(request_kind: ArbiterRequest) -> None:
    client = build_arbiter(witness_cluster(), "alpha", SECRET)
    assert client is not None
    assert asyncio.run(client.ask(request_kind, 1, 1.0, None)) == []


def test_concurrent_asks_of_one_node_take_effect_in_the_order_asked(tmp_path: Path) -> None:
    async def scenario() -> None:
        s = Setup(tmp_path / "witness.json")
        try:
            server = await s.start(hold_off=False)
            alpha = s.client("alpha")
            assert await outcome(alpha, CLAIM) == "granted"
            # The agent loop runs each request in a task of its own: a RENEW still under
            # way when the RELEASE is asked must not land after it.
            for _ in range(5):
                renew = asyncio.create_task(alpha.ask(RENEW, 3, 2.0, None))
                release = asyncio.create_task(alpha.ask(RELEASE, 3, 2.1, None))
                assert [a.outcome for a in await renew] == [ArbiterOutcome.RENEWED]
                assert await release == []
                assert server.ledger.table.holder is None
                assert await outcome(alpha, CLAIM) == "granted"
        finally:
            s.close()

    run(scenario())
