"""What this node's HTTP interface serves, from the configuration: checked before the loop runs."""

from __future__ import annotations

from dataclasses import dataclass

from hotstandby.agent.http.token import load_token
from hotstandby.config.http import split_listen
from hotstandby.core.cluster import Cluster


@dataclass(frozen=True)
class HttpPlan:
    """Where to listen, the action token (None: read-only), and whether to serve /metrics."""

    host: str
    port: int
    token: bytes | None
    metrics: bool


def plan_http(cluster: Cluster, node: str) -> HttpPlan | None:
    """This node's HTTP interface, or None when off; TokenError when the token file is bad."""
    http = cluster.http
    if http is None or node not in http.listen:
        return None
    where = split_listen(http.listen[node])
    if where is None:  # the loader accepted it, so this is a bug, not bad input
        raise ValueError(f"http.listen.{node}: not an address:port")
    token = load_token(http.token_file) if http.token_file else None
    return HttpPlan(where[0], where[1], token, http.metrics)
