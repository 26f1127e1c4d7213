"""The agent's HTTP interface: the live status page, a JSON API, Prometheus metrics.

Off unless the configuration's [http] table gives this node a listen address. Reading
needs nothing; actions (switchover, standby, ...) need `Authorization: Bearer TOKEN`
with the token from the root-only `token_file`. More routes (health checks, ...) join
through `server.build_app(..., extra=[...])`.

Modules: `plan` (what to serve, from the configuration; no web imports, so an agent
without [http] never loads the web stack), `server` (aiohttp), `routes`, `token`,
and the page's files in `static/`.
"""
