"""The cluster description as plain frozen data: what the TOML file says, once validated.

The core reads only this; parsing and checking the file live in `hotstandby.config`.
All durations are float seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class LinkKind(StrEnum):
    """How a heartbeat travels."""

    UDP = "udp"
    SERIAL = "serial"
    DISK = "disk"


class ResourceKind(StrEnum):
    """What a resource is; the kinds' parameters are read by their adapters."""

    IP = "ip"
    VOLUME = "volume"
    ALIAS = "alias"
    SERVICE = "service"
    OCF = "ocf"
    POSTGRES = "postgres"


class OnFail(StrEnum):
    """What a failed monitor of a resource leads to."""

    # Restart in place (max_restarts within restart_window), then move the group.
    RESTART = "restart"
    # An alarm only; the group stays. For what the service does not depend on, or what a
    # move cannot mend (the DNS server of a floating hostname is down for every node).
    ALARM = "alarm"


class ArbitrationMode(StrEnum):
    """Who breaks the tie when the nodes cannot see each other."""

    NONE = "none"  # heartbeat-only: a cut between the nodes is a split brain
    DISK = "disk"  # "release or die" messages on the shared disk
    WITNESS = "witness"  # a lease from a small service on a third machine
    FENCE = "fence"  # power the peer off (or cut its storage) before taking over


EMPTY_PARAMS: MappingProxyType[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Node:
    """One server of the cluster."""

    name: str
    priority: int = 100
    # The node's own address on the client network, used by the alias kind when
    # the hostname should follow the node rather than the floating IP.
    address: str | None = None


@dataclass(frozen=True)
class Link:
    """One heartbeat path between every pair of nodes."""

    name: str
    kind: LinkKind
    # Per node: an "address" (udp), a "device" (serial, disk).
    endpoints: MappingProxyType[str, str]
    port: int = 694  # udp: the classic heartbeat port
    baud: int = 9600  # serial
    # disk: byte offset of the heartbeat area on the device.
    offset: int = 0


@dataclass(frozen=True)
class Resource:
    """One thing that moves with the active node, in start order within the group."""

    name: str
    kind: ResourceKind
    params: MappingProxyType[str, Any] = field(default_factory=lambda: EMPTY_PARAMS)
    start_timeout: float = 20.0
    stop_timeout: float = 20.0
    monitor_timeout: float = 10.0
    monitor_interval: float = 5.0
    on_fail: OnFail = OnFail.RESTART


@dataclass(frozen=True)
class Arbitration:
    """How a standby gets evidence that the peer holds nothing."""

    mode: ArbitrationMode
    # witness: "host:port" of the witness service.
    witness: str | None = None
    # disk: the shared block device holding the message slots (often the heartbeat disk).
    device: str | None = None
    # fence: the fence methods in the order tried (a topology); each a mapping of
    # agent name and its parameters, read by the fencing adapter.
    fence: tuple[MappingProxyType[str, Any], ...] = ()
    # Added before the standby fences the active node, so that in a cut the
    # active node's own fence wins the race and the service stays where it is.
    fence_delay: float = 2.0
    # Hardware watchdog timeout: a node that stops itself (or freezes) is reset
    # within this long. 0 means no watchdog is configured.
    watchdog_timeout: float = 0.0
    watchdog_device: str | None = None


@dataclass(frozen=True)
class Timers:
    """The timing budget's parts."""

    interval: float = 0.1  # between heartbeats
    warn_time: float = 0.3  # a link silent this long is reported late
    dead_time: float = 0.5  # a link silent this long is down
    initial_dead: float = 10.0  # at boot, how long to wait for a peer
    lease: float = 4.0  # arbiter lease (witness, disk)
    fence_timeout: float = 10.0  # one fence attempt
    # The longest an active node that lost its peer and its arbiter takes to give
    # everything up; past it the agent stops itself and the watchdog resets it.
    release: float = 1.0
    # Bound on the rate difference between two nodes' monotonic clocks (fraction).
    max_drift: float = 0.001


@dataclass(frozen=True)
class Policies:
    """What the cluster does, besides the safety rules, when things go wrong."""

    failback: bool = False
    failback_delay: float = 60.0
    max_restarts: int = 2  # restarts in place before the group moves
    restart_window: float = 300.0
    failure_expiry: float = 600.0  # a node that failed the group may host it again after this
    # At boot with no peer and no arbiter answer, take over anyway (operator override).
    boot_alone: bool = False


@dataclass(frozen=True)
class Http:
    """The agent's HTTP interface (status page, API, metrics): off unless a node has a listen."""

    # Per node: "address:port" ("[2001:db8::1]:8080" for IPv6); nodes not named serve none.
    listen: MappingProxyType[str, str]
    # The root-only file holding the token that actions (switchover, ...) need; without
    # one the interface is read-only.
    token_file: str | None = None
    metrics: bool = True  # serve /metrics (Prometheus)
    # Serve /health/primary, /health/replica, /health/promotable for load balancers
    # (replicated data only).
    health: bool = False


class OnReplicaLost(StrEnum):
    """What a primary does when its synchronous replica stops confirming commits."""

    # Commits wait until the replica is back: no acknowledged write exists on one node only.
    WAIT = "wait"
    # After degrade_after, commits go on without it (asynchronous): the replica is told,
    # and is no longer promoted, until it has caught up and is synchronous again.
    DEGRADE = "degrade"


@dataclass(frozen=True)
class Replication:
    """The rules for a resource whose data each node keeps a copy of (a replicated database).

    The core decides which replica may be promoted and which replicas every commit waits
    for; the resource's adapter carries it out (`RequireReplicas`, `FollowPrimary`).
    """

    resource: str  # the replicated resource (a postgres resource, mode = "replicated")
    synchronous: bool = True  # a commit is acknowledged only once the replicas have it
    on_replica_lost: OnReplicaLost = OnReplicaLost.DEGRADE
    # How long commits wait for a silent or lagging synchronous replica before going on
    # without it (DEGRADE only), and so how long a replica's word that it is synchronous
    # stays good once it stops hearing the primary.
    degrade_after: float = 30.0
    # Asynchronous replication: the largest lag (bytes of WAL behind the primary, as the
    # primary last reported it) at which a replica may still be promoted; -1: any lag.
    max_lag: int = 16 << 20
    # How often a standby checks its replica follows the primary (and mends it when not).
    follow_interval: float = 2.0


@dataclass(frozen=True)
class Cluster:
    """The whole validated configuration."""

    name: str
    secret_file: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    resources: tuple[Resource, ...]
    arbitration: Arbitration
    timers: Timers = field(default_factory=Timers)
    policies: Policies = field(default_factory=Policies)
    # Raw alarm channel tables, read by the alarm adapters.
    alarms: tuple[MappingProxyType[str, Any], ...] = ()
    # A digest of the file, so nodes can tell when their configurations differ.
    digest: str = ""
    http: Http | None = None  # no [http] table: no HTTP interface
    replication: Replication | None = None  # no [replication] table: no replicated data

    def node(self, name: str) -> Node:
        """The node called `name`; KeyError when there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in configuration order."""
        return tuple(n.name for n in self.nodes)

    @property
    def resource_names(self) -> tuple[str, ...]:
        """Resource names in start order."""
        return tuple(r.name for r in self.resources)

    def rank(self, name: str) -> tuple[int, str]:
        """Sort key for choosing a node: higher priority first, then name."""
        return (-self.node(name).priority, name)


def frozen_map(items: dict[str, Any]) -> MappingProxyType[str, Any]:
    """A read-only view of a fresh copy of `items`."""
    return MappingProxyType(dict(items))
