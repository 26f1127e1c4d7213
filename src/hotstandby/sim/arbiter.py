"""The tie-breakers a standby asks for evidence: a witness lease table and disk message slots."""

from __future__ import annotations

from hotstandby.core.messages import ArbiterOutcome, ArbiterRequest


class Witness:
    """A lease table in real time on a third machine.

    A lease runs from the request's arrival for `span` (the lease plus the drift
    margin), so the holder, counting from its send, always ends it first.
    """

    __slots__ = ("expiry", "holder", "span")

    def __init__(self, span: float) -> None:
        self.span = span
        self.holder: str | None = None
        self.expiry = 0.0

    def request(self, node: str, req: ArbiterRequest, t: float) -> ArbiterOutcome | None:
        """Apply a request that arrived at real time `t`; the answer (None: no answer)."""
        free = self.holder is None or self.holder == node or self.expiry <= t
        if req is ArbiterRequest.CLAIM or req is ArbiterRequest.RENEW:
            if not free:
                return ArbiterOutcome.DENIED
            self.holder, self.expiry = node, t + self.span
            return ArbiterOutcome.GRANTED if req is ArbiterRequest.CLAIM else ArbiterOutcome.RENEWED
        if req is ArbiterRequest.RELEASE and self.holder == node:
            self.holder = None
        return None

    def valid_holder(self, t: float) -> str | None:
        """Who holds an unexpired lease at real time `t`."""
        return self.holder if self.holder is not None and self.expiry > t else None


class DiskSlots:
    """Per-node message slots on the shared disk: "release or die" and its acknowledgement.

    Each message carries the claim's token, so an old acknowledgement never answers
    a newer claim.
    """

    __slots__ = ("released", "requests")

    def __init__(self, nodes: tuple[str, ...]) -> None:
        # requests[n]: who asked n to release, with the claim's token;
        # released[n]: who told n it released, echoing that token.
        self.requests: dict[str, tuple[str, int] | None] = dict.fromkeys(nodes)
        self.released: dict[str, tuple[str, int] | None] = dict.fromkeys(nodes)

    def request(
        self, node: str, req: ArbiterRequest, peer: str | None, token: int = 0
    ) -> list[tuple[ArbiterOutcome, str | None, int]]:
        """Apply a request from `node`; the answers to deliver, in order."""
        if req is ArbiterRequest.CLAIM:
            for other in self.requests:
                if other != node and (peer is None or other == peer):
                    self.requests[other] = (node, token)
            self.released[node] = None
            return [(ArbiterOutcome.GRANTED, peer, token)]
        if req is ArbiterRequest.RENEW:
            out: list[tuple[ArbiterOutcome, str | None, int]] = [(ArbiterOutcome.RENEWED, None, 0)]
            posted = self.requests[node]
            if posted is not None:
                out.append((ArbiterOutcome.RELEASE_REQUESTED, posted[0], posted[1]))
            ack = self.released[node]
            if ack is not None:
                self.released[node] = None
                out.append((ArbiterOutcome.PEER_RELEASED, ack[0], ack[1]))
            return out
        if req is ArbiterRequest.ACK:
            posted = self.requests[node]
            claimant = peer if peer is not None else (posted[0] if posted else None)
            if posted is not None and posted[0] == claimant:
                self.requests[node] = None
            if claimant is not None and claimant in self.released:
                self.released[claimant] = (node, token)
            return []
        return []
