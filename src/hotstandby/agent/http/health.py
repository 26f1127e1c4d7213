"""Health endpoints for load balancers in front of a replicated database.

Enabled by `health = true` in [http]; read-only and without a token, as load balancers
probe them (HAProxy's `option httpchk GET /health/primary`, say):

- `GET /health/primary`: 200 when this node holds the group and its server is the primary
  (it answers and is not in recovery); 503 otherwise.
- `GET /health/replica`: 200 when this node is a standby whose copy streams from the
  primary, with a replay lag (received but not yet applied) of at most `?max_lag=BYTES`
  when given; 503 otherwise.
- `GET /health/promotable`: 200 when this node's copy may be promoted without losing an
  acknowledged commit (as the cluster decided: see `hotstandby why`); 503 otherwise.

Each answers JSON: the node, its role, what the server said and why the answer is what it
is. The server is asked once per request, bounded by HEALTH_TIMEOUT.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hotstandby.agent.http.app import Request, Response, Router, json_response, text_response
from hotstandby.agent.ports import ReplicatedAdapter
from hotstandby.agent.replication_status import replication_view
from hotstandby.core.group import ResState
from hotstandby.core.messages import Role

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent

HEALTH_TIMEOUT = 2.0


def add_health_routes(router: Router, agent: Agent) -> None:
    """Add the /health/ endpoints (the cluster must have replicated data)."""
    rules = agent.cluster.replication
    if rules is None:
        return
    adapter = agent.adapters.resources.get(rules.resource)
    if not isinstance(adapter, ReplicatedAdapter):
        return
    server: ReplicatedAdapter = adapter

    async def ask_server() -> dict[str, Any]:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                return dict(await server.health())
        except TimeoutError:
            return {"running": False, "detail": f"no answer within {HEALTH_TIMEOUT:g}s"}
        except Exception as err:  # the probe answers 503, never fails the interface
            return {"running": False, "detail": f"{type(err).__name__}: {err}"}

    def answer(ok: bool, why: str, said: dict[str, Any]) -> Response:
        body = {"node": agent.node, "role": agent.engine.role.value, "ok": ok, "why": why,
                "server": said}  # fmt: skip
        return json_response(body, 200 if ok else 503)

    async def primary(request: Request) -> Response:
        engine = agent.engine
        held = engine.group.by_name[rules.resource].state is ResState.RUNNING
        if engine.role is not Role.ACTIVE or not held:
            return answer(False, f"this node is {engine.role.value}, not the active one", {})
        said = await ask_server()
        if not said.get("primary"):
            return answer(False, "the server is not a primary that answers", said)
        return answer(True, "active node, primary server", said)

    async def replica(request: Request) -> Response:
        limit_text = request.query.get("max_lag")
        limit = None
        if limit_text is not None:
            if not limit_text.isdigit():
                return text_response(400, "max_lag: a number of bytes")
            limit = int(limit_text)
        if agent.engine.role is not Role.STANDBY:
            return answer(False, f"this node is {agent.engine.role.value}, not a standby", {})
        said = await ask_server()
        if not (said.get("replica") and said.get("streaming")):
            return answer(False, "the server is not a replica streaming from the primary", said)
        lag = said.get("lag_bytes")
        if limit is not None and (not isinstance(lag, int) or lag > limit):
            return answer(False, f"replay lag {lag} bytes over max_lag {limit}", said)
        return answer(True, "standby, replica streaming", said)

    async def promotable(request: Request) -> Response:
        view = replication_view(agent, agent.clock()) or {}
        if view.get("primary"):
            return answer(False, "this node is the primary", {})
        if view.get("copy_promotable"):
            return answer(True, "this node's copy may be promoted", {})
        return answer(False, str(view.get("why_not_promotable")), {})

    router.add("GET", "/health/primary", primary)
    router.add("GET", "/health/replica", replica)
    router.add("GET", "/health/promotable", promotable)
