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
import contextlib
import json
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from hotstandby.agent.http.token import token_matches
from hotstandby.agent.metrics import CONTENT_TYPE, exposition, registry_for
from hotstandby.agent.status import snapshot
from hotstandby.core.messages import AdminAction

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent, Record

AGENT: web.AppKey[Agent] = web.AppKey("agent")
TOKEN: web.AppKey[bytes | None] = web.AppKey("token")
STREAMS: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("streams")
METRICS: web.AppKey[CollectorRegistry] = web.AppKey("metrics")

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
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}


def add_routes(app: web.Application, *, metrics: bool) -> None:
    """The page, the API, and /metrics when `metrics`."""
    files = resources.files("hotstandby.agent.http") / "static"
    for path, (name, kind) in _STATIC.items():
        app.router.add_get(path, _static((files / name).read_bytes(), kind))
    app.router.add_get("/api/info", info)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/events/stream", stream)
    if metrics:
        app[METRICS] = registry_for(app[AGENT])
        app.router.add_get("/metrics", scrape)
    app.router.add_post("/api/{action}", action)


def _static(body: bytes, kind: str) -> Any:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=kind, charset="utf-8")

    return serve


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def info(request: web.Request) -> web.Response:
    """What the page draws before any state: the configured nodes, links and resources."""
    agent = request.app[AGENT]
    cluster = agent.cluster
    return _json(
        {
            "cluster": cluster.name,
            "node": agent.node,
            "nodes": [{"name": n.name, "priority": n.priority} for n in cluster.nodes],
            "links": [{"name": link.name, "kind": link.kind.value} for link in cluster.links],
            "resources": [{"name": r.name, "kind": r.kind.value} for r in cluster.resources],
            "arbitration": cluster.arbitration.mode.value,
            "actions": request.app[TOKEN] is not None,
            "started_at": agent.started_at,
        }
    )


async def status(request: web.Request) -> web.Response:
    """The status snapshot, and the wall clock it was taken at."""
    agent = request.app[AGENT]
    return _json({**snapshot(agent, agent.clock()), "at": time.time()})


async def events(request: web.Request) -> web.Response:
    """The newest `limit` records, oldest first; only those after `since` when given."""
    try:
        limit = int(request.query.get("limit", "200"))
        since = float(request.query.get("since", "-inf"))
    except ValueError:
        raise web.HTTPBadRequest(text="limit is a whole number, since a UNIX time") from None
    if not 0 <= limit <= MAX_LIMIT:
        raise web.HTTPBadRequest(text=f"limit is from 0 to {MAX_LIMIT}")
    records = [r for r in request.app[AGENT].history if r.at > since]
    chosen = records[len(records) - limit :] if limit else []
    return _json({"events": [r.as_json() for r in chosen]})


async def stream(request: web.Request) -> web.StreamResponse:
    """Every new history record as a server-sent event, until the client goes away."""
    streams = request.app[STREAMS]
    if len(streams) >= MAX_STREAMS:
        raise web.HTTPServiceUnavailable(
            text="too many event streams", headers={"Retry-After": "5"}
        )
    agent = request.app[AGENT]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    queue: asyncio.Queue[Record] = asyncio.Queue()
    agent.followers.append(queue)
    task = asyncio.current_task()
    assert task is not None
    streams.add(task)
    try:
        await response.write(b"retry: 2000\n: hotstandby events\n\n")
        while queue.qsize() <= MAX_BACKLOG:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    record = await queue.get()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            data = json.dumps(record.as_json(), separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())
    except ConnectionError:
        pass  # the client left between two records
    finally:
        agent.followers.remove(queue)
        streams.discard(task)
    return response


async def end_streams(app: web.Application) -> None:
    """At shutdown: end the open event streams, which would otherwise never finish."""
    streams = app[STREAMS]
    tasks = list(streams)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)


async def scrape(request: web.Request) -> web.Response:
    """The Prometheus exposition, collected now."""
    body = exposition(request.app[METRICS])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def action(request: web.Request) -> web.Response:
    """An operator's request, with the token; 401 without it, 403 with a wrong one."""
    token = request.app[TOKEN]
    given = request.headers.get("Authorization", "")
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        raise web.HTTPUnauthorized(
            text="actions need Authorization: Bearer TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="hotstandby"'},
        )
    if token is None:
        raise web.HTTPForbidden(text="actions are off: the configuration names no token_file")
    if not token_matches(credentials.strip(), token):
        raise web.HTTPForbidden(text="wrong token")
    name = request.match_info["action"]
    chosen = ACTIONS.get(name)
    if chosen is None:
        raise web.HTTPNotFound(text=f"no action {name!r}; one of: {', '.join(ACTIONS)}")
    target = await _target(request)
    try:
        reply = await request.app[AGENT].admin(chosen, target)
    except TimeoutError:
        return _json({"ok": False, "message": "the agent did not answer in time"}, 504)
    return _json({"ok": reply.ok, "message": reply.message}, 200 if reply.ok else 409)


async def _target(request: web.Request) -> str | None:
    """The optional {"target": NAME} of the request body."""
    if not request.can_read_body:
        return None
    with contextlib.suppress(UnicodeDecodeError):
        text = await request.text()
        if not text.strip():
            return None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            target = body.get("target")
            if target is None or isinstance(target, str):
                return target
    raise web.HTTPBadRequest(text='the body is empty or {"target": "NODE"}')
