"""The control API: JSON lines on a Unix socket only root may open (mode 0600).

Requests: {"op": "status"}, {"op": "why"}, {"op": "events", "follow": bool,
"limit": n, "since": wall-clock seconds, "kind": prefix, "node": name} (the filters
optional), {"op": "admin", "action": "<AdminAction>", "target": node|null}.
Every answer is one JSON object with "ok"; `events` with follow streams one
object per line until the client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotstandby.agent.replication_status import explain, replication_view
from hotstandby.agent.status import reasons, snapshot
from hotstandby.core.messages import AdminAction

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent, Record

MAX_REQUEST = 64 * 1024


def default_socket(cluster: str) -> str:
    """Where the agent of `cluster` listens unless told otherwise."""
    return f"/run/hotstandby/{cluster}.sock"


class ControlSocketBusyError(RuntimeError):
    """The control socket is in use by a running agent."""


def _answers(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class ControlServer:
    """Serves the control API of one agent."""

    def __init__(self, agent: Agent, path: str) -> None:
        self.agent = agent
        self.path = Path(path)
        self.server: asyncio.AbstractServer | None = None
        # `events --follow` streams: ended by close(), which the server's own
        # close does not do (and on Python >= 3.12.1 wait_closed waits for them).
        self.streams: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Create the socket, readable and writable by root only."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _answers(self.path):
            # Another agent of this node is serving here: two agents for one node
            # would make two engines; refuse rather than take its socket.
            raise ControlSocketBusyError(f"{self.path}: another agent is already listening here")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left over by an agent that is gone
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop serving and remove the socket."""
        if self.server is not None:
            self.server.close()
            for task in list(self.streams):
                task.cancel()
            if self.streams:
                await asyncio.wait(list(self.streams))
            await self.server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            if request.get("op") == "events" and request.get("follow"):
                limit = _limit(request, 20)
                await self._follow(limit, _matcher(request, self.agent.node), reader, writer)
                return
            answer = await self._answer(request)
        except (ValueError, TimeoutError, asyncio.LimitOverrunError) as err:
            answer = {"ok": False, "error": f"bad request: {err}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        agent = self.agent
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": snapshot(agent, agent.clock())}
        if op == "why":
            return {
                "ok": True,
                "role": agent.engine.role.value,
                "now": explain(replication_view(agent, agent.clock())),
                "reasons": reasons(agent),
            }
        if op == "events":
            wanted = _matcher(request, agent.node)
            chosen = [r for r in agent.history if wanted(r)]
            return {"ok": True, "events": _last(chosen, _limit(request, 100), agent.node)}
        if op == "admin":
            try:
                action = AdminAction(str(request.get("action")))
            except ValueError:
                choices = ", ".join(a.value for a in AdminAction)
                return {"ok": False, "error": f"unknown action; one of: {choices}"}
            target = request.get("target")
            if target is not None and not isinstance(target, str):
                return {"ok": False, "error": "target must be a node name"}
            try:
                reply = await agent.admin(action, target)
            except TimeoutError:
                # Not the caller's fault: say so, rather than "bad request".
                return {
                    "ok": False,
                    "error": "the agent did not answer in time; see `hotstandby events`",
                }
            return {"ok": reply.ok, "message": reply.message}
        return {"ok": False, "error": f"unknown op {op!r}"}

    async def _follow(
        self,
        limit: int,
        wanted: Callable[[Record], bool],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.streams.add(task)
        queue: asyncio.Queue[Record] = asyncio.Queue()
        self.agent.followers.append(queue)
        # The client sends nothing more: end of input means it went away, and
        # the stream ends then rather than at the next record it cannot take.
        gone = asyncio.ensure_future(reader.read())
        try:
            node = self.agent.node
            for line in _last([r for r in self.agent.history if wanted(r)], limit, node):
                writer.write(json.dumps(line).encode() + b"\n")
            await writer.drain()
            while True:
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    return
                if not wanted(get.result()):
                    continue
                line = {"node": node, **get.result().as_json()}
                writer.write(json.dumps(line).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass  # the client left
        finally:
            gone.cancel()
            self.agent.followers.remove(queue)
            self.streams.discard(task)
            writer.close()


def _limit(request: dict[str, Any], default: int) -> int:
    """The request's "limit": how many past records, a whole number from 0."""
    limit = request.get("limit", default)
    if type(limit) is not int or limit < 0:
        raise ValueError(f"limit must be a whole number from 0, not {limit!r}")
    return limit


def _matcher(request: dict[str, Any], node: str) -> Callable[[Record], bool]:
    """The request's filters: since (wall clock), kind (a prefix), node; ValueError if bad."""
    since, kind, who = request.get("since"), request.get("kind"), request.get("node")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
        raise ValueError(f"since must be a time in seconds since the epoch, not {since!r}")
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f"kind must be a string, not {kind!r}")
    if who is not None and not isinstance(who, str):
        raise ValueError(f"node must be a node name, not {who!r}")

    def wanted(r: Record) -> bool:
        return (
            (since is None or r.at >= since)
            and (kind is None or r.kind.startswith(kind))
            and (who is None or r.data.get("node", node) == who)
        )

    return wanted


def _last(history: Iterable[Record], limit: int, node: str) -> list[dict[str, Any]]:
    """The newest `limit` records as JSON data, oldest first (none for 0), with their node."""
    records = list(history)
    # max(): with fewer records than the limit, a negative start would cut from the end.
    chosen = records[max(0, len(records) - limit) :] if limit else []
    return [{"node": node, **r.as_json()} for r in chosen]
