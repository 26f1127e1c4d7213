"""What this node's HTTP interface serves, from the configuration: checked before the loop runs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hotstandby.agent.http.token import TokenError, load_token
from hotstandby.config.http import split_listen
from hotstandby.core.cluster import Cluster

if TYPE_CHECKING:
    from hotstandby.agent.http.server import HttpServer
    from hotstandby.agent.loop import Agent

log = logging.getLogger("hotstandby.http")


@dataclass(frozen=True)
class HttpPlan:
    """Where to listen, the action token (None: read-only), and whether to serve /metrics."""

    host: str
    port: int
    token: bytes | None
    metrics: bool
    health: bool = False


def plan_http(cluster: Cluster, node: str) -> HttpPlan | None:
    """This node's HTTP interface, or None when off; TokenError when the token file is bad."""
    http = cluster.http
    if http is None or node not in http.listen:
        return None
    where = split_listen(http.listen[node])
    if where is None:  # the loader accepted it, so this is a bug, not bad input
        raise ValueError(f"http.listen.{node}: not an address:port")
    token = load_token(http.token_file) if http.token_file else None
    return HttpPlan(where[0], where[1], token, http.metrics, http.health)


async def start_http(agent: Agent) -> HttpServer | None:
    """Start the agent's HTTP interface when configured for its node; None when off.

    A node whose interface cannot be served (a bad token file, an address it cannot bind)
    says so in its log and runs without it: the page must never keep the cluster from
    failing over. `hotstandby check` warns of a bad token file beforehand.
    """
    try:
        plan = plan_http(agent.cluster, agent.node)
    except TokenError as err:
        log.error("http: %s; running without the HTTP interface", err)
        return None
    if plan is None:
        return None
    # Imported only now: an agent without [http] never loads the web stack.
    from hotstandby.agent.http.server import HttpServer  # noqa: PLC0415

    extra = []
    if plan.health:
        from hotstandby.agent.http.health import add_health_routes  # noqa: PLC0415

        extra.append(add_health_routes)
    server = HttpServer(agent, plan.host, plan.port, plan.token, metrics=plan.metrics, extra=extra)
    try:
        await server.start()
    except OSError as err:
        log.error("http: cannot listen on %s: %s; running without it", server.url, err)
        await server.close()
        return None
    return server
