"""What one node knows of each peer: its last heartbeat, and the state of every link to it.

A link is up while heartbeats arrive on it within the dead time. A peer is
*confirmed* while some link is up **and** the peer's heartbeats show that it hears
us too (it echoes one of our recent sequence numbers). The second half makes a
one-way cut look the same from both ends: the node that still hears its peer
also learns that the peer no longer hears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from hotstandby.core.messages import Heartbeat, Role


class LinkState(StrEnum):
    """A link as seen from this node."""

    UNKNOWN = "unknown"  # never heard on it since boot
    UP = "up"
    LATE = "late"  # silent longer than the warn time
    DOWN = "down"  # silent longer than the dead time


@dataclass
class LinkView:
    """One link to one peer."""

    state: LinkState = LinkState.UNKNOWN
    last_seen: float | None = None
    received: int = 0


@dataclass
class PeerView:
    """Everything this node believes about one peer."""

    name: str
    links: dict[str, LinkView]
    beat: Heartbeat | None = None  # the newest heartbeat, by sequence
    last_heard: float | None = None
    # Our local send time of the newest heartbeat of ours the peer has echoed.
    acked_sent_at: float | None = None
    confirmed: bool = False
    lost_at: float | None = None  # when we last stopped confirming it
    # The heartbeat it sent last before we lost it: what it held and promised then.
    beat_at_loss: Heartbeat | None = None
    digest_warned: bool = False

    @property
    def role(self) -> Role | None:
        """Its role as last heard, or None if never heard."""
        return self.beat.role if self.beat else None

    @property
    def epoch(self) -> int:
        """Its epoch as last heard (0 if never heard)."""
        return self.beat.epoch if self.beat else 0

    def might_hold(self) -> bool:
        """Whether, while not confirmed, it could be holding resources.

        A peer never heard from might hold anything; otherwise believe its last
        word, since a standby takes nothing without evidence about us.
        """
        if self.beat is None:
            return True
        last = self.beat_at_loss or self.beat
        return last.holds

    def holds_now(self) -> bool:
        """Confirmed and saying it holds something."""
        return self.confirmed and self.beat is not None and self.beat.holds

    def is_active_now(self) -> bool:
        """Confirmed and in a role that owns the group."""
        return self.confirmed and self.role in (Role.ACTIVE, Role.TAKING_OVER)


def new_peer(name: str, link_names: tuple[str, ...]) -> PeerView:
    """A peer nothing has been heard from yet."""
    return PeerView(name=name, links={link: LinkView() for link in link_names})


def accept(peer: PeerView, link: str, beat: Heartbeat, now: float) -> bool:
    """Record a heartbeat; True when it is the newest from this peer (not a copy).

    The same heartbeat arrives once per link; older or repeated ones still prove
    the link they came on works.
    """
    view = peer.links[link]
    view.last_seen = now
    view.received += 1
    peer.last_heard = now
    if peer.beat is not None and beat.boot < peer.beat.boot:
        return False  # a late copy from a boot the peer has since left behind
    # A newer boot is always newer. Its first heartbeats echo nothing yet, so `acked_sent_at`
    # is kept: the previous boot's echo still proves, until it is a dead time old, that
    # heartbeats cross both ways; forgetting it would take a quick restart of the peer's
    # agent for a one-way cut (and fence it).
    if peer.beat is not None and beat.boot == peer.beat.boot and beat.seq <= peer.beat.seq:
        return False
    peer.beat = beat
    return True
