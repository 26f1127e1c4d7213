"""The agent's side of tickles, with two real engines joined by fake links.

The floating address here is 127.0.0.77 and the connection a real one over loopback: the
active agent reads it from this process's own /proc/self/net/tcp.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hotstandby.agent import loop
from hotstandby.core.messages import AdminAction, Role
from hotstandby.wire.connlist import MAGIC, Chunk, Connection

from ..agent.fakes import FakeResource
from ..agent.harness import Node, Pair, drive

# An address of the loopback network no other test uses: the host may hold many other
# connections on 127.0.0.1 (the whole suite runs in one process), and the list is of them all.
LOOPBACK = IPv4Address("127.0.0.77")


class TickledFake(FakeResource):
    """A fake resource holding floating addresses, as the ip kind does."""

    def __init__(self, name: str, addresses: tuple[IPv4Address, ...], journal: list[str]) -> None:
        super().__init__(name, journal=journal)
        self.tickle_addresses = addresses


@pytest.fixture
def connection() -> Iterator[int]:
    """A real established connection on LOOPBACK; yields the server's port."""
    with socket.socket() as server:
        server.bind((str(LOOPBACK), 0))
        server.listen()
        client = socket.create_connection(
            server.getsockname(), timeout=5, source_address=(str(LOOPBACK), 0)
        )
        accepted, _ = server.accept()
        with client, accepted:
            yield server.getsockname()[1]


@pytest.fixture(autouse=True)
def quick_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists read every 50 ms, not every second: the tests wait for fewer of them."""
    monkeypatch.setattr(loop, "CONNLIST_INTERVAL", 0.05)


def tickled(p: Pair, addresses: tuple[IPv4Address, ...] = (LOOPBACK,)) -> None:
    """Give both nodes' vip the floating addresses (before the agents start)."""
    for node in p.nodes:
        fake = TickledFake("vip", addresses, p.journal)
        fake.label = f"{node.name}.vip"
        node.resources["vip"] = fake
        node.agent.adapters.resources["vip"] = fake


def knows(node: Node, peer: str, port: int) -> bool:
    """Whether node remembers a connection of peer's on LOOPBACK:port."""
    return any(c.local_port == port for c in node.agent.connlists.connections(peer))


def lists_sent(node: Node, link: str) -> int:
    """How many connection lists node sent on `link`, of its recent messages."""
    (found,) = (lk for lk in node.links if lk.name == link)
    return sum(1 for m in found.sent if m.startswith(MAGIC))


def test_the_standby_learns_the_list_and_tickles_after_a_takeover(
    tmp_path: Path, connection: int
) -> None:
    async def body(p: Pair) -> None:
        tickled(p)
        p.start()
        await p.settled()
        await p.until(lambda: knows(p.beta, "alpha", connection), "beta learns the list", 10)
        # Over the UDP link only, never the serial line; the standby sends none.
        assert lists_sent(p.alpha, "net") >= 1
        assert lists_sent(p.alpha, "serial") == 0
        assert lists_sent(p.beta, "net") == 0
        status = p.beta.agent.status_sections["connections"]()
        assert status["known"]["alpha"] >= 2  # the server's side and the client's
        p.alpha.cut()
        await p.until(lambda: bool(p.beta.records("resource.tickle")), "beta tickles", 10)
        (record,) = p.beta.records("resource.tickle")
        count = record.data["connections"]
        assert count == status["known"]["alpha"]
        assert f"vip: tickled {count} client connection(s) of alpha" in record.message
        # Tickled once: the list of what alpha held on the address is forgotten.
        assert not knows(p.beta, "alpha", connection)

    drive(tmp_path, body, start=False, timeout=20)


def test_a_switchover_tickles_nobody(tmp_path: Path, connection: int) -> None:
    async def body(p: Pair) -> None:
        tickled(p)
        p.start()
        await p.settled()
        await p.until(lambda: knows(p.beta, "alpha", connection), "beta learns the list", 10)
        # A releasing alpha soon sends an empty list; this one (a far newer generation of
        # alpha's boot) stays, so only the start's `released` keeps beta from tickling it.
        stale = (Connection(LOOPBACK, connection, LOOPBACK, 9),)
        boot = p.alpha.agent.boot_id
        assert p.beta.agent.connlists.add(Chunk("alpha", boot, 1, 10**9, 0, 1, stale))
        reply = await p.alpha.agent.admin(AdminAction.SWITCHOVER)
        assert reply.ok
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta active")
        # alpha stopped cleanly: its connections were closed or will fail by themselves.
        await p.until(lambda: knows(p.alpha, "beta", connection), "alpha learns beta's list")
        assert p.beta.agent.connlists.connections("alpha") == stale
        assert not p.beta.records("resource.tickle")

    drive(tmp_path, body, start=False, timeout=20)


def test_without_tickled_addresses_no_list_is_sent(tmp_path: Path, connection: int) -> None:
    async def body(p: Pair) -> None:
        tickled(p, addresses=())
        p.start()
        await p.settled()
        p.alpha.cut()
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        assert lists_sent(p.alpha, "net") == 0
        assert p.beta.agent.status_sections["connections"]() == {"published": 0, "known": {}}
        assert not p.beta.records("resource.tickle")

    drive(tmp_path, body, start=False, timeout=20)


def test_forged_and_replayed_lists_are_dropped_and_counted(tmp_path: Path, connection: int) -> None:
    async def body(p: Pair) -> None:
        tickled(p)
        p.start()
        await p.settled()
        await p.until(lambda: lists_sent(p.alpha, "net") >= 1, "alpha sends a list")
        (net,) = (lk for lk in p.beta.links if lk.name == "net")
        first = next(m for m in p.alpha.links[0].sent if m.startswith(MAGIC))
        net.receive(first)  # already heard: a replay
        net.receive(first[:-1] + bytes([first[-1] ^ 1]))  # forged
        dropped = net.stats.dropped
        assert dropped.get("replayed", 0) >= 1 and dropped.get("bad_mac", 0) == 1
        assert any("connection list" in r.message for r in p.beta.records("link.rejected"))

    drive(tmp_path, body, start=False, timeout=20)
