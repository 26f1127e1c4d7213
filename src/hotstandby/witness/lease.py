"""The witness's lease table and request ordering: pure, with time passed in.

The lease rules are those of the simulator's model (`hotstandby.sim.arbiter.Witness`),
which the simulator proves safe with the engine: a lease runs from the request's
arrival for `span` (the lease plus the drift margin), so the holder, counting its
lease from its send and shortened by the drift margin, always ends it first. A CLAIM
or RENEW is granted when the lease is free, held by the same node, or expired; a
RELEASE frees it only when that node holds it.

Restart rule. The witness cannot measure time across its own restart (monotonic
clocks restart with the machine, wall clocks jump), so a lease it granted just
before going down may still run for up to one span after it comes back, and a lease
it granted but never managed to write down does not exist for it. Hence: a grant is
written to the state file before it is answered, and for one full span after start
the witness grants nobody but the holder the file names (a node that still holds a
lease granted before the restart holds it alone). Others get WAIT, which the client
reports as "unreachable", not as a denial: an active node that merely lost its lease
record keeps running while it sees its peer, and gives up in time if it does not.
The holder itself may renew at once: its lease is its own either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hotstandby.core.messages import ArbiterOutcome, ArbiterRequest
from hotstandby.witness.protocol import Answer, Kind, Request, Verdict

_KIND_REQUEST = {
    Kind.RENEW: ArbiterRequest.RENEW,
    Kind.CLAIM: ArbiterRequest.CLAIM,
    Kind.RELEASE: ArbiterRequest.RELEASE,
}


@dataclass(frozen=True)
class LeaseTable:
    """Who holds the lease until when (monotonic seconds), and the restart hold-off."""

    span: float
    holder: str | None = None
    expiry: float = 0.0
    # Until `quiet_until`, nobody but `quiet_holder` is granted (see the restart rule).
    quiet_until: float = 0.0
    quiet_holder: str | None = None

    def request(
        self, node: str, req: ArbiterRequest, t: float
    ) -> tuple[LeaseTable, ArbiterOutcome | None]:
        """Apply `req` from `node` arriving at `t`: the new table and the model's answer.

        The answer is None for a RELEASE (the model gives none), and also for a
        claim or renew refused only by the restart hold-off (the server says WAIT).
        """
        if req is ArbiterRequest.RELEASE:
            if self.holder == node:
                return replace(self, holder=None), None
            return self, None
        if req not in (ArbiterRequest.CLAIM, ArbiterRequest.RENEW):
            return self, None
        free = self.holder is None or self.holder == node or self.expiry <= t
        if not free:
            return self, ArbiterOutcome.DENIED
        if t < self.quiet_until and node != self.quiet_holder:
            return self, None
        granted = replace(self, holder=node, expiry=t + self.span)
        won = ArbiterOutcome.GRANTED if req is ArbiterRequest.CLAIM else ArbiterOutcome.RENEWED
        return granted, won

    def valid_holder(self, t: float) -> str | None:
        """Who holds an unexpired lease at `t`."""
        return self.holder if self.holder is not None and self.expiry > t else None

    def remaining(self, t: float) -> float:
        """Seconds left on the current lease at `t` (0 when none runs)."""
        return max(0.0, self.expiry - t) if self.valid_holder(t) is not None else 0.0


def restarted(span: float, holder: str | None, t: float) -> LeaseTable:
    """The table after a start at `t` with `holder` read from the state file."""
    return LeaseTable(
        span=span, holder=holder, expiry=t + span, quiet_until=t + span, quiet_holder=holder
    )


@dataclass(frozen=True)
class Ledger:
    """The lease table plus each node's last applied request number and its answer."""

    table: LeaseTable
    numbers: dict[str, int] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)

    def apply(self, request: Request, t: float) -> tuple[Ledger, Answer, str | None]:
        """Apply one authenticated request at `t`: the new ledger, the answer, a drop reason.

        A repeat of a node's last request gets the same answer again, unapplied (its
        first answer was lost); an older one gets STALE and changes nothing. The drop
        reason ("repeated", "stale") is None for a request applied now.
        """
        last = self.numbers.get(request.node)
        if last is not None and request.number == last and request.node in self.answers:
            return self, self.answers[request.node], "repeated"
        if last is not None and request.number <= last:
            stale = Answer(request.node, request.number, Verdict.STALE, last=last)
            return self, stale, "stale"
        table, outcome = self.table.request(request.node, _KIND_REQUEST[request.kind], t)
        answer = Answer(
            request.node,
            request.number,
            _verdict(request.kind, outcome),
            table.valid_holder(t),
            table.remaining(t),
        )
        numbers = {**self.numbers, request.node: request.number}
        answers = {**self.answers, request.node: answer}
        return Ledger(table, numbers, answers), answer, None


def _verdict(kind: Kind, outcome: ArbiterOutcome | None) -> Verdict:
    if kind is Kind.RELEASE:
        return Verdict.RELEASED
    if outcome is None:
        return Verdict.WAIT
    return {
        ArbiterOutcome.GRANTED: Verdict.GRANTED,
        ArbiterOutcome.RENEWED: Verdict.RENEWED,
    }.get(outcome, Verdict.DENIED)
