"""The HTTP interface of a real agent (two engines joined by fake links), over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from hotstandby.agent.http import routes
from hotstandby.agent.http.plan import plan_http, start_http
from hotstandby.agent.http.server import HttpServer
from hotstandby.agent.http.token import TokenError, load_token
from hotstandby.agent.status import snapshot
from hotstandby.config import load_text
from hotstandby.core.messages import Role

from ..agent.harness import CLUSTER_TOML, Pair, drive

TOKEN = b"t0ken-" + b"x" * 26


@asynccontextmanager
async def serving(
    p: Pair, token: bytes | None = TOKEN, **kwargs: object
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """alpha's HTTP interface on a free loopback port, and a client session for it."""
    server = HttpServer(p.alpha.agent, "127.0.0.1", 0, token, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.bound_port}") as client:
            yield f"http://127.0.0.1:{server.bound_port}", client
    finally:
        await server.close()


async def closed_unanswered(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection without a word (an RST counts)."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except ConnectionResetError:
        return True


def run(tmp_path: Path, body: Callable[[Pair, aiohttp.ClientSession], Awaitable[None]]) -> None:
    """`body` against a settled pair and alpha's HTTP interface."""

    async def main(p: Pair) -> None:
        await p.settled()
        async with serving(p) as (_, client):
            await body(p, client)

    drive(tmp_path, main)


def test_the_page_and_its_files_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        async with client.get("/") as r:
            assert r.status == 200
            assert r.content_type == "text/html"
            page = await r.text()
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert '<script src="/app.js"' in page and 'href="/style.css"' in page
        for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css")):
            async with client.get(path) as r:
                assert (r.status, r.content_type) == (200, kind)
                assert len(await r.read()) > 1000
        # Nothing else of the package is reachable.
        async with client.get("/static/../routes.py") as r:
            assert r.status == 404

    run(tmp_path, body)


def test_status_is_the_snapshot_and_info_the_configuration(tmp_path: Path) -> None:
    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        async with client.get("/api/status") as r:
            status = await r.json()
        expected = snapshot(p.alpha.agent, p.alpha.agent.clock())
        assert set(status) == {*expected, "at"}
        assert (status["node"], status["role"]) == ("alpha", "active")
        assert status["peers"][0]["name"] == "beta"
        assert status["resources"] == json.loads(json.dumps(expected["resources"]))
        async with client.get("/api/info") as r:
            info = await r.json()
        assert [n["name"] for n in info["nodes"]] == ["alpha", "beta"]
        assert [(x["name"], x["kind"]) for x in info["links"]] == [
            ("net", "udp"),
            ("serial", "serial"),
        ]
        assert info["actions"] is True

    run(tmp_path, body)


def test_events_by_limit_and_since(tmp_path: Path) -> None:
    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        history = list(p.alpha.agent.history)
        assert len(history) >= 3
        async with client.get("/api/events", params={"limit": "2"}) as r:
            events = (await r.json())["events"]
        assert events == [h.as_json() for h in history[-2:]]
        async with client.get("/api/events", params={"since": str(history[-2].at)}) as r:
            later = (await r.json())["events"]
        assert later == [h.as_json() for h in history if h.at > history[-2].at]
        for bad in ({"limit": "x"}, {"limit": "-1"}, {"since": "soon"}, {"limit": "99999"}):
            async with client.get("/api/events", params=bad) as r:
                assert r.status == 400, bad

    run(tmp_path, body)


def test_metrics_are_served_unless_turned_off(tmp_path: Path) -> None:
    async def main(p: Pair) -> None:
        await p.settled()
        async with serving(p) as (_, client), client.get("/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
        assert 'hotstandby_role{node="alpha",role="active"} 1.0' in text
        assert "hotstandby_takeover_duration_seconds_bucket" in text
        async with serving(p, metrics=False) as (_, client), client.get("/metrics") as r:
            assert r.status == 404

    drive(tmp_path, main)


def test_actions_need_the_token(tmp_path: Path) -> None:
    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        async with client.post("/api/switchover") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with client.post("/api/switchover", headers={"Authorization": "Basic eDp5"}) as r:
            assert r.status == 401
        wrong = {"Authorization": "Bearer " + "y" * len(TOKEN)}
        async with client.post("/api/switchover", headers=wrong) as r:
            assert r.status == 403
        assert p.alpha.role is Role.ACTIVE  # nothing happened
        good = {"Authorization": "Bearer " + TOKEN.decode()}
        async with client.post("/api/shutdown", headers=good) as r:
            assert r.status == 404  # not from the page: root's control socket only
        async with client.post("/api/standby", headers=good, data="not json") as r:
            assert r.status == 400
        async with client.post("/api/switchover", headers=good, json={}) as r:
            assert r.status == 200
            answer = await r.json()
        assert answer["ok"] is True and "beta" in answer["message"]
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over the group")
        # The engine's refusal is a conflict, with its reason.
        async with client.post("/api/online", headers=good, json={"target": "gamma"}) as r:
            answer = await r.json()
            assert r.status == 409 and answer["ok"] is False and answer["message"]

    run(tmp_path, body)


def test_without_a_token_file_the_interface_is_read_only(tmp_path: Path) -> None:
    async def main(p: Pair) -> None:
        await p.settled()
        async with serving(p, token=None) as (_, client):
            async with client.get("/api/info") as r:
                assert (await r.json())["actions"] is False
            headers = {"Authorization": "Bearer anything-at-all-really"}
            async with client.post("/api/switchover", headers=headers) as r:
                assert r.status == 403
                assert "no token_file" in await r.text()
            async with client.post("/api/switchover") as r:
                assert r.status == 401

    drive(tmp_path, main)


def test_the_event_stream_carries_new_records_as_they_happen(tmp_path: Path) -> None:
    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        async with client.get("/api/events/stream") as r:
            assert r.content_type == "text/event-stream"
            assert (await r.content.readline()).startswith(b"retry:")
            assert len(p.alpha.agent.followers) == 1
            p.alpha.agent.resource_step("web", "a step an operator should see")
            while True:
                line = await asyncio.wait_for(r.content.readline(), 5)
                if line.startswith(b"data: "):
                    break
            record = json.loads(line[6:])
            assert record["kind"] == "resource.step"
            assert record["message"] == "web: a step an operator should see"
        # The client went away: its follower queue goes with it.
        await p.until(lambda: not p.alpha.agent.followers, "the stream to end", 5)

    run(tmp_path, body)


def test_slow_and_idle_clients_do_not_hold_up_others(tmp_path: Path) -> None:
    async def main(p: Pair) -> None:
        await p.settled()
        async with serving(p, idle_timeout=0.5) as (url, client):
            port = int(url.rsplit(":", 1)[1])
            slow = []
            for _ in range(100):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /api/status HTTP/1.1\r\nHost: x\r\n")  # never finished
                slow.append((reader, writer))
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
            # Answered while every slow request is still open.
            async with asyncio.timeout(10), client.get("/api/status") as r:
                assert r.status == 200
            # A connection that never sends a request is closed once idle.
            assert await closed_unanswered(idle_reader)
            idle_writer.close()
            # An oversized request line is refused, not buffered.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            status = await asyncio.wait_for(reader.readline(), 5)
            assert b" 4" in status  # a 4xx answer
            writer.close()
            for _, w in slow:
                w.close()
            # A body over the limit is refused before the action runs.
            headers = {"Authorization": "Bearer " + TOKEN.decode()}
            answer: int | None = None
            try:
                async with client.post("/api/standby", headers=headers, data=b"x" * 20_000) as r:
                    answer = r.status
            except aiohttp.ClientError:
                pass  # the server answered and closed while the body was still being sent
            assert answer in (413, None)
            assert p.alpha.role is Role.ACTIVE

    drive(tmp_path, main)


def test_event_streams_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "MAX_STREAMS", 1)

    async def body(p: Pair, client: aiohttp.ClientSession) -> None:
        async with client.get("/api/events/stream") as first:
            assert first.status == 200
            await first.content.readline()
            async with client.get("/api/events/stream") as second:
                assert second.status == 503
                assert second.headers["Retry-After"] == "5"

    run(tmp_path, body)


def free_port() -> int:
    """A TCP port nothing listens on just now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("case", ["serves", "cannot bind", "bad token", "other node", "off"])
def test_the_agent_starts_its_http_interface_or_runs_without_it(tmp_path: Path, case: str) -> None:
    token = tmp_path / "token"
    token.write_text("a-good-long-token-value\n")
    token.chmod(0o600 if case != "bad token" else 0o644)
    address = {"cannot bind": "192.0.2.254:1"}.get(case, f"127.0.0.1:{free_port()}")
    node = "beta" if case == "other node" else "alpha"
    http = f'[http]\nlisten = {{ {node} = "{address}" }}\ntoken_file = "{token}"\n'
    text = CLUSTER_TOML.format(start_timeout="200ms", dead_time="100ms")
    cluster = load_text(text + (http if case != "off" else ""))

    async def main(p: Pair) -> None:
        await p.settled()
        server = await start_http(p.alpha.agent)
        if case != "serves":
            assert server is None  # logged; the agent runs on without it
            return
        assert server is not None
        try:
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"http://{address}/api/info") as r,
            ):
                assert (await r.json())["actions"] is True
        finally:
            await server.close()

    drive(tmp_path, main, cluster=cluster)


def test_token_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("a-good-long-token-value\n")
    os.chmod(path, 0o600)
    assert load_token(str(path)) == b"a-good-long-token-value"
    os.chmod(path, 0o640)
    with pytest.raises(TokenError, match="accessible by group or others"):
        load_token(str(path))
    os.chmod(path, 0o600)
    path.write_text("short")
    with pytest.raises(TokenError, match="expected 16 to 4096"):
        load_token(str(path))
    with pytest.raises(TokenError, match="cannot be opened"):
        load_token(str(tmp_path / "missing"))
    with pytest.raises(TokenError, match="not a regular file"):
        load_token(str(tmp_path))


def test_plan_from_the_configuration(tmp_path: Path) -> None:
    text = CLUSTER_TOML.format(start_timeout="200ms", dead_time="100ms")
    token = tmp_path / "token"
    token.write_text("a-good-long-token-value\n")
    os.chmod(token, 0o600)
    http = f'[http]\nlisten = {{ alpha = "[::1]:8080" }}\ntoken_file = "{token}"\n'
    cluster = load_text(text + http)
    plan = plan_http(cluster, "alpha")
    assert plan is not None
    assert (plan.host, plan.port, plan.token, plan.metrics) == (
        "::1",
        8080,
        b"a-good-long-token-value",
        True,
    )
    assert plan_http(cluster, "beta") is None
    assert plan_http(load_text(text), "alpha") is None
