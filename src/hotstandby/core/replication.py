"""Replicated data: which copy may be promoted, and which replicas every commit waits for.

Pure; the Engine owns one when the cluster has a [replication] table. Two halves:

The primary (this node holds the group and the replicated resource runs here) decides the
replicas every commit waits for (RequireReplicas) and lists in its heartbeat the replicas
that may be promoted (`Heartbeat.promotable`). Synchronous: a replica is listed once it is
required and has flushed the WAL up to the position at which the requirement took effect
(every commit acknowledged without it lies before that position; every later one waited for
it). Asynchronous: a replica is listed while it streams with a lag under max_lag.

With on_replica_lost = "degrade", a required replica that has not streamed for
degrade_after is dropped from the requirement, but only once it can no longer believe itself
promotable: its heartbeat says it is not and it has heard a heartbeat that no longer lists
it, or it has been silent for degrade_after. A standby's belief lapses degrade_after after
the newest of its own heartbeats the primary echoed, so a silent replica has stopped
believing before the primary goes on without it. "wait": every other node stays required;
commits block while a replica is away.

A standby believes its copy promotable while the holder's newest heartbeat lists it (and,
degrading, until that lapse). The takeover rule gains one condition: a standby that lost
the primary arbitrates, and takes over, only while it believes its copy promotable. A node
that held the group last (as persisted, or in this run until a later term is heard of)
counts as promotable only in an election, with every node in view, never to take over
alone: it cannot know whether a newer primary came after it; a peer at a higher epoch ends
that claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hotstandby.core.cluster import OnReplicaLost, Replication
from hotstandby.core.messages import (
    AlarmKind,
    FollowDone,
    FollowPrimary,
    Heartbeat,
    Reason,
    ReplicasRequired,
    ReplicationReport,
    RequireReplicas,
    Role,
    Severity,
)
from hotstandby.core.peers import PeerView

#: A replica that is not required is required again once it streams this close behind
#: (bytes): a larger gap would block commits while it catches up.
CATCHUP_LAG = 1 << 20
#: After a failed RequireReplicas, the next attempt waits this long.
RETRY = 1.0
HOLDER_ROLES = (Role.TAKING_OVER, Role.ACTIVE, Role.RELEASING)


@dataclass(frozen=True)
class Alarm:
    """An alarm the engine raises for the replication's sake."""

    kind: AlarmKind
    severity: Severity
    message: str
    reason: Reason


class Replicas:
    """One node's view of the replicated data (see the module docstring)."""

    def __init__(self, rules: Replication, me: str, others: tuple[str, ...], drift: float):
        self.rules = rules
        self.me = me
        self.others = others
        self.drift = drift
        # ---- primary half
        self.primary = False  # the replicated resource runs here as the primary
        self.required: dict[str, int] = {}  # confirmed required replica -> position it began
        self.settled = False  # a RequireReplicas was confirmed since this node became primary
        self.asking: tuple[str, ...] | None = None
        self.asked_why = ""  # the outstanding request's reason
        self.next_ask = 0.0
        self.report: ReplicationReport | None = None
        self.caught_up: set[str] = set()  # required and flushed past their position
        self.unstreamed_since: dict[str, float] = {}
        self.dropping: dict[str, int] = {}  # replica -> our first heartbeat not listing it
        self.listed: tuple[str, ...] = ()  # in our newest heartbeat
        # ---- standby half
        self.holder: str | None = None  # the node whose heartbeats last spoke as primary
        self.holder_epoch = 0
        self.named = False  # its newest heartbeat listed this node as promotable
        self.last_primary = False  # held the group last, as persisted (elections only)
        self.follow_pending = False
        self.next_follow = 0.0
        self.followed: str | None = None
        self.follow: FollowDone | None = None
        self.follow_failing = False

    # ------------------------------------------------------------ the primary

    def become_primary(self) -> None:
        """The replicated resource now runs here as primary: decide the requirement afresh."""
        self.primary = True
        self.settled = False
        self.required.clear()
        self.caught_up.clear()
        self.unstreamed_since.clear()
        self.dropping.clear()
        self.asking = None
        self.next_ask = 0.0
        self.report = None
        self.named = False
        self.holder = self.me

    def stop_primary(self) -> None:
        """The resource no longer runs here as primary."""
        self.primary = False
        # Its copy is the newest this node knows of until it hears of a later primary term:
        # after a release that no one took over (an isolated primary's demotion), an
        # election must pick this copy, not an older one.
        self.last_primary = True
        self.required.clear()
        self.caught_up.clear()
        self.dropping.clear()
        self.report = None
        self.listed = ()

    def on_report(self, event: ReplicationReport) -> list[Alarm]:
        """Record the server's view of its replicas."""
        if not self.primary:
            return []
        self.report = event
        alarms: list[Alarm] = []
        gone = [n for n in self.required if n not in event.required]
        if self.settled and self.asking is None and gone:
            # Changed behind our back (ALTER SYSTEM by hand): commits no longer wait for
            # them, so they may lack acknowledged ones.
            for n in gone:
                self._forget(n)
            alarms.append(
                Alarm(
                    AlarmKind.REPLICA_INELIGIBLE,
                    Severity.CRITICAL,
                    f"commits no longer wait for {', '.join(gone)}: the server's setting "
                    "changed outside the cluster; not promotable until required again",
                    Reason("replication.setting_changed", f"in effect: {event.required}"),
                )
            )
        for info in event.replicas:
            start = self.required.get(info.node)
            if start is not None and info.flush_lsn >= start:
                self.caught_up.add(info.node)
        return alarms

    def on_required(self, event: ReplicasRequired, now: float) -> list[Alarm]:
        """The server applied a requirement (or failed to)."""
        if self.asking != event.nodes:
            return []  # an answer to an earlier primary term
        self.asking = None
        if not event.ok:
            self.next_ask = now + RETRY
            return [
                Alarm(
                    AlarmKind.REPLICA_FAILED,
                    Severity.WARNING,
                    f"could not set the replicas commits wait for to {list(event.nodes)}",
                    Reason("replication.require_failed", event.detail),
                )
            ]
        self.settled = True
        alarms = []
        for n in list(self.required):
            if n not in event.nodes:
                self._forget(n)
                alarms.append(
                    Alarm(
                        AlarmKind.REPLICA_INELIGIBLE,
                        Severity.WARNING,
                        f"commits no longer wait for {n}: its copy may not be promoted until "
                        "it has caught up",
                        Reason("replication.degraded", self.asked_why),
                    )
                )
        for n in event.nodes:
            self.required.setdefault(n, event.lsn)
        return alarms

    def _forget(self, node: str) -> None:
        self.required.pop(node, None)
        self.caught_up.discard(node)
        self.dropping.pop(node, None)

    def _streams(self, node: str) -> bool:
        report = self.report
        return report is not None and any(
            r.node == node and r.state == "streaming" for r in report.replicas
        )

    def _lag(self, node: str) -> int | None:
        report = self.report
        if report is None:
            return None
        for r in report.replicas:
            if r.node == node:
                return max(0, report.lsn - r.flush_lsn)
        return None

    def tend_primary(
        self, now: float, peers: Mapping[str, PeerView], next_seq: int
    ) -> tuple[RequireReplicas | None, float | None]:
        """The requirement to ask for now, if it must change; and when to look again."""
        if not self.primary or self.asking is not None or now < self.next_ask:
            return None, (self.next_ask if self.asking is None and self.primary else None)
        wake: float | None = None
        desired: list[str] = []
        why: list[str] = []
        for n in self.others if self.rules.synchronous else ():
            if self.rules.on_replica_lost is OnReplicaLost.WAIT:
                desired.append(n)
                continue
            if n not in self.required:
                lag = self._lag(n)
                if self._streams(n) and lag is not None and lag <= CATCHUP_LAG:
                    desired.append(n)
                    why.append(f"{n} streams {lag} bytes behind")
                continue
            if self._streams(n):
                self.unstreamed_since.pop(n, None)
                self.dropping.pop(n, None)  # back before it was dropped: listed again
                desired.append(n)
                continue
            since = self.unstreamed_since.setdefault(n, now)
            lapse = since + self.rules.degrade_after
            if n not in self.dropping and now < lapse:
                desired.append(n)
                wake = lapse if wake is None else min(wake, lapse)
                continue
            self.dropping.setdefault(n, next_seq)
            knows, at = self._knows_dropped(n, peers.get(n), now)
            if knows:
                why.append(f"{n} has not streamed for {now - since:.1f}s and {knows}")
            else:
                desired.append(n)  # still required until it stops believing
                if at is not None:
                    wake = at if wake is None else min(wake, at)
        want = tuple(sorted(desired))
        if self.settled and set(want) == set(self.required):
            return None, wake
        self.asking = want
        self.asked_why = detail = "; ".join(why) or (
            "commits wait for " + ", ".join(want) if want else "asynchronous replication"
        )
        return RequireReplicas(
            self.rules.resource, want, Reason("replication.require", detail)
        ), wake

    def _knows_dropped(
        self, node: str, peer: PeerView | None, now: float
    ) -> tuple[str, float | None]:
        """Why `node` no longer believes its copy promotable ("" if it may), and when to look."""
        if peer is None or peer.last_heard is None:
            return "was never heard", None
        beat = peer.beat
        heard = dict(beat.heard).get(self.me, -1) if beat is not None else -1
        if beat is not None and not beat.replica_ok and heard >= self.dropping[node]:
            return "says it is no longer promotable", None
        quiet_until = peer.last_heard + self.rules.degrade_after
        if now >= quiet_until:
            return f"has been silent for {now - peer.last_heard:.1f}s", None
        return "", quiet_until

    def promotable_list(self) -> tuple[str, ...]:
        """The replicas this primary lists as promotable in its next heartbeat."""
        if not self.primary:
            self.listed = ()
            return ()
        if self.rules.synchronous:
            out = [n for n in self.others if n in self.caught_up and n not in self.dropping]
        else:
            limit = self.rules.max_lag
            out = []
            for n in self.others:
                lag = self._lag(n)
                if self._streams(n) and lag is not None and (limit < 0 or lag <= limit):
                    out.append(n)
        self.listed = tuple(out)
        return self.listed

    # ------------------------------------------------------------ the standby

    def on_beat(self, beat: Heartbeat, epoch: int) -> None:
        """A newer heartbeat from a peer (this node at `epoch`): a holder's word on who may
        be promoted."""
        if beat.epoch > epoch:
            self.last_primary = False  # a later primary term: this copy may be older
        if beat.holds and beat.role in HOLDER_ROLES:
            if beat.sender != self.holder and beat.epoch >= self.holder_epoch:
                self.next_follow = 0.0  # a new primary: follow it now
            self.holder = beat.sender
            self.holder_epoch = beat.epoch
            self.named = self.me in beat.promotable
            self.last_primary = False  # someone held it after us

    def believes(self, now: float, peers: Mapping[str, PeerView]) -> Reason | None:
        """None when this node's copy may be promoted now; otherwise why not."""
        if self.holder is None or self.holder == self.me:
            return Reason(
                "replica.unknown",
                "no primary has listed this node's copy as promotable since the agent started",
            )
        if not self.named:
            what = (
                "as holding every acknowledged commit"
                if self.rules.synchronous
                else f"as lagging under {self.rules.max_lag} bytes"
            )
            return Reason(
                "replica.not_listed",
                f"{self.holder}'s last heartbeat did not list this copy {what}",
            )
        if self.rules.synchronous and self.rules.on_replica_lost is OnReplicaLost.DEGRADE:
            peer = peers.get(self.holder)
            echoed = peer.acked_sent_at if peer is not None else None
            if echoed is None:
                return Reason("replica.lapsed", f"{self.holder} never echoed this node")
            until = echoed + self.rules.degrade_after * (1 - self.drift)
            if now >= until:
                return Reason(
                    "replica.lapsed",
                    f"{self.holder} last heard this node {now - echoed:.1f}s ago; it may have "
                    f"gone on without this copy after degrade_after "
                    f"({self.rules.degrade_after:g}s)",
                )
        return None

    def lapse_at(self, peers: Mapping[str, PeerView]) -> float | None:
        """When the belief lapses by time alone (so the heartbeat can say so then)."""
        if not self.named or self.holder is None or not self.rules.synchronous:
            return None
        if self.rules.on_replica_lost is not OnReplicaLost.DEGRADE:
            return None
        peer = peers.get(self.holder)
        if peer is None or peer.acked_sent_at is None:
            return None
        return peer.acked_sent_at + self.rules.degrade_after * (1 - self.drift)

    def tend_follow(self, now: float, primary: str | None) -> tuple[FollowPrimary | None, float]:
        """Standby: the next FollowPrimary when one is due; and when the next one is."""
        if primary != self.followed:
            self.next_follow = min(self.next_follow, now)
        if self.follow_pending or now < self.next_follow:
            return None, self.next_follow
        self.follow_pending = True
        self.followed = primary
        self.next_follow = now + self.rules.follow_interval
        detail = f"stream from {primary}" if primary else "no primary known: keep the copy"
        return FollowPrimary(self.rules.resource, primary, Reason("replica.follow", detail)), (
            self.next_follow
        )

    def on_follow(self, event: FollowDone) -> list[Alarm]:
        """A FollowPrimary finished."""
        self.follow_pending = False
        self.follow = event
        alarms: list[Alarm] = []
        if event.diverged:
            alarms.append(
                Alarm(
                    AlarmKind.DATA_DIVERGED,
                    Severity.CRITICAL,
                    f"{self.me}'s copy had data {event.primary} lacks: saved in {event.diverged}",
                    Reason("replica.diverged", event.detail),
                )
            )
        if not event.ok and not self.follow_failing:
            self.follow_failing = True
            alarms.append(
                Alarm(
                    AlarmKind.REPLICA_FAILED,
                    Severity.WARNING,
                    f"{self.me}'s copy does not follow {event.primary or 'any primary'}",
                    Reason("replica.follow_failed", event.detail),
                )
            )
        elif event.ok and self.follow_failing:
            self.follow_failing = False
            alarms.append(
                Alarm(
                    AlarmKind.RESOURCE_RECOVERED,
                    Severity.INFO,
                    f"{self.me}'s copy follows {event.primary or 'its primary'} again",
                    Reason("replica.follow_ok", event.detail),
                )
            )
        return alarms
