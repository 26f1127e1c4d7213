"""The agent's witness client: the arbiter adapter of `mode = "witness"`.

One request at a time (a lock), each under a new request number that only grows
(microseconds of the wall clock at start, then one more per request), sent on a
connected UDP socket and sent again every `retry` seconds until the answer that
echoes its number arrives or `budget` runs out. The witness applies each node's
requests in number order and drops older ones, so a retry of an earlier request can
never land after a later one. Answers carry the request's `at` as their sent_at: the
engine counts a lease from its own send time, never from the answer.

A RELEASE is answered by the witness only so that it can be retried until it is
heard; the engine expects no answer to it. Unanswered requests become UNREACHABLE
(for a RELEASE: nothing), and so does the witness's WAIT (it restarted within a
lease span and grants only the holder it recorded).
"""

from __future__ import annotations

import asyncio
import logging
import time

from hotstandby.core.messages import ArbiterAnswer, ArbiterOutcome, ArbiterRequest
from hotstandby.wire.codec import WireError
from hotstandby.witness.protocol import Answer, Kind, Request, Verdict, WitnessCodec

log = logging.getLogger("hotstandby.agent.witness")

_KINDS = {
    ArbiterRequest.RENEW: Kind.RENEW,
    ArbiterRequest.CLAIM: Kind.CLAIM,
    ArbiterRequest.RELEASE: Kind.RELEASE,
}
_OUTCOMES = {
    Verdict.RENEWED: ArbiterOutcome.RENEWED,
    Verdict.GRANTED: ArbiterOutcome.GRANTED,
    Verdict.DENIED: ArbiterOutcome.DENIED,
}


def split_address(text: str) -> tuple[str, int]:
    """("host", port) of a "host:port" or "[v6]:port" witness address."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class WitnessClient:
    """Asks the witness at `address` for this node's lease."""

    def __init__(
        self,
        cluster: str,
        node: str,
        secret: bytes,
        address: str,
        *,
        budget: float,
        retry: float,
    ) -> None:
        self.codec = WitnessCodec(cluster, secret)
        self.node = node
        self.address = address
        self.budget = budget
        self.retry = retry
        self.number = time.time_ns() // 1000
        self.dropped: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._transport: asyncio.DatagramTransport | None = None
        self._waiting: tuple[int, asyncio.Future[Answer]] | None = None

    async def _connect(self) -> asyncio.DatagramTransport:
        if self._transport is None or self._transport.is_closing():
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), remote_addr=split_address(self.address)
            )
            self._transport = transport
        return self._transport

    def received(self, data: bytes) -> None:
        """An answer arrived: resolve the request waiting for it, if any."""
        try:
            answer = self.codec.decode_answer(data)
        except WireError as err:
            self._drop(err.reason)
            return
        waiting = self._waiting
        if answer.node != self.node or waiting is None or answer.number != waiting[0]:
            self._drop("unexpected")  # a late answer to an abandoned request
            return
        if not waiting[1].done():
            waiting[1].set_result(answer)

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    async def ask(
        self, request: ArbiterRequest, epoch: int, at: float, peer: str | None, token: int = 0
    ) -> list[ArbiterAnswer]:
        """Carry out one request; answers carry `at` as their sent_at (no token: disk only)."""
        kind = _KINDS.get(request)
        if kind is None:
            return []  # ACK is the disk's; a witness has nothing to do with it
        deadline = time.monotonic() + self.budget
        async with self._lock:
            answer, tries = await self._exchange(kind, epoch, deadline)
            if answer is not None and answer.verdict is Verdict.STALE:
                # Our numbers went back (clock set back across a restart): start above.
                log.warning("witness %s: request number stale; renumbering", self.address)
                self.number = max(self.number, answer.last)
                answer, more = await self._exchange(kind, epoch, deadline)
                tries += more
        if kind is Kind.RELEASE:
            if answer is None:
                log.warning("witness %s: release not acknowledged", self.address)
            return []
        if answer is None:
            detail = f"no answer from the witness {self.address} ({tries} tries)"
            return [ArbiterAnswer(ArbiterOutcome.UNREACHABLE, at, detail=detail)]
        outcome = _OUTCOMES.get(answer.verdict)
        if outcome is None:
            detail = f"the witness {self.address} restarted recently and grants only its holder"
            if answer.verdict is Verdict.STALE:
                detail = f"the witness {self.address} keeps calling our request number stale"
            return [ArbiterAnswer(ArbiterOutcome.UNREACHABLE, at, detail=detail)]
        detail = ""
        if outcome is ArbiterOutcome.DENIED:
            detail = f"{answer.holder} holds the lease for {answer.remaining:.3f}s more"
        return [ArbiterAnswer(outcome, at, detail=detail)]

    async def _exchange(self, kind: Kind, epoch: int, deadline: float) -> tuple[Answer | None, int]:
        """Send one numbered request until answered or `deadline`: (answer, tries)."""
        self.number += 1
        data = self.codec.encode_request(Request(self.node, self.number, kind, epoch))
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting = (self.number, future)
        tries = 0
        try:
            transport = await self._connect()
            while True:
                left = deadline - time.monotonic()
                # Sent at least once, even when the lock took the whole budget: a
                # RELEASE queued behind a slow renewal must still reach the witness.
                if left <= 0 and tries:
                    return None, tries
                tries += 1
                transport.sendto(data)
                try:
                    answer = await asyncio.wait_for(asyncio.shield(future), min(self.retry, left))
                except TimeoutError:
                    continue
                return answer, tries
        except OSError as err:
            log.debug("witness %s: %s", self.address, err)
            return None, tries
        finally:
            self._waiting = None

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, client: WitnessClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.client.received(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable on a connected socket: the retries carry on.
        log.debug("witness %s: %s", self.client.address, exc)
