"""The control API on a Unix socket, and the command-line clients that use it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent.control import ControlServer, ControlSocketBusyError, default_socket
from hotstandby.cli import main
from hotstandby.core.messages import Reply, Role

from .harness import CLUSTER_TOML, Pair, drive

Body = Callable[[Pair, str], Awaitable[None]]


def serve(tmp_path: Path, body: Body) -> None:
    """Run the pair with a control server for alpha, and `body` once they settled."""
    path = str(tmp_path / "run" / "alpha.sock")

    async def outer(pair: Pair) -> None:
        server = ControlServer(pair.alpha.agent, path)
        await server.start()
        try:
            await pair.settled()
            await body(pair, path)
        finally:
            await server.close()
        assert not os.path.exists(path)

    drive(tmp_path / "state", outer)


async def ask(path: str, request: Any, raw: bytes | None = None) -> dict[str, Any]:
    """Send one request and read one answer, with a timeout."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(raw if raw is not None else json.dumps(request).encode() + b"\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 3.0)
    writer.close()
    answer: dict[str, Any] = json.loads(line)
    return answer


async def cli(*argv: str) -> int:
    """Run the `hotstandby` command in a thread, as a user would from a shell."""
    return await asyncio.to_thread(main, list(argv))


def test_status_why_and_events(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        status = await ask(path, {"op": "status"})
        assert status["ok"]
        s = status["status"]
        assert (s["cluster"], s["node"], s["role"]) == ("unit", "alpha", "active")
        assert s["epoch"] == p.alpha.agent.engine.epoch
        (peer,) = s["peers"]
        assert peer["name"] == "beta" and peer["role"] == "standby" and peer["confirmed"]
        assert set(peer["links"]) == {"net", "serial"}
        assert peer["links"]["net"]["state"] == "up"
        assert peer["links"]["net"]["loss"] == 0.0
        assert set(s["links"]) == {"net", "serial"}
        assert [r["name"] for r in s["resources"]] == ["vip", "web"]
        assert all(r["state"] == "running" for r in s["resources"])
        assert "boot.election" in s["last_takeover"]

        why = await ask(path, {"op": "why"})
        assert why["ok"] and why["role"] == "active"
        kinds = {r["kind"] for r in why["reasons"]}
        assert "role" in kinds and all(k == "role" or k.startswith("alarm") for k in kinds)

        events = await ask(path, {"op": "events", "limit": 3})
        assert events["ok"] and len(events["events"]) == 3
        assert events["events"][-1]["message"] == p.alpha.agent.history[-1].message
        assert (await ask(path, {"op": "events", "limit": 0}))["events"] == []

    serve(tmp_path, body)


def test_events_follow_streams_new_records(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        agent = p.alpha.agent
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b'{"op": "events", "follow": true, "limit": 2}\n')
        await writer.drain()
        backlog = [json.loads(await asyncio.wait_for(reader.readline(), 3.0)) for _ in range(2)]
        assert [r["message"] for r in backlog] == [r.message for r in list(agent.history)[-2:]]
        await p.until(lambda: len(agent.followers) == 1, "the follower registered")
        agent._record("test", "something new", "test.rule", severity="warning")
        record = json.loads(await asyncio.wait_for(reader.readline(), 3.0))
        assert record["kind"] == "test" and record["message"] == "something new"
        assert record["rule"] == "test.rule" and record["severity"] == "warning"
        writer.close()
        await p.until(lambda: not agent.followers, "the follower forgotten once it left")

    serve(tmp_path, body)


def test_closing_the_server_ends_the_followers(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        server = ControlServer(p.alpha.agent, path + "2")
        await server.start()
        reader, writer = await asyncio.open_unix_connection(path + "2")
        writer.write(b'{"op": "events", "follow": true, "limit": 0}\n')
        await writer.drain()
        await p.until(lambda: len(p.alpha.agent.followers) == 1, "the follower registered")
        await asyncio.wait_for(server.close(), 3.0)
        # The stream ends (read returns at EOF), after whatever the pair recorded meanwhile.
        rest = await asyncio.wait_for(reader.read(), 3.0)
        assert reader.at_eof()
        assert all("kind" in json.loads(line) for line in rest.splitlines())
        writer.close()
        assert not p.alpha.agent.followers

    serve(tmp_path, body)


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"{nope\n", "bad request: "),
        (b"[1, 2]\n", "bad request: a request is a JSON object"),
        (b'"status"\n', "bad request: a request is a JSON object"),
        (b"\n", "bad request: "),
        (b'{"op": "reboot"}\n', "unknown op 'reboot'"),
        (b'{"op": "admin", "action": "explode"}\n', "unknown action; one of: switchover, "),
        (b'{"op": "admin", "action": "standby", "target": 3}\n', "target must be a node name"),
        (b'{"op": "events", "limit": "many"}\n', "bad request: limit must be"),
        (b'{"op": "events", "limit": null}\n', "bad request: limit must be"),
        (b'{"op": "events", "limit": -1}\n', "bad request: limit must be"),
        (b'{"op": "events", "follow": true, "limit": [1]}\n', "bad request: limit must be"),
        (b"x" * 70_000 + b"\n", "bad request: "),
    ],
)
def test_bad_requests_get_clear_errors(tmp_path: Path, request_bytes: bytes, error: str) -> None:
    async def body(p: Pair, path: str) -> None:
        answer = await ask(path, None, raw=request_bytes)
        assert answer["ok"] is False
        assert answer["error"].startswith(error), answer["error"]
        # The agent goes on serving.
        assert (await ask(path, {"op": "status"}))["ok"]

    serve(tmp_path, body)


def test_admin_through_the_socket(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        refused = await ask(path, {"op": "admin", "action": "maintenance_off"})
        assert refused == {"ok": False, "message": "the cluster is not in maintenance mode"}
        moved = await ask(path, {"op": "admin", "action": "switchover", "target": "beta"})
        assert moved == {"ok": True, "message": "switching over to beta"}
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")

    serve(tmp_path, body)


def test_an_admin_request_the_engine_never_answers(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        async def silent(action: object, target: object = None) -> Reply:
            raise TimeoutError

        p.alpha.agent.admin = silent  # type: ignore[method-assign]
        answer = await ask(path, {"op": "admin", "action": "switchover"})
        assert answer["ok"] is False
        assert answer["error"] == "the agent did not answer in time; see `hotstandby events`"

    serve(tmp_path, body)


def test_a_second_start_replaces_a_stale_socket_file(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        stale = tmp_path / "stale.sock"
        stale.write_text("left over from a crash")
        server = ControlServer(p.alpha.agent, str(stale))
        await server.start()
        assert stat.S_ISSOCK(os.stat(stale).st_mode)
        assert (await ask(str(stale), {"op": "status"}))["ok"]
        await server.close()

    serve(tmp_path, body)


def test_a_second_agent_does_not_take_a_live_socket(tmp_path: Path) -> None:
    async def body(p: Pair, path: str) -> None:
        second = ControlServer(p.beta.agent, path)
        with pytest.raises(ControlSocketBusyError, match="another agent"):
            await second.start()
        # The first agent still answers on it.
        assert (await ask(path, {"op": "status"}))["status"]["node"] == "alpha"

    serve(tmp_path, body)


def test_the_default_socket_is_under_run() -> None:
    assert default_socket("web") == "/run/hotstandby/web.sock"


# ------------------------------------------------------------------ the command line


def test_cli_status_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(p: Pair, path: str) -> None:
        assert await cli("status", "--socket", path) == 0
        out = capsys.readouterr().out
        assert out.startswith(
            f"cluster unit   node alpha: ACTIVE   epoch {p.alpha.agent.engine.epoch}"
        )
        assert "beta" in out and "net:up" in out and "serial:up" in out
        assert "vip" in out and "running" in out
        assert await cli("status", "--json", "--socket", path) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["node"] == "alpha" and data["role"] == "active"

    serve(tmp_path, body)


def test_cli_switchover_events_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(p: Pair, path: str) -> None:
        assert await cli("maintenance", "off", "--socket", path) == 1
        assert "not in maintenance mode" in capsys.readouterr().err
        assert await cli("switchover", "--to", "nowhere", "--socket", path) == 1
        capsys.readouterr()
        assert await cli("switchover", "--socket", path) == 0
        assert capsys.readouterr().out.strip() == "switching over to beta"
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")

        assert await cli("events", "--limit", "5", "--socket", path) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 5
        assert all(line[2] == ":" and line[8] == "." for line in lines)  # HH:MM:SS.mmm
        assert await cli("events", "--json", "--limit", "2", "--socket", path) == 0
        records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["message"] for r in records] == [
            r.message for r in list(p.alpha.agent.history)[-2:]
        ]
        assert await cli("why", "--socket", path) == 0
        out = capsys.readouterr().out
        assert out.startswith("role: standby\n")
        assert "[admin.switchover]" in out

    serve(tmp_path, body)


def test_cli_events_follow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def body(p: Pair, path: str) -> None:
        server = ControlServer(p.alpha.agent, path + "f")
        await server.start()
        follow = asyncio.create_task(cli("events", "-f", "--limit", "0", "--socket", path + "f"))
        await p.until(lambda: len(p.alpha.agent.followers) == 1, "the CLI follows")
        p.alpha.agent._record("test", "streamed to the command line")
        queue = p.alpha.agent.followers[0]
        await p.until(queue.empty, "the record was sent")
        await server.close()  # the agent stops: the client ends, successfully
        assert await asyncio.wait_for(follow, 3.0) == 0
        assert "streamed to the command line" in capsys.readouterr().out

    serve(tmp_path, body)


@pytest.mark.parametrize("command", ["status", "why", "events", "switchover"])
def test_cli_without_an_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = str(tmp_path / "none.sock")
    assert main([command, "--socket", path]) == 3
    err = capsys.readouterr().err
    assert err == f"hotstandby: no agent is listening on {path}: is `hotstandby agent` running?\n"


def test_cli_with_a_dead_socket_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))  # bound, never listening: connection refused
    assert main(["events", "--follow", "--socket", str(path)]) == 3
    assert "no agent is listening on" in capsys.readouterr().err


def test_cli_without_permission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: socket.socket, address: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    path = str(tmp_path / "root.sock")
    assert main(["status", "--socket", path]) == 3
    assert capsys.readouterr().err == (
        f"hotstandby: permission denied on {path}: the control socket is root's\n"
    )


def test_cli_without_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "cluster.toml"
    assert main(["status", "-c", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hotstandby: ") and str(missing) in err
    assert "Traceback" not in err


def test_cli_finds_the_socket_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(CLUSTER_TOML.format(start_timeout="1s", dead_time="100ms"))
    assert main(["status", "-c", str(config)]) == 3
    assert "/run/hotstandby/unit.sock" in capsys.readouterr().err


def test_cli_an_agent_that_hangs_up_without_answering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "mute.sock")

    async def run() -> int:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.close()

        server = await asyncio.start_unix_server(hang_up, path=path)
        try:
            return await cli("status", "--socket", path)
        finally:
            server.close()

    assert asyncio.run(run()) == 3
    assert capsys.readouterr().err == f"hotstandby: the agent at {path} closed without answering\n"
