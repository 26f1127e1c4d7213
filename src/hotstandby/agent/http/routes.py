"""The routes: the page, the read-only API, the event stream, /metrics, and token-gated actions.

GET  /                      the live status page (with /app.js and /style.css)
GET  /api/info              what does not change while the agent runs: nodes, links, resources
GET  /api/status            the snapshot `hotstandby status --json` shows
GET  /api/events            the history: ?limit=N (default 200), ?since=UNIX_TIME
GET  /api/events/stream     server-sent events: one `data:` JSON record per history record
GET  /metrics               Prometheus metrics (unless `metrics = false`)
POST /api/ACTION            switchover, standby, online, maintenance_on, maintenance_off,
                            cleanup; JSON body {"target": NAME} optional; needs the token
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from hotstandby.agent.http.app import (
    Handler,
    Request,
    Response,
    Router,
    Send,
    Stream,
    json_response,
    text_response,
)
from hotstandby.agent.http.token import token_matches
from hotstandby.agent.metrics import CONTENT_TYPE, exposition, registry_for
from hotstandby.agent.status import snapshot
from hotstandby.core.messages import AdminAction

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent, Record

MAX_STREAMS = 32
# A stream whose client reads slower than records arrive is ended past this backlog;
# the browser's EventSource reconnects and the page fetches the history afresh.
MAX_BACKLOG = 500
KEEPALIVE = 15.0  # seconds between comments on a quiet stream, to notice a client gone
MAX_LIMIT = 2000

#: What the page may ask; shutdown and force_active stay with root on the control socket.
ACTIONS = {
    a.value: a
    for a in (
        AdminAction.SWITCHOVER,
        AdminAction.STANDBY,
        AdminAction.ONLINE,
        AdminAction.MAINTENANCE_ON,
        AdminAction.MAINTENANCE_OFF,
        AdminAction.CLEANUP,
    )
}

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
_BAD_BODY = 'the body is empty or {"target": "NODE"}'


class Routes:
    """The handlers of one agent's interface."""

    def __init__(self, agent: Agent, token: bytes | None, *, metrics: bool = True) -> None:
        self.agent = agent
        self.token = token
        self.registry = registry_for(agent) if metrics else None
        self.streams = 0

    def add_to(self, router: Router) -> None:
        """Register every route."""
        files = resources.files("hotstandby.agent.http") / "static"
        for path, (name, kind) in _STATIC.items():
            router.add("GET", path, _static(Response(200, (files / name).read_bytes(), kind)))
        router.add("GET", "/api/info", self.info)
        router.add("GET", "/api/status", self.status)
        router.add("GET", "/api/events", self.events)
        router.add("GET", "/api/events/stream", self.stream)
        if self.registry is not None:
            router.add("GET", "/metrics", self.scrape)
        router.add("POST", "/api/{action}", self.action)

    async def info(self, request: Request) -> Response:
        """What the page draws before any state: the configured nodes, links and resources."""
        agent, cluster = self.agent, self.agent.cluster
        return json_response(
            {
                "cluster": cluster.name,
                "node": agent.node,
                "nodes": [{"name": n.name, "priority": n.priority} for n in cluster.nodes],
                "links": [{"name": k.name, "kind": k.kind.value} for k in cluster.links],
                "resources": [{"name": r.name, "kind": r.kind.value} for r in cluster.resources],
                "arbitration": cluster.arbitration.mode.value,
                "actions": self.token is not None,
                "started_at": agent.started_at,
            }
        )

    async def status(self, request: Request) -> Response:
        """The status snapshot, and the wall clock it was taken at."""
        return json_response({**snapshot(self.agent, self.agent.clock()), "at": time.time()})

    async def events(self, request: Request) -> Response:
        """The newest `limit` records, oldest first; only those after `since` when given."""
        try:
            limit = int(request.query.get("limit", "200"))
            since = float(request.query.get("since", "-inf"))
        except ValueError:
            return text_response(400, "limit is a whole number, since a UNIX time")
        if not 0 <= limit <= MAX_LIMIT:
            return text_response(400, f"limit is from 0 to {MAX_LIMIT}")
        records = [r for r in self.agent.history if r.at > since]
        chosen = records[len(records) - limit :] if limit else []
        return json_response({"events": [r.as_json() for r in chosen]})

    async def stream(self, request: Request) -> Response | Stream:
        """Every new history record as a server-sent event, until the client goes away."""
        if self.streams >= MAX_STREAMS:
            return text_response(503, "too many event streams", (("Retry-After", "5"),))
        return Stream(self._follow, "text/event-stream")

    async def _follow(self, send: Send) -> None:
        queue: asyncio.Queue[Record] = asyncio.Queue()
        self.agent.followers.append(queue)
        self.streams += 1
        try:
            await send(b"retry: 2000\n: hotstandby events\n\n")
            while queue.qsize() <= MAX_BACKLOG:
                try:
                    async with asyncio.timeout(KEEPALIVE):
                        record = await queue.get()
                except TimeoutError:
                    await send(b": keepalive\n\n")
                    continue
                data = json.dumps(record.as_json(), separators=(",", ":"))
                await send(f"data: {data}\n\n".encode())
        finally:
            self.agent.followers.remove(queue)
            self.streams -= 1

    async def scrape(self, request: Request) -> Response:
        """The Prometheus exposition, collected now."""
        assert self.registry is not None
        return Response(200, exposition(self.registry), CONTENT_TYPE)

    async def action(self, request: Request) -> Response:
        """An operator's request, with the token; 401 without it, 403 with a wrong one."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return text_response(
                401,
                "actions need Authorization: Bearer TOKEN",
                (("WWW-Authenticate", 'Bearer realm="hotstandby"'),),
            )
        if self.token is None:
            return text_response(403, "actions are off: the configuration names no token_file")
        if not token_matches(credentials.strip(), self.token):
            return text_response(403, "wrong token")
        name = request.params["action"]
        chosen = ACTIONS.get(name)
        if chosen is None:
            return text_response(404, f"no action {name!r}; one of: {', '.join(ACTIONS)}")
        target = _target(request.body)
        if isinstance(target, Response):
            return target
        try:
            reply = await self.agent.admin(chosen, target)
        except TimeoutError:
            return json_response({"ok": False, "message": "the agent did not answer in time"}, 504)
        return json_response({"ok": reply.ok, "message": reply.message}, 200 if reply.ok else 409)


def _static(response: Response) -> Handler:
    async def serve(request: Request) -> Response:
        return response

    return serve


def _target(body: bytes) -> str | Response | None:
    """The optional {"target": NAME} of a request body, or the 400 answer."""
    if not body.strip():
        return None
    try:
        data: Any = json.loads(body)
    except ValueError:
        return text_response(400, _BAD_BODY)
    target = data.get("target") if isinstance(data, dict) else 0
    if target is None or isinstance(target, str):
        return target
    return text_response(400, _BAD_BODY)
