"""The agent's HTTP interface: the live status page, a JSON API, Prometheus metrics.

Off unless the configuration's [http] table gives this node a listen address. Reading
needs nothing; actions (switchover, standby, ...) need `Authorization: Bearer TOKEN`
with the token from the root-only `token_file`. More routes (health checks, ...) join
through `HttpServer(..., extra=[add])`, where `add(router, agent)` calls `router.add`.

Modules: `plan` (what to serve, from the configuration), `server` (HTTP/1.1 on asyncio
streams with h11), `app` (requests, responses, the router), `routes`, `token`, and the
page's files in `static/`.
"""
