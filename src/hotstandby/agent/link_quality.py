"""Per link and peer: how many heartbeats are lost, and how long an echo of ours takes.

Loss comes from sequence numbers: a peer sends every heartbeat on every link, so
the gaps on one link are what that link lost. It is counted over windows of
`WINDOW` sequence numbers and reported for the last complete window (or the
current one while the first fills).

A polled link (the shared disk: each node overwrites its slot every interval and reads the
others' every interval) sees one heartbeat overwritten between two reads whenever the two
schedules drift across each other: that is sampling, not loss. On such a link one missing
heartbeat between two received ones is counted as received; two or more in a row are lost
(the storage, or the peer, stalled for a whole interval).

The round trip is read from echoes: a heartbeat says the highest sequence number
its sender has heard from us; the time since we sent that one is a round trip
plus however long the peer held it before its next heartbeat (up to an interval).
The smallest of the recent ones is the best estimate of the round trip itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

WINDOW = 200  # sequence numbers per loss window
ECHOES = 50  # recent echo times kept for the round-trip estimate


@dataclass
class _Track:
    boot: int = -1
    first: int = 0  # first seq of the current window
    last: int = 0
    got: int = 0
    loss: float | None = None  # of the last complete window
    echoes: deque[float] = field(default_factory=lambda: deque(maxlen=ECHOES))


class LinkQuality:
    """Loss and round trip for every (link, peer)."""

    def __init__(self, polled: frozenset[str] = frozenset()) -> None:
        self._polled = polled  # the names of the polled links
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._sent: dict[int, float] = {}

    def sent(self, seq: int, at: float) -> None:
        """Our heartbeat `seq` left at `at` (monotonic seconds)."""
        self._sent[seq] = at
        if len(self._sent) > 4 * ECHOES:
            for old in list(self._sent)[: len(self._sent) - 2 * ECHOES]:
                del self._sent[old]

    def received(
        self, link: str, peer: str, boot: int, seq: int, echo: int | None, at: float
    ) -> None:
        """A heartbeat from `peer` arrived on `link`, echoing our `echo` (or nothing)."""
        t = self._tracks.setdefault((link, peer), _Track())
        if boot != t.boot:
            t.boot, t.first, t.last, t.got, t.loss = boot, seq, seq, 0, None
        elif link in self._polled and seq - t.last >= 2:
            t.got += 1  # the one overwritten between two reads
        t.got += 1
        t.last = max(t.last, seq)
        span = t.last - t.first + 1
        if span >= WINDOW:
            t.loss = max(0.0, 1.0 - t.got / span)
            t.first, t.got = t.last + 1, 0
        if echo is not None and echo in self._sent:
            t.echoes.append(at - self._sent[echo])

    def loss(self, link: str, peer: str) -> float | None:
        """The share of heartbeats lost on the link, None before any arrived."""
        t = self._tracks.get((link, peer))
        if t is None:
            return None
        if t.loss is not None:
            return t.loss
        span = t.last - t.first + 1
        return max(0.0, 1.0 - t.got / span) if span > 0 else None

    def round_trip(self, link: str, peer: str) -> float | None:
        """The smallest recent echo time: a round trip, plus at most a peer's wait."""
        t = self._tracks.get((link, peer))
        return min(t.echoes) if t is not None and t.echoes else None
