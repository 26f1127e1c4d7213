"""Everything that crosses the core's boundary: events in, commands out, the heartbeat.

All of it is frozen data. Every command carries a `Reason`, so `hotstandby why`
can explain any decision and tests can assert on the rule that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """A node's role in the cluster."""

    STARTING = "starting"  # booted, probing resources, waiting for a peer
    STANDBY = "standby"  # holds nothing, watches the active node
    ARBITRATING = "arbitrating"  # the active node is lost: getting evidence it holds nothing
    TAKING_OVER = "taking_over"  # starting the group, in order
    ACTIVE = "active"  # holds the group
    RELEASING = "releasing"  # stopping the group, in reverse
    MAINTENANCE = "maintenance"  # nothing managed; resources left as they are
    FENCED = "fenced"  # gave up for good: a stop failed or it stopped itself


class Action(StrEnum):
    """What a resource adapter is asked to do."""

    START = "start"
    STOP = "stop"
    MONITOR = "monitor"
    PROBE = "probe"  # a monitor at boot, to learn what is already running here


class Outcome(StrEnum):
    """What a resource action found."""

    OK = "ok"  # start or stop done; monitor: running and healthy
    STOPPED = "stopped"  # monitor or probe: not running here
    FAILED = "failed"  # the action failed or timed out


class ArbiterOutcome(StrEnum):
    """The arbiter's answer."""

    RENEWED = "renewed"  # our lease was extended
    GRANTED = "granted"  # our claim was accepted (disk: the release request is posted)
    DENIED = "denied"  # someone else holds it
    UNREACHABLE = "unreachable"  # no answer in time
    RELEASE_REQUESTED = "release_requested"  # disk: a peer asks us to release or die
    PEER_RELEASED = "peer_released"  # disk: the peer acknowledged our release request


class AdminAction(StrEnum):
    """Requests an operator makes through the control API."""

    SWITCHOVER = "switchover"
    STANDBY = "standby"
    ONLINE = "online"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    SHUTDOWN = "shutdown"  # a planned stop of this node's agent (SIGTERM)
    CLEANUP = "cleanup"  # forget a resource's failures
    FORCE_ACTIVE = "force_active"  # boot alone: take over without peer or arbiter


class Severity(StrEnum):
    """How loudly an alarm is raised."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlarmKind(StrEnum):
    """What an alarm is about."""

    TAKEOVER = "takeover"
    RELEASE = "release"
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"
    LINK_LATE = "link_late"
    PEER_LOST = "peer_lost"
    PEER_BACK = "peer_back"
    RESOURCE_FAILED = "resource_failed"
    RESOURCE_RECOVERED = "resource_recovered"
    FENCE = "fence"
    FENCE_FAILED = "fence_failed"
    SPLIT_BRAIN = "split_brain"
    ARBITER = "arbiter"
    CONFIG_MISMATCH = "config_mismatch"
    REPLICA_INELIGIBLE = "replica_ineligible"  # a replica may no longer be promoted
    REPLICA_FAILED = "replica_failed"  # a standby's copy does not follow the primary
    DATA_DIVERGED = "data_diverged"  # a former primary's data the new one lacks, saved aside
    STATE = "state"  # a role change worth hearing of


@dataclass(frozen=True)
class Reason:
    """Why a command was issued: the rule that decided it and the facts it used."""

    rule: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.rule}: {self.detail}" if self.detail else self.rule


@dataclass(frozen=True)
class Intent:
    """An operator's request carried to the node it concerns in heartbeats."""

    id: str  # unique: origin node and a counter
    action: AdminAction
    target: str | None = None


@dataclass(frozen=True)
class Heartbeat:
    """What a node tells its peers every interval, on every link."""

    sender: str
    # Grows with every agent start (a persisted counter, then random bits), so
    # a late heartbeat from an earlier boot is told from a newer one.
    boot: int
    seq: int  # grows by one per heartbeat within a boot
    epoch: int
    role: Role
    holds: bool  # holds (or may hold) some resource of the group
    # Highest seq heard from each node (this boot of theirs): lets the receiver
    # know its own heartbeats arrive, so a one-way cut is seen from both ends.
    heard: tuple[tuple[str, int], ...] = ()
    # The sender, if it lost every peer now, would release before its lease ends.
    lease_ok: bool = False
    offline: bool = False  # put in standby by an operator: not a candidate
    failed: bool = False  # failed the group recently: not a candidate
    maintenance: bool = False
    leaving: bool = False  # a planned stop: it has released or is releasing
    handover_to: str | None = None  # switchover target, once released
    intents: tuple[Intent, ...] = ()
    digest: str = ""  # configuration digest
    # Replicated data: the sender's replica may be promoted without losing an acknowledged
    # commit (it heard so from the primary and nothing since voids it).
    replica_ok: bool = False
    # Sent by the primary: the replicas that may be promoted: those holding every commit it
    # has acknowledged (synchronous, caught up), or, asynchronous, lagging under the limit.
    promotable: tuple[str, ...] = ()


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class Boot:
    """The agent started. Always the first event."""

    boot: int  # larger than any earlier boot of this node (see Heartbeat.boot)
    epoch: int = 0  # as persisted; 0 when nothing was stored
    was_active: bool = False


@dataclass(frozen=True)
class Tick:
    """A deadline the core asked for (next_deadline) has come."""


@dataclass(frozen=True)
class HeartbeatReceived:
    """A valid, authenticated heartbeat arrived on a link."""

    link: str
    beat: Heartbeat


@dataclass(frozen=True)
class ResourceDone:
    """A resource action finished (or timed out: FAILED)."""

    resource: str
    action: Action
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class FenceDone:
    """A fence attempt on `target` finished."""

    target: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class ArbiterAnswer:
    """The arbiter answered a renew, claim or poll, or failed to."""

    outcome: ArbiterOutcome
    # Our own clock when the request was sent: a lease is counted from here,
    # never from the answer, so a slow answer cannot stretch it.
    sent_at: float
    peer: str | None = None
    detail: str = ""
    token: int = 0  # RELEASE_REQUESTED, PEER_RELEASED: the claim's token


@dataclass(frozen=True)
class AdminRequest:
    """An operator's request from the control API."""

    id: str
    action: AdminAction
    target: str | None = None


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as the primary's server sees it."""

    node: str  # the replica's node (its application_name)
    state: str  # the server's word: "streaming", "catchup", "startup", "backup", "stopping"
    sync: bool  # counted now as a synchronous replica (commits wait for it)
    flush_lsn: int  # the WAL position it has flushed, in bytes


@dataclass(frozen=True)
class ReplicationReport:
    """The primary's replication as its server reported it (after each monitor)."""

    resource: str
    lsn: int  # the primary's WAL position when read, in bytes
    replicas: tuple[ReplicaInfo, ...] = ()
    required: tuple[str, ...] = ()  # the replicas every commit waits for now


@dataclass(frozen=True)
class ReplicasRequired:
    """The answer to RequireReplicas."""

    resource: str
    nodes: tuple[str, ...]
    ok: bool
    # The primary's WAL position once the setting was in effect: every commit acknowledged
    # without a replica of `nodes` lies before it.
    lsn: int = 0
    detail: str = ""


@dataclass(frozen=True)
class FollowDone:
    """The answer to FollowPrimary: whether this node's copy now follows the primary."""

    resource: str
    primary: str | None
    ok: bool
    detail: str = ""
    streaming: bool = False  # receiving the primary's WAL now
    # Where data this node had and the primary lacks was saved before it was thrown away
    # (a rewind or a fresh copy); empty when nothing diverged.
    diverged: str = ""


Event = (
    Boot
    | Tick
    | HeartbeatReceived
    | ResourceDone
    | FenceDone
    | ArbiterAnswer
    | AdminRequest
    | ReplicationReport
    | ReplicasRequired
    | FollowDone
)


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class SendHeartbeat:
    """Send this heartbeat on every link."""

    beat: Heartbeat
    reason: Reason = field(default_factory=lambda: Reason("heartbeat.interval"))


@dataclass(frozen=True)
class RunResource:
    """Start, stop, monitor or probe a resource; answer with ResourceDone."""

    resource: str
    action: Action
    reason: Reason
    # A start of a takeover that every other node agreed to while confirmed and holding
    # nothing (a switchover, a planned stop, an election): no other holder can exist, so
    # a start may skip looking for one (the floating IP's conflict probe).
    released: bool = False


@dataclass(frozen=True)
class FencePeer:
    """Fence `target`; answer with FenceDone."""

    target: str
    attempt: int
    reason: Reason


class ArbiterRequest(StrEnum):
    """What is asked of the arbiter."""

    RENEW = "renew"  # extend our lease (disk: also read our message slot)
    CLAIM = "claim"  # ask for the lease (disk: post "release or die" to the peer)
    RELEASE = "release"  # give the lease back
    ACK = "ack"  # disk: tell the claimant we released


@dataclass(frozen=True)
class AskArbiter:
    """Ask the arbiter; answer with ArbiterAnswer."""

    request: ArbiterRequest
    epoch: int
    reason: Reason
    peer: str | None = None
    # The engine's clock when it asked; the answer's sent_at must echo it.
    at: float = 0.0
    # disk: names one claim. A CLAIM posts it with the release request, the
    # peer's ACK echoes it, so an old acknowledgement never answers a new claim.
    token: int = 0


@dataclass(frozen=True)
class RaiseAlarm:
    """Tell the operators."""

    kind: AlarmKind
    severity: Severity
    message: str
    reason: Reason


@dataclass(frozen=True)
class Persist:
    """Write this state durably before acting on it."""

    epoch: int
    active: bool
    reason: Reason


@dataclass(frozen=True)
class SelfFence:
    """Stop this agent at once, resources as they are: the watchdog resets the machine."""

    reason: Reason


@dataclass(frozen=True)
class Reply:
    """The answer to an AdminRequest."""

    id: str
    ok: bool
    message: str
    reason: Reason


@dataclass(frozen=True)
class Rejected:
    """An event that is not legal in the current state; nothing changed."""

    event: Event
    reason: Reason


@dataclass(frozen=True)
class RoleChanged:
    """The node's role changed (for the log, the history and status)."""

    old: Role
    new: Role
    epoch: int
    reason: Reason


@dataclass(frozen=True)
class RequireReplicas:
    """Primary: make every commit wait for each of `nodes` (none: asynchronous).

    Answer with ReplicasRequired once the server applies it.
    """

    resource: str
    nodes: tuple[str, ...]
    reason: Reason


@dataclass(frozen=True)
class FollowPrimary:
    """Standby: keep this node's copy a replica streaming from `primary`; FollowDone.

    None: no primary is known; keep the replica as it is. A copy that diverged from the
    primary's (a former primary's) is rewound or copied afresh, what it loses saved first.
    """

    resource: str
    primary: str | None
    reason: Reason


@dataclass(frozen=True)
class Exit:
    """The planned stop is complete: the agent may exit."""

    reason: Reason


Command = (
    SendHeartbeat
    | RunResource
    | FencePeer
    | AskArbiter
    | RaiseAlarm
    | Persist
    | SelfFence
    | Reply
    | Rejected
    | RoleChanged
    | Exit
    | RequireReplicas
    | FollowPrimary
)
