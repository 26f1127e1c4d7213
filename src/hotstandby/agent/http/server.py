"""The HTTP server inside the agent's event loop (aiohttp), and the app its routes make.

Every request is its own task, so a slow client never holds up the agent's loop or other
clients. Bounds: request bodies of 16 KiB, request lines and headers of a few KiB, idle
connections closed after `IDLE_TIMEOUT` (also one that never sends a request), at most
`MAX_STREAMS` live event streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hotstandby.agent.http import routes

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent

log = logging.getLogger("hotstandby.http")

MAX_BODY = 16 * 1024
IDLE_TIMEOUT = 15.0  # seconds a connection may sit without a request

#: Adds more routes to the app (the agent is in app[routes.AGENT]).
RouteSet = Callable[[web.Application], None]


def build_app(
    agent: Agent, token: bytes | None, *, metrics: bool = True, extra: Sequence[RouteSet] = ()
) -> web.Application:
    """The application: the page, the API, /metrics when asked for, and `extra` routes."""
    app = web.Application(client_max_size=MAX_BODY, middlewares=[_headers])
    app[routes.AGENT] = agent
    app[routes.TOKEN] = token
    streams: set[asyncio.Task[Any]] = set()
    app[routes.STREAMS] = streams
    routes.add_routes(app, metrics=metrics)
    for add in extra:
        add(app)
    app.on_shutdown.append(routes.end_streams)
    return app


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Headers that keep the page to itself: no framing, no foreign scripts, no sniffing."""
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class HttpServer:
    """Serves one agent's app on one address until closed."""

    def __init__(
        self,
        agent: Agent,
        host: str,
        port: int,
        token: bytes | None,
        *,
        metrics: bool = True,
        extra: Sequence[RouteSet] = (),
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self.host, self.port = host, port
        self.app = build_app(agent, token, metrics=metrics, extra=extra)
        self.runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=idle_timeout,
            max_line_size=4096,
            max_field_size=4096,
            max_headers=64,
            shutdown_timeout=1.0,
            # A client that leaves ends its handler: an event stream then stops at
            # once instead of at its next write. An action already asked goes on.
            handler_cancellation=True,
        )

    async def start(self) -> None:
        """Listen; OSError when the address cannot be bound."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        await site.start()
        log.info("http: serving on %s", self.url)

    @property
    def url(self) -> str:
        """Where the page is."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def bound_port(self) -> int:
        """The port actually bound (when asked for port 0)."""
        addresses = self.runner.addresses
        return int(addresses[0][1]) if addresses else self.port

    async def close(self) -> None:
        """Stop listening, end the event streams and close every connection."""
        await self.runner.cleanup()
