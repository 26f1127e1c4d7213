"""The interfaces between the agent loop and its adapters.

Each adapter only carries out what it is told and reports what happened; every
decision stays in the core. Every method has its own timeout, enforced by the
adapter or the caller, so nothing can hang the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol, runtime_checkable

from hotstandby.core.messages import (
    Action,
    ArbiterAnswer,
    ArbiterRequest,
    FollowDone,
    Outcome,
    ReplicasRequired,
    ReplicationReport,
)


@dataclass
class LinkStats:
    """What a link adapter counts, shown by `hotstandby status`."""

    sent: int = 0
    received: int = 0
    send_errors: int = 0
    # Dropped input by reason: bad_mac, replayed, truncated, wrong_cluster, ...
    dropped: dict[str, int] = field(default_factory=dict)
    # Heartbeats not sent, by reason (line_busy, io_busy, io_timeout, EPERM, ...);
    # their sum equals send_errors when every failure goes through fail_send.
    send_failed: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        """Count dropped messages (one by default)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def fail_send(self, reason: str) -> None:
        """Count one heartbeat that could not be sent, and why."""
        self.send_errors += 1
        self.send_failed[reason] = self.send_failed.get(reason, 0) + 1


# Called by a link for every authenticated message: (link name, raw message bytes).
Deliver = Callable[[str, bytes], None]


class HeartbeatLink(Protocol):
    """One heartbeat path (udp, serial, disk)."""

    name: str
    stats: LinkStats

    async def start(self, deliver: Deliver) -> None:
        """Open the path and begin delivering received messages."""

    def send(self, message: bytes) -> None:
        """Send one encoded heartbeat; never blocks (drop and count on failure)."""

    async def close(self) -> None:
        """Stop and release the path."""


@dataclass(frozen=True)
class ActionResult:
    """What a resource action found."""

    outcome: Outcome
    detail: str = ""


# Called by a resource adapter, from the event loop (never from a worker thread), for a step
# of an action that an operator should see as it happens: (resource name, what was done),
# e.g. "stop: 2 processes still hold /srv/data: sent SIGTERM to 812, 815".
StepReport = Callable[[str, str], None]


def ignore_steps(resource: str, message: str) -> None:
    """A StepReport that drops every step (tests, `check`)."""


class ResourceAdapter(Protocol):
    """One resource kind's start, stop and monitor for one configured resource."""

    name: str

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out the action; the caller enforces the configured timeout.

        `released` (starts only): every other node confirmed it holds nothing, so a check
        for another live holder (the floating IP's conflict probe) may be skipped.
        """


@runtime_checkable
class TickledAdapter(Protocol):
    """A resource holding floating addresses whose clients a takeover tickles (agent/tickle.py).

    The agent publishes this node's connections on them while it holds them, and tickles
    the old holder's clients after a start of a takeover that was not `released`.
    """

    @property
    def tickle_addresses(self) -> tuple[IPv4Address | IPv6Address, ...]:
        """The addresses (empty when tickles are off for this resource)."""


@runtime_checkable
class ReplicatedAdapter(Protocol):
    """A resource whose data every node keeps a copy of (a replicated database).

    The core decides; the adapter carries out RequireReplicas and FollowPrimary and reports
    what its server sees (`last_report`, set by each successful monitor and start of a
    primary, read by the agent right after).
    """

    last_report: ReplicationReport | None

    @property
    def follow_timeout(self) -> float:
        """The longest one follow() may take (it may copy the whole database)."""

    async def require(self, nodes: tuple[str, ...]) -> ReplicasRequired:
        """Make every commit wait for each of `nodes`; answer once in effect."""

    async def follow(self, primary: str | None) -> FollowDone:
        """Make this node's copy a replica streaming from `primary` (None: keep it)."""

    async def health(self) -> dict[str, object]:
        """This node's server now: running, primary, replica, streaming, lag_bytes, detail."""


class FenceAdapter(Protocol):
    """Fences a node through the configured methods in order."""

    @property
    def total_timeout(self) -> float:
        """The longest one fence() may take: every method to its own timeout."""

    async def fence(self, target: str) -> tuple[bool, str]:
        """Fence `target`; (True, detail) only when a method confirmed it."""


class ArbiterAdapter(Protocol):
    """The witness client or the shared-disk message slots.

    A node's requests must take effect in the order they were asked (one at a
    time, or numbered and checked by the arbiter): a RELEASE overtaken by a later
    CLAIM would free a lease its holder believes it kept. Of the answers to one
    read of the disk slot, RENEWED comes last: it marks the read complete.
    """

    async def ask(
        self, request: ArbiterRequest, epoch: int, at: float, peer: str | None, token: int = 0
    ) -> list[ArbiterAnswer]:
        """Carry out one request; answers carry `at` as their sent_at."""
