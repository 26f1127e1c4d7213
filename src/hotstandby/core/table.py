"""The engine's transition tables, written out in full so every pair is a visible decision.

EVENTS maps (role, event type) to the name of the Engine method that handles it,
or to a `Reject` saying why that input is illegal in that role. ADMIN does the
same for operator requests. A test checks both tables are total.
"""

from __future__ import annotations

from dataclasses import dataclass

from hotstandby.core.messages import (
    AdminAction,
    AdminRequest,
    ArbiterAnswer,
    Boot,
    Event,
    FenceDone,
    FollowDone,
    HeartbeatReceived,
    ReplicasRequired,
    ReplicationReport,
    ResourceDone,
    Role,
    Tick,
)


@dataclass(frozen=True)
class Reject:
    """An input that is illegal in a role, and why."""

    why: str


EventType = type[Event]

EVENT_TYPES: tuple[EventType, ...] = (
    Boot,
    Tick,
    HeartbeatReceived,
    ResourceDone,
    FenceDone,
    ArbiterAnswer,
    AdminRequest,
    ReplicationReport,
    ReplicasRequired,
    FollowDone,
)

_ALREADY_BOOTED = Reject("the agent has already booted; a new boot is a new engine")


def _row(boot: str | Reject) -> dict[EventType, str | Reject]:
    # Heartbeats, timers, answers to our own requests and operator requests are
    # meaningful in every role: what they change depends on the role, and the
    # handlers reject answers that match nothing outstanding.
    return {
        Boot: boot,
        Tick: "on_tick",
        HeartbeatReceived: "on_heartbeat",
        ResourceDone: "on_resource_done",
        FenceDone: "on_fence_done",
        ArbiterAnswer: "on_arbiter_answer",
        AdminRequest: "on_admin",
        ReplicationReport: "on_replication_report",
        ReplicasRequired: "on_replicas_required",
        FollowDone: "on_follow_done",
    }


EVENTS: dict[tuple[Role, EventType], str | Reject] = {
    (role, etype): handler
    for role, row in {
        Role.STARTING: _row("on_boot"),
        Role.STANDBY: _row(_ALREADY_BOOTED),
        Role.ARBITRATING: _row(_ALREADY_BOOTED),
        Role.TAKING_OVER: _row(_ALREADY_BOOTED),
        Role.ACTIVE: _row(_ALREADY_BOOTED),
        Role.RELEASING: _row(_ALREADY_BOOTED),
        Role.MAINTENANCE: _row(_ALREADY_BOOTED),
        Role.FENCED: _row(_ALREADY_BOOTED),
    }.items()
    for etype, handler in row.items()
}

_BUSY = "the node is changing role; try again when it is active or standby"
_MAINT = "the cluster is in maintenance mode; turn it off first"
_GONE = "this node gave up (fenced); restart its agent"
_A = AdminAction

ADMIN: dict[tuple[Role, AdminAction], str | Reject] = {}
for _role in Role:
    ADMIN[(_role, _A.STANDBY)] = "admin_standby"
    ADMIN[(_role, _A.ONLINE)] = "admin_online"
    ADMIN[(_role, _A.SHUTDOWN)] = "admin_shutdown"
    ADMIN[(_role, _A.CLEANUP)] = "admin_cleanup"
    ADMIN[(_role, _A.MAINTENANCE_OFF)] = Reject("the cluster is not in maintenance mode")
    ADMIN[(_role, _A.FORCE_ACTIVE)] = Reject(
        "force-active only overrides a node that waits for its peer or arbiter"
    )
ADMIN.update(
    {
        (Role.STARTING, _A.SWITCHOVER): "admin_forward",
        (Role.STANDBY, _A.SWITCHOVER): "admin_forward",
        (Role.ACTIVE, _A.SWITCHOVER): "admin_switchover",
        (Role.ARBITRATING, _A.SWITCHOVER): Reject(_BUSY),
        (Role.TAKING_OVER, _A.SWITCHOVER): Reject(_BUSY),
        (Role.RELEASING, _A.SWITCHOVER): Reject(_BUSY),
        (Role.MAINTENANCE, _A.SWITCHOVER): Reject(_MAINT),
        (Role.FENCED, _A.SWITCHOVER): Reject(_GONE),
        (Role.STARTING, _A.MAINTENANCE_ON): "admin_maintenance_on",
        (Role.STANDBY, _A.MAINTENANCE_ON): "admin_maintenance_on",
        (Role.ACTIVE, _A.MAINTENANCE_ON): "admin_maintenance_on",
        (Role.ARBITRATING, _A.MAINTENANCE_ON): Reject(_BUSY),
        (Role.TAKING_OVER, _A.MAINTENANCE_ON): Reject(_BUSY),
        (Role.RELEASING, _A.MAINTENANCE_ON): Reject(_BUSY),
        (Role.MAINTENANCE, _A.MAINTENANCE_ON): Reject("the cluster is in maintenance mode already"),
        (Role.FENCED, _A.MAINTENANCE_ON): Reject(_GONE),
        (Role.MAINTENANCE, _A.MAINTENANCE_OFF): "admin_maintenance_off",
        (Role.STARTING, _A.FORCE_ACTIVE): "admin_force_active",
        (Role.ARBITRATING, _A.FORCE_ACTIVE): "admin_force_active",
        # A standby held back because its copy may lack commits: promote it anyway.
        (Role.STANDBY, _A.FORCE_ACTIVE): "admin_force_active",
        (Role.FENCED, _A.STANDBY): Reject(_GONE),
        (Role.FENCED, _A.ONLINE): Reject(_GONE),
    }
)
