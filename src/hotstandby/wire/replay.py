"""Replay protection for authenticated heartbeats: boot id plus sequence number.

A heartbeat is only worth accepting if it is newer than anything heard from its
sender: a higher seq within the same boot, or a boot never seen before. The MAC
already proves who sent it; this module proves it is not an old recording.

Keep one `ReplayGuard` per link: the same heartbeat goes out on every link with one
seq, so a guard shared by links would drop the copies as replays.

A new boot id must be accepted (the peer restarted) but must not reopen an old
boot: the guard remembers the last `max_old_boots` boot ids of each sender and
rejects them. Boot ids are random 64-bit values, so an attacker cannot guess a
fresh one, and cannot forge one without the secret. Limits, by design of a pure,
memory-only guard: a recording older than `max_old_boots` restarts of its sender is
accepted once as a "new" boot, and so is any recording offered before the first
genuine beat after this receiver starts; the core's epoch ordering limits what such a
stale beat can do, and the genuine beats that follow replace it at once.

Senders should be checked against the configured nodes before `admit`, so the
memory kept here stays bounded by the cluster's size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class ReplayReason(StrEnum):
    """Why a heartbeat was rejected as stale."""

    REPLAYED = "replayed"  # same boot, seq not higher than the highest seen
    OLD_BOOT = "old_boot"  # a boot of the sender that has since been replaced


@dataclass
class _Sender:
    boot: int
    seq: int
    old_boots: deque[int] = field(default_factory=deque)


class ReplayGuard:
    """Remembers, per sender, its current boot, highest seq and recent old boots."""

    def __init__(self, max_old_boots: int = 16) -> None:
        if max_old_boots < 1:
            raise ValueError("max_old_boots must be at least 1")
        self.max_old_boots = max_old_boots
        self._senders: dict[str, _Sender] = {}

    def check(self, sender: str, boot: int, seq: int) -> ReplayReason | None:
        """Why (sender, boot, seq) would be rejected, or None if it is fresh; no change."""
        known = self._senders.get(sender)
        if known is None:
            return None
        if boot == known.boot:
            return None if seq > known.seq else ReplayReason.REPLAYED
        if boot in known.old_boots:
            return ReplayReason.OLD_BOOT
        return None

    def admit(self, sender: str, boot: int, seq: int) -> ReplayReason | None:
        """Check and, when fresh, record it; returns the rejection reason or None."""
        reason = self.check(sender, boot, seq)
        if reason is not None:
            return reason
        known = self._senders.get(sender)
        if known is None:
            self._senders[sender] = _Sender(boot, seq)
        elif boot == known.boot:
            known.seq = seq
        else:
            # The sender restarted: its previous boot is closed for good (until it
            # ages out of the bounded memory).
            known.old_boots.append(known.boot)
            if len(known.old_boots) > self.max_old_boots:
                known.old_boots.popleft()
            known.boot, known.seq = boot, seq
        return None

    def last(self, sender: str) -> tuple[int, int] | None:
        """The (boot, highest seq) accepted from `sender`, or None if never heard."""
        known = self._senders.get(sender)
        return None if known is None else (known.boot, known.seq)
