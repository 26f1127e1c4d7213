"""The HTTP/1.1 server inside the agent's event loop: asyncio streams and h11.

A web framework would cost the daemon more than ten MiB of locked memory for a few routes;
h11 does the protocol (parsing, framing, keep-alive) in a fraction of that, and this module
only moves bytes. Each connection is its own task, so a slow client never holds up the
agent's loop or other clients. Bounds: at most `MAX_CONNECTIONS` connections; a request
line and headers of `MAX_HEAD` bytes; a body of `MAX_BODY`; a whole request within
`idle_timeout` of the connection becoming ready for it (an idle or trickling client is
closed); every write drained within `WRITE_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import h11

from hotstandby.agent.http.app import Reply, Request, Response, Router, Stream, text_response
from hotstandby.agent.http.routes import Routes

if TYPE_CHECKING:
    from hotstandby.agent.loop import Agent

log = logging.getLogger("hotstandby.http")

MAX_CONNECTIONS = 256
MAX_HEAD = 8 * 1024
MAX_BODY = 16 * 1024
IDLE_TIMEOUT = 15.0  # seconds a connection may take to send a whole request
WRITE_TIMEOUT = 10.0
_READ = 16 * 1024

#: Adds more routes (health checks, ...) to the router, given the agent.
RouteSet = Callable[[Router, "Agent"], None]

# Keep the page to itself: no framing, no foreign scripts or styles, no sniffing.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


def build_router(
    agent: Agent, token: bytes | None, *, metrics: bool = True, extra: Sequence[RouteSet] = ()
) -> Router:
    """The routes: the page, the API, /metrics when asked for, and `extra` ones."""
    router = Router()
    Routes(agent, token, metrics=metrics).add_to(router)
    for add in extra:
        add(router, agent)
    return router


class _ClientGoneError(Exception):
    """The client closed its side, or broke the protocol past answering."""


class HttpServer:
    """Serves one agent's routes on one address until closed."""

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
        self.router = build_router(agent, token, metrics=metrics, extra=extra)
        self.idle_timeout = idle_timeout
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen; OSError when the address cannot be bound."""
        self.server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True, limit=_READ
        )
        log.info("http: serving on %s", self.url)

    @property
    def url(self) -> str:
        """Where the page is."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def bound_port(self) -> int:
        """The port actually bound (when asked for port 0)."""
        if self.server is None or not self.server.sockets:
            return self.port
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end every connection, event streams included."""
        if self.server is None:
            return
        self.server.close()
        tasks = list(self.connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.server.wait_closed()
        self.server = None

    # ------------------------------------------------------------ one connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self.connections) >= MAX_CONNECTIONS:
            writer.close()
            return
        self.connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            while True:
                got = await self._read_request(conn, reader)
                if got is None:
                    return
                reply = got if isinstance(got, Response) else await self._dispatch(got)
                if isinstance(reply, Stream):
                    await self._stream(conn, reader, writer, reply)
                    return
                await self._send(conn, writer, reply)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # an error answered, or the client asked to close
                conn.start_next_cycle()
        except (ConnectionError, TimeoutError, h11.ProtocolError, _ClientGoneError):
            pass
        except asyncio.CancelledError:
            # close() ends the connections it owns; nothing above this task awaits it.
            pass
        finally:
            self.connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> Request | Response | None:
        """The next whole request, an error to answer, or None when the client is done."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                head = await self._event(conn, reader)
                if isinstance(head, h11.ConnectionClosed):
                    return None
                assert isinstance(head, h11.Request)
                length = _header(head.headers, b"content-length")
                if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                    return text_response(413, f"a request body is at most {MAX_BODY} bytes")
                body = bytearray()
                while True:
                    event = await self._event(conn, reader)
                    if isinstance(event, h11.EndOfMessage):
                        break
                    if not isinstance(event, h11.Data):
                        raise _ClientGoneError
                    body += event.data
                    if len(body) > MAX_BODY:
                        return text_response(413, f"a request body is at most {MAX_BODY} bytes")
        except TimeoutError:
            if conn.their_state is h11.IDLE:
                return None  # an idle keep-alive connection: just close it
            raise
        except h11.RemoteProtocolError as err:
            if conn.our_state is not h11.SEND_RESPONSE and conn.our_state is not h11.IDLE:
                raise
            return text_response(err.error_status_hint, f"bad request: {err}")
        target = urlsplit(head.target.decode("ascii", "replace"))
        return Request(
            method=head.method.decode("ascii", "replace"),
            path=target.path,
            query=dict(parse_qsl(target.query)),
            headers={k.decode().lower(): v.decode("latin-1") for k, v in head.headers},
            body=bytes(body),
        )

    async def _event(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            conn.receive_data(await reader.read(_READ))  # b"": the client closed

    async def _dispatch(self, request: Request) -> Reply:
        found = self.router.resolve(request.method, request.path)
        if isinstance(found, Response):
            return found
        handler, params = found
        try:
            return await handler(replace(request, params=params))
        except Exception:  # a handler bug answers 500 and leaves the agent alone
            log.exception("http: %s %s failed", request.method, request.path)
            return text_response(500, "internal error; see the agent's log")

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter, r: Response) -> None:
        # IDLE: the request could not even be read as one (garbage, an oversized head);
        # h11 lets a server answer that once, then the connection closes.
        if conn.our_state not in (h11.SEND_RESPONSE, h11.IDLE):
            return
        headers = [
            ("Content-Type", r.content_type),
            ("Content-Length", str(len(r.body))),
            *SECURITY_HEADERS,
            *r.headers,
        ]
        if conn.their_state is not h11.DONE:
            headers.append(("Connection", "close"))  # the rest of its body stays unread
        try:
            data = conn.send(h11.Response(status_code=r.status, headers=headers))
            data += conn.send(h11.Data(data=r.body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            return
        writer.write(data or b"")
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def _stream(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stream: Stream,
    ) -> None:
        headers = [("Content-Type", stream.content_type), *SECURITY_HEADERS, *stream.headers]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

        async def send(chunk: bytes) -> None:
            writer.write(conn.send(h11.Data(data=chunk)) or b"")
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

        # The client sends nothing more: end of input means it left, and the stream
        # ends then rather than at its next write.
        gone = asyncio.ensure_future(reader.read(1))
        producing = asyncio.ensure_future(stream.produce(send))
        try:
            await asyncio.wait((gone, producing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, producing):
                task.cancel()
            await asyncio.wait((gone, producing))
        if producing.done() and not producing.cancelled() and producing.exception() is None:
            with contextlib.suppress(h11.LocalProtocolError):
                writer.write(conn.send(h11.EndOfMessage()) or b"")


def _header(headers: Any, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
