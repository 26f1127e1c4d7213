"""`hotstandby events` filters (--kind, --node, --since, --takeovers) over the control API,
also while following."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from hotstandby.agent.timeline import TIMELINE

from ..agent.harness import Pair
from ..agent.test_control import ask, cli, serve


def test_follow_streams_only_what_the_filters_want(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        agent = p.alpha.agent
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'{"op": "events", "follow": true, "limit": 5, "kind": "role"}\n')
        await writer.drain()
        await p.until(lambda: len(agent.followers) == 1, "the follower registered")
        backlog = []
        roles = [r for r in agent.history if r.kind == "role"][-5:]
        for _ in roles:
            backlog.append(json.loads(await asyncio.wait_for(reader.readline(), 3.0)))
        assert [r["message"] for r in backlog] == [r.message for r in roles]
        assert all(r["node"] == "alpha" for r in backlog)
        agent._record("link.rejected", "not for this follower")
        agent._record("role", "standby -> active", "test.rule")
        record = json.loads(await asyncio.wait_for(reader.readline(), 3.0))
        assert (record["kind"], record["message"]) == ("role", "standby -> active")
        writer.close()
        await p.until(lambda: not agent.followers, "the follower gone")

    serve(tmp_path, body)


def test_bad_filters_are_bad_requests(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        for request, error in [
            ({"op": "events", "since": "yesterday"}, "since must be a time"),
            ({"op": "events", "kind": 3}, "kind must be a string"),
            ({"op": "events", "node": ["a"]}, "node must be a node name"),
        ]:
            answer = await ask(path, request)
            assert not answer["ok"] and error in answer["error"]

    serve(tmp_path, body)


def test_cli_filters_and_takeovers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(p: Pair, path: str) -> None:
        capsys.readouterr()
        assert await cli("events", "--socket", path, "--json", "--kind", "alarm.") == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines and all(r["kind"].startswith("alarm.") for r in lines)
        assert await cli("events", "--socket", path, "--json", "--node", "beta") == 0
        assert capsys.readouterr().out == ""
        assert await cli("events", "--socket", path, "--since", "1h", "--json") == 0
        assert len(capsys.readouterr().out.splitlines()) == len(p.alpha.agent.history)
        assert await cli("events", "--socket", path, "--since", "soon") == 2
        assert "--since: expected a duration" in capsys.readouterr().err
        # A boot election is not a failover: no timeline.
        assert await cli("events", "--socket", path, "--takeovers") == 0
        assert capsys.readouterr().out == "no takeover recorded\n"
        timeline = {
            "peers": ["beta"],
            "epoch": 3,
            "rule": "takeover.fenced",
            "links": {"net": 0.5, "serial": None},
            "stages": [
                {"stage": "peer declared dead [standby.peer_lost]", "offset": 0.5},
                {"stage": "active", "offset": 1.25},
            ],
            "total": 1.25,
        }
        p.alpha.agent._record(TIMELINE, "takeover from beta complete", "x", timeline=timeline)
        assert await cli("events", "--socket", path, "--takeovers") == 0
        out = capsys.readouterr().out
        assert "alpha: takeover from beta complete" in out
        assert "net               500 ms" in out and "serial       never heard" in out
        assert "+     500 ms  peer declared dead" in out
        assert out.rstrip().endswith("total 1250 ms")

    serve(tmp_path, body)
