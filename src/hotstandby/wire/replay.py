"""Replay protection for authenticated heartbeats: boot id plus sequence number.

A heartbeat is only worth accepting if it is newer than anything heard from its
sender: a higher seq within the same boot, or a higher boot. Boot ids grow with
every start of a sender's agent (a persisted counter in the high bits, random bits
below), so a recording from an earlier boot is always recognisable as older. The
MAC already proves who sent it; this module proves it is not an old recording.

Keep one `ReplayGuard` per link: the same heartbeat goes out on every link with one
seq, so a guard shared by links would drop the copies as replays.

Limit, by design of a pure, memory-only guard: before this receiver has heard its
sender at all (just after it starts), an old recording is accepted once; the
sender's genuine beats carry a higher boot or seq and replace it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReplayReason(StrEnum):
    """Why a heartbeat was rejected as stale."""

    REPLAYED = "replayed"  # same boot, seq not higher than the highest seen
    OLD_BOOT = "old_boot"  # a boot of the sender older than the one heard


@dataclass
class _Sender:
    boot: int
    seq: int


class ReplayGuard:
    """Remembers, per sender, its newest boot and the highest seq in it."""

    def __init__(self) -> None:
        self._senders: dict[str, _Sender] = {}

    def check(self, sender: str, boot: int, seq: int) -> ReplayReason | None:
        """Why (sender, boot, seq) would be rejected, or None if it is fresh; no change."""
        known = self._senders.get(sender)
        if known is None:
            return None
        if boot == known.boot:
            return None if seq > known.seq else ReplayReason.REPLAYED
        return ReplayReason.OLD_BOOT if boot < known.boot else None

    def admit(self, sender: str, boot: int, seq: int) -> ReplayReason | None:
        """Check and, when fresh, record it; returns the rejection reason or None."""
        reason = self.check(sender, boot, seq)
        if reason is not None:
            return reason
        known = self._senders.get(sender)
        if known is None:
            self._senders[sender] = _Sender(boot, seq)
        else:
            # Same boot with a higher seq, or the sender restarted: its earlier
            # boots are closed for good.
            known.boot, known.seq = boot, seq
        return None

    def last(self, sender: str) -> tuple[int, int] | None:
        """The (boot, highest seq) accepted from `sender`, or None if never heard."""
        known = self._senders.get(sender)
        return None if known is None else (known.boot, known.seq)
