"""The witness service: one UDP socket, the lease ledger, its state file, and a log line per change.

Datagrams are handled one at a time, to the end, in the order they arrive: a
request is checked, applied to the ledger, the state file written when the holder
changed (before answering: a grant is durable before anyone hears of it), and
answered to the address it came from. A write that fails leaves the ledger as it
was and sends no answer, so the client reports the witness unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from hotstandby.core import timing
from hotstandby.core.cluster import Cluster
from hotstandby.wire.codec import WireError
from hotstandby.witness import state
from hotstandby.witness.lease import Ledger, restarted
from hotstandby.witness.protocol import Kind, Request, Verdict, WitnessCodec

log = logging.getLogger("hotstandby.witness")


def lease_span(cluster: Cluster) -> float:
    """How long the witness keeps a lease from a request's arrival: lease plus drift margin.

    The holder counts `timing.lease_validity` (the lease minus the margin) from its
    send, so by any two clocks within the configured drift the holder ends it first.
    """
    lease = cluster.timers.lease
    return lease + timing.drift_margin(cluster, lease)


class WitnessServer:
    """Grants one cluster's lease to one node at a time, over authenticated UDP."""

    def __init__(
        self,
        cluster: Cluster,
        secret: bytes,
        state_path: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.codec = WitnessCodec(cluster.name, secret)
        self.state_path = state_path
        self.clock = clock
        self.span = lease_span(cluster)
        saved = state.load(state_path, cluster.name)
        self.ledger = Ledger(restarted(self.span, saved.holder, clock()), dict(saved.numbers))
        self.dropped: dict[str, int] = {}
        self.answered = 0
        self.write_errors = 0
        self.transport: asyncio.DatagramTransport | None = None
        if saved.holder is not None:
            log.info(
                "restart: %s held the lease; nobody else is granted for %.3fs",
                saved.holder,
                self.span,
            )
        else:
            log.info("start: no holder recorded; nobody is granted for %.3fs", self.span)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on (host, port); the address actually bound."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port), reuse_port=False
        )
        self.transport = transport
        bound = transport.get_extra_info("sockname")
        log.info("listening on %s port %d (lease span %.3fs)", bound[0], bound[1], self.span)
        return bound[0], bound[1]

    def close(self) -> None:
        """Stop listening and write the request numbers down (a clean stop)."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        try:
            self._save()
        except OSError as err:
            log.error("cannot write %s at stop: %s", self.state_path, err)

    def _save(self) -> None:
        t = self.clock()
        table = self.ledger.table
        saved = state.Saved(
            self.cluster.name, table.holder, table.remaining(t), dict(self.ledger.numbers)
        )
        state.save(self.state_path, saved)

    def drop(self, reason: str) -> None:
        """Count one datagram dropped, and why (logged the first time for each reason)."""
        count = self.dropped.get(reason, 0) + 1
        self.dropped[reason] = count
        if count == 1 and reason not in ("repeated", "stale"):
            # Once per reason: a flood of forgeries must not flood the log too.
            log.warning("dropped a datagram (%s); further ones are only counted", reason)

    def handle(self, data: bytes) -> bytes | None:
        """One datagram in, the answer to send back (None: nothing)."""
        try:
            request = self.codec.decode_request(data)
        except WireError as err:
            self.drop(err.reason)
            return None
        if request.node not in self.cluster.node_names:
            self.drop("unknown_node")  # signed with our secret: a node of another file?
            return None
        before = self.ledger
        after, answer, repeat = before.apply(request, self.clock())
        if repeat is not None:
            self.drop(repeat)
        if after.table.holder != before.table.holder:
            self.ledger = after
            try:
                self._save()
            except OSError as err:
                self.ledger = before
                self.write_errors += 1
                log.error("cannot write %s: %s; request not answered", self.state_path, err)
                return None
        self.ledger = after
        if repeat is None:
            _log_decision(request, answer.verdict, answer.holder, answer.remaining)
        self.answered += 1
        return self.codec.encode_answer(answer)


def _log_decision(request: Request, verdict: Verdict, holder: str | None, left: float) -> None:
    what = f"{request.kind.name.lower()} from {request.node} (epoch {request.epoch})"
    if verdict is Verdict.DENIED:
        log.info("%s: denied, %s holds the lease for %.3fs more", what, holder, left)
    elif verdict is Verdict.WAIT:
        log.info("%s: wait, restarted less than one lease span ago", what)
    elif verdict is Verdict.RELEASED:
        log.info("%s: released; holder now %s", what, holder or "nobody")
    elif verdict is Verdict.STALE:
        log.info("%s: stale request number", what)
    elif request.kind is Kind.RENEW:
        log.debug("%s: renewed for %.3fs", what, left)
    else:
        log.info("%s: granted for %.3fs", what, left)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: WitnessServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self.server.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error: %s", exc)
