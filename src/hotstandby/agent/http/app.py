"""Requests, responses and the router of the HTTP interface: plain data, no sockets.

A handler takes a `Request` and returns a `Response`, or a `Stream` whose producer writes
the body as it comes (server-sent events). Routes are exact paths, or paths ending in one
`{name}` segment (`/api/{action}`), whose value the handler finds in `request.params`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Request:
    """One request, read in full (bodies are small and bounded)."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)  # the route's {name} segment


@dataclass(frozen=True)
class Response:
    """A whole response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Headers = ()


Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class Stream:
    """A response written as it comes: `produce(send)` runs until done or the client leaves."""

    produce: Callable[[Send], Awaitable[None]]
    content_type: str
    headers: Headers = ()


Reply = Response | Stream
Handler = Callable[[Request], Awaitable[Reply]]


def json_response(data: Any, status: int = 200) -> Response:
    """`data` as a JSON response."""
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, "application/json")


def text_response(status: int, text: str, headers: Headers = ()) -> Response:
    """A short plain-text response (errors)."""
    return Response(status, text.encode() + b"\n", headers=headers)


class Router:
    """Maps a method and a path to a handler."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], Handler] = {}
        # (method, prefix, parameter name): the path is prefix + one segment.
        self.param: list[tuple[str, str, str, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Route `method` requests for `pattern` to `handler`."""
        head, brace, tail = pattern.partition("{")
        if not brace:
            self.exact[(method, pattern)] = handler
            return
        if not tail.endswith("}") or "/" in tail:
            raise ValueError(f"{pattern}: only a last {{name}} segment is supported")
        self.param.append((method, head, tail[:-1], handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | Response:
        """The handler and its parameters, or the 404 / 405 response."""
        handler = self.exact.get((method, path))
        if handler is not None:
            return handler, {}
        for m, prefix, name, h in self.param:
            rest = path[len(prefix) :]
            if m == method and path.startswith(prefix) and rest and "/" not in rest:
                return h, {name: rest}
        allowed = sorted({m for m, p in self.exact if p == path})
        if allowed:
            return text_response(405, "method not allowed", (("Allow", ", ".join(allowed)),))
        return text_response(404, "not found")
