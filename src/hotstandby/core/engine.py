"""The decision engine of one node: `step(event, now) -> commands`, `next_deadline()`.

Pure and synchronous. After every event the engine re-evaluates its whole
situation (links, peers, arbitration, the group) and emits what follows, so a
decision never depends on which event happened to arrive last. Each role has
one decision function; the transition tables live in `table.py`.

The takeover rule (DESIGN.md): a node starts the group only on evidence that
every node that might hold it holds nothing: the peer is confirmed and says so
(a clean release), a fence was confirmed, or the arbiter granted us the lease
(and the peer's own release deadline has passed). Heartbeat-only clusters
(`mode = "none"`) take over on silence alone, which they asked for by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hotstandby.core import timing
from hotstandby.core.cluster import ArbitrationMode, Cluster, OnFail
from hotstandby.core.group import Group, ResState, ResView
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AdminRequest,
    AlarmKind,
    ArbiterAnswer,
    ArbiterOutcome,
    ArbiterRequest,
    AskArbiter,
    Boot,
    Command,
    Event,
    Exit,
    FenceDone,
    FencePeer,
    FollowDone,
    Heartbeat,
    HeartbeatReceived,
    Intent,
    Outcome,
    Persist,
    RaiseAlarm,
    Reason,
    Rejected,
    ReplicasRequired,
    ReplicationReport,
    Reply,
    ResourceDone,
    Role,
    RoleChanged,
    RunResource,
    SelfFence,
    SendHeartbeat,
    Severity,
    Tick,
)
from hotstandby.core.peers import LinkState, PeerView, accept, new_peer
from hotstandby.core.replication import Alarm, Replicas
from hotstandby.core.table import ADMIN, EVENTS, Reject

HOLDING_ROLES = (Role.TAKING_OVER, Role.ACTIVE, Role.RELEASING)
TOKEN_BOOT_MASK = (1 << 43) - 1  # a claim token: low boot bits, then a 20-bit counter
INF = float("inf")
FENCE_RETRY = 1.0  # seconds between fence attempts after a failure
MAX_DECISIONS = 8  # role changes evaluated in one step before yielding
# The active node beats this much faster than the interval, and every node answers a peer's
# new heartbeat with its own when that is due within ANSWER_WINDOW of an interval: the
# active's beat then reaches a standby a little before the standby's own would be due, so
# the standby sends in the wakeup that received it instead of waking again for a timer.
# Heartbeats only ever go out earlier than the interval, never later: every timing rule
# that counts on "at most one interval apart" holds as before.
ACTIVE_PACE = 15 / 16
ANSWER_WINDOW = 0.5


@dataclass(frozen=True)
class EngineOptions:
    """Switches for tests only."""

    # Drop the takeover rule's demand for evidence that the peer holds nothing:
    # the simulator must then find split brains, proving its checkers have teeth.
    weaken_takeover_rule: bool = False
    # Promote a replica whatever the primary said of it: the replication tests must then
    # find lost acknowledged writes.
    ignore_replica_rule: bool = False


class _RejectedError(Exception):
    """Raised inside a handler: the event is illegal now; nothing is changed."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class FenceJob:
    """Fencing one peer, attempt by attempt, until the agent confirms it."""

    not_before: float
    attempt: int = 0
    pending: bool = False
    done: bool = False


@dataclass
class Claim:
    """What this node has learned, while arbitrating, about the nodes it lost."""

    started: float
    token: int = 0  # disk: names this claim in its release requests
    election: bool = False  # every peer sees us: a candidacy, not an arbitration
    reason: Reason = field(default_factory=lambda: Reason("election"))
    granted_at: float | None = None  # witness: the lease is ours
    posted_at: dict[str, float] = field(default_factory=dict)  # disk: release requests
    released: set[str] = field(default_factory=set)  # disk: peers that acknowledged
    # disk: our clock when the newest complete read of our own slot was asked.
    read_at: float = float("-inf")
    next_try: float = 0.0


@dataclass
class Release:
    """Why the group is being stopped, by when, and whom to tell afterwards.

    Afterwards the node is a standby, or exits when it is `leaving`; a stop that
    fails ends the release at once (role FENCED).
    """

    reason: Reason
    deadline: float | None = None  # self-fence if not released by then
    ack_to: str | None = None  # disk: acknowledge this claimant afterwards
    ack_token: int = 0


class Engine:
    """One node's pure, synchronous decision engine."""

    def __init__(self, cluster: Cluster, node: str, options: EngineOptions | None = None) -> None:
        cluster.node(node)  # KeyError for a node not in the cluster
        self.cluster = cluster
        self.name = node
        self.options = options or EngineOptions()
        self.mode = cluster.arbitration.mode
        self.timers = cluster.timers
        self.role = Role.STARTING
        self.epoch = 0
        self.booted = False
        self.boot = 0
        self.seq = 0
        self.sent_at: dict[int, float] = {}
        links = tuple(link.name for link in cluster.links)
        self.peers: dict[str, PeerView] = {
            n: new_peer(n, links) for n in cluster.node_names if n != node
        }
        self.group = Group(cluster.resources)
        self.offline = False
        self.failed_until: float | None = None
        self.forced = False
        self.leaving = False
        self.handover_to: str | None = None
        self.handover_until = 0.0
        self.release: Release | None = None
        self.claim: Claim | None = None
        self.fencing: dict[str, FenceJob] = {}
        self.lease_until = float("-inf")
        self.lease_held = False
        self.arb_pending_at: float | None = None
        self.next_renew = 0.0
        self.yielded_to: str | None = None
        self.yielded_until = 0.0
        self.claims_made = 0
        # disk: rival claims we outranked; they can never complete (their final
        # read shows our request), so they are not obeyed later either.
        self.ignored_claims: set[int] = set()
        self.next_beat = 0.0
        self.beat_now = False
        self._answer = False  # this step took a peer's new heartbeat
        self.initial_deadline = 0.0
        self.failback_since: float | None = None
        self.intents: list[tuple[Intent, float]] = []
        self.intent_counter = 0
        self.applied_intents: dict[str, float] = {}
        self.warned: set[str] = set()
        self.last_takeover: Reason | None = None
        # The current takeover was agreed by every peer, confirmed and holding nothing.
        self.takeover_released = False
        self.now = 0.0
        self._out: list[Command] = []
        self._next_wake = INF
        self._copy_only = False  # this step's event was a copy on a link already up
        rules = cluster.replication
        self.repl = (
            None
            if rules is None
            else Replicas(rules, node, tuple(self.peers), cluster.timers.max_drift)
        )
        # The operator accepts promoting this node's copy although it may lack commits.
        self.accept_loss = False
        self.repl_blocked: Reason | None = None  # why this standby does not take over

    # ------------------------------------------------------------ the interface

    def step(self, event: Event, now: float) -> list[Command]:
        """Feed one event at local monotonic time `now`; get the commands to carry out."""
        self.now = now
        self._out = []
        entry = EVENTS[(self.role, type(event))]
        if not self.booted and not isinstance(event, Boot):
            entry = Reject("the agent has not booted yet")
        if isinstance(entry, Reject):
            return [Rejected(event, Reason("table.reject", entry.why))]
        self._copy_only = self._answer = False
        try:
            getattr(self, entry)(event)
        except _RejectedError as rejection:
            return [Rejected(event, Reason("table.reject", rejection.why))]
        if not self._copy_only:
            self._evaluate()
        return self._out

    def next_deadline(self) -> float | None:
        """The local time at which the engine wants a Tick, or None."""
        return None if self._next_wake == INF else self._next_wake

    # ------------------------------------------------------------ event handlers

    def on_boot(self, event: Boot) -> None:
        """First event: remember the boot, probe what already runs here."""
        if self.booted:
            raise _RejectedError("the agent has already booted")
        self.booted = True
        self.boot = event.boot
        # Sequence numbers start at a boot-derived offset, so an echo of a
        # previous boot's number can never be taken for one of ours.
        self.seq = (event.boot & 0x7FFFFFFF) << 16
        self.epoch = event.epoch
        self.initial_deadline = self.now + self.timers.initial_dead
        if self.repl is not None:
            self.repl.last_primary = event.was_active
        for v in self.group.items:
            self._run(v, Action.PROBE, Reason("boot.probe", "learn what already runs here"))

    def on_tick(self, event: Tick) -> None:
        """A deadline came: the evaluation after every event does the work."""

    def on_heartbeat(self, event: HeartbeatReceived) -> None:
        """Record a peer's heartbeat and apply the intents it carries."""
        beat = event.beat
        peer = self.peers.get(beat.sender)
        if peer is None:
            raise _RejectedError(f"heartbeat from {beat.sender!r}, not a peer in this cluster")
        if event.link not in peer.links:
            raise _RejectedError(f"heartbeat on unknown link {event.link!r}")
        was_up = peer.links[event.link].state is LinkState.UP
        if not accept(peer, event.link, beat, self.now):
            # A copy of a beat already taken on another link only refreshes this link.
            # On a link that was up that changes nothing an evaluation would look at
            # (what time alone decides comes with its own deadline): skip it. This is
            # most of an idle node's events, one per link per beat.
            self._copy_only = was_up
            return
        self._answer = True
        for name, seq in beat.heard:
            if name == self.name and seq in self.sent_at:
                sent = self.sent_at[seq]
                if peer.acked_sent_at is None or sent > peer.acked_sent_at:
                    peer.acked_sent_at = sent
        if self.repl is not None:
            self.repl.on_beat(beat, self.epoch)
        if beat.digest and self.cluster.digest and beat.digest != self.cluster.digest[:16]:
            if not peer.digest_warned:
                peer.digest_warned = True
                self._alarm(
                    AlarmKind.CONFIG_MISMATCH,
                    Severity.WARNING,
                    f"{peer.name} runs a different configuration",
                    Reason("config.digest", f"{beat.digest} != {self.cluster.digest[:16]}"),
                )
        else:
            peer.digest_warned = False
        for intent in beat.intents:
            if intent.id not in self.applied_intents:
                self.applied_intents[intent.id] = self.now
                self._apply_intent(intent, beat)

    def on_resource_done(self, event: ResourceDone) -> None:
        """A resource action finished: update the group; failures may move it."""
        v = self.group.by_name.get(event.resource)
        if v is None or v.pending is not event.action:
            raise _RejectedError(f"no {event.action.value} of {event.resource!r} is outstanding")
        v.pending = None
        v.last_result = f"{event.action.value} {event.outcome.value} {event.detail}".strip()
        handler = {
            Action.PROBE: self._probe_done,
            Action.START: self._start_done,
            Action.STOP: self._stop_done,
            Action.MONITOR: self._monitor_done,
        }[event.action]
        handler(v, event)

    def on_replication_report(self, event: ReplicationReport) -> None:
        """The primary's server reported its replicas."""
        self._raise_all(self._replicas(event.resource).on_report(event))

    def on_replicas_required(self, event: ReplicasRequired) -> None:
        """The primary's server applied (or failed to apply) the replicas commits wait for."""
        repl = self._replicas(event.resource)
        if repl.asking is None:
            raise _RejectedError("no RequireReplicas is outstanding")
        self._raise_all(repl.on_required(event, self.now))

    def on_follow_done(self, event: FollowDone) -> None:
        """This standby's copy follows the primary now, or could not be made to."""
        repl = self._replicas(event.resource)
        if not repl.follow_pending:
            raise _RejectedError("no FollowPrimary is outstanding")
        self._raise_all(repl.on_follow(event))

    def _replicas(self, resource: str) -> Replicas:
        if self.repl is None or self.repl.rules.resource != resource:
            raise _RejectedError(f"{resource!r} is not the cluster's replicated resource")
        return self.repl

    def _raise_all(self, alarms: list[Alarm]) -> None:
        for a in alarms:
            self._alarm(a.kind, a.severity, a.message, a.reason)

    def on_fence_done(self, event: FenceDone) -> None:
        """A fence attempt finished: only the agent's success counts."""
        job = self.fencing.get(event.target)
        if job is None or not job.pending:
            raise _RejectedError(f"no fence of {event.target!r} is outstanding")
        job.pending = False
        if event.ok:
            job.done = True
            self._alarm(
                AlarmKind.FENCE,
                Severity.WARNING,
                f"{event.target} fenced (attempt {job.attempt})",
                Reason("fence.confirmed", event.detail),
            )
        else:
            job.not_before = self.now + FENCE_RETRY
            self._alarm(
                AlarmKind.FENCE_FAILED,
                Severity.CRITICAL,
                f"fencing {event.target} failed (attempt {job.attempt}); retrying",
                Reason("fence.failed", event.detail or "the fence agent did not confirm"),
            )

    def on_arbiter_answer(self, event: ArbiterAnswer) -> None:
        """The arbiter answered: leases, grants, and disk messages."""
        outcome = event.outcome
        if self.arb_pending_at == event.sent_at or outcome in (
            ArbiterOutcome.RENEWED,
            ArbiterOutcome.GRANTED,
            ArbiterOutcome.DENIED,
            ArbiterOutcome.UNREACHABLE,
        ):
            self.arb_pending_at = None
        validity = timing.lease_validity(self.cluster)
        if outcome in (ArbiterOutcome.RENEWED, ArbiterOutcome.GRANTED):
            self.warned -= {"arbiter.denied", "arbiter.unreachable"}
        if outcome is ArbiterOutcome.RENEWED:
            if self.claim is not None:
                # RENEWED comes last of a read's answers: everything in our slot
                # as of sent_at has been handled by now.
                self.claim.read_at = max(self.claim.read_at, event.sent_at)
            self.lease_held = True
            self.lease_until = max(self.lease_until, event.sent_at + validity)
        elif outcome is ArbiterOutcome.GRANTED:
            self._granted(event, validity)
        elif outcome is ArbiterOutcome.DENIED:
            self.lease_held = False
            self._warn_once("arbiter.denied", f"the arbiter refused: {event.detail}")
            if self.group.holds() and self.role not in (Role.RELEASING, Role.FENCED):
                # Another node holds the lease: whatever we hold must go, now.
                why = Reason("lease.denied", "the witness gave the lease to another node")
                self.claim = None
                self._begin_release(why, deadline=self.now + self.timers.release)
        elif outcome is ArbiterOutcome.UNREACHABLE:
            self._warn_once("arbiter.unreachable", f"the arbiter is unreachable: {event.detail}")
        elif outcome is ArbiterOutcome.RELEASE_REQUESTED and event.peer in self.peers:
            self._release_requested(event.peer, event.token)
        elif (
            outcome is ArbiterOutcome.PEER_RELEASED
            and self.claim is not None
            and event.peer is not None
            and event.token == self.claim.token
        ):
            self.claim.released.add(event.peer)

    def on_admin(self, event: AdminRequest) -> None:
        """An operator's request: the ADMIN table says who handles it."""
        entry = ADMIN[(self.role, event.action)]
        if isinstance(entry, Reject):
            self._reply(event, False, entry.why)
            return
        ok, message = getattr(self, entry)(event.action, event.target)
        self._reply(event, ok, message)

    # ------------------------------------------------------------ admin

    def admin_forward(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """A request for the active node: carry it there in our heartbeats."""
        holder = next((p.name for p in self.peers.values() if p.is_active_now()), None)
        if holder is None:
            return False, "no active node is reachable to carry this out"
        if target is not None and target not in self.cluster.node_names:
            return False, f"no node called {target!r}"
        self._add_intent(action, target)
        return True, f"sent to the active node {holder}"

    def admin_switchover(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Hand the group to another node: release it here, then it takes over."""
        chosen = self._handover_target(target)
        if isinstance(chosen, Reject):
            return False, chosen.why
        self._begin_release(Reason("admin.switchover", f"to {chosen}"), handover=chosen)
        return True, f"switching over to {chosen}"

    def admin_standby(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Make a node ineligible to hold the group; moves it away if it holds it."""
        target = target or self.name
        if target != self.name:
            return self._intent_for(action, target)
        if self.role is Role.ACTIVE:
            chosen = self._handover_target(None)
            if isinstance(chosen, Reject):
                return False, f"{chosen.why}; the group would stop"
            self.offline = True
            self._begin_release(Reason("admin.standby", f"moving to {chosen}"), handover=chosen)
            return True, f"{self.name} in standby; moving the group to {chosen}"
        self.offline = True
        return True, f"{self.name} in standby"

    def admin_online(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Make a node eligible again."""
        target = target or self.name
        if target != self.name:
            return self._intent_for(action, target)
        self.offline = False
        return True, f"{self.name} online"

    def admin_maintenance_on(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Stop managing anything, cluster-wide; resources stay as they are."""
        lost = [p.name for p in self.peers.values() if not p.confirmed]
        if lost:
            # It would not hear of it, and might take over what we leave alone.
            return False, f"{', '.join(lost)} cannot be reached: maintenance must be cluster-wide"
        self._add_intent(action, None)
        self._enter_maintenance()
        return True, "maintenance mode on: nothing is managed until it is turned off"

    def admin_maintenance_off(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Manage again: probe what runs, then decide from what is found."""
        self._add_intent(action, None)
        self._leave_maintenance()
        return True, "maintenance mode off: probing resources"

    def admin_shutdown(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """A planned stop: release in order, tell the peers, then exit."""
        self.leaving = True
        if self.role in (Role.ACTIVE, Role.TAKING_OVER) or (
            self.role is Role.MAINTENANCE and self.group.holds()
        ):
            chosen = self._handover_target(None)
            handover = None if isinstance(chosen, Reject) else chosen
            self._begin_release(Reason("admin.shutdown", "planned stop"), handover=handover)
            return True, "releasing the group, then stopping"
        if self.role is Role.RELEASING:
            return True, "stopping once the release completes"
        self._finish_leaving(Reason("admin.shutdown", "holds nothing"))
        return True, "stopping"

    def admin_cleanup(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Forget failures, of one resource or all, so this node may host the group again."""
        views = [self.group.by_name[target]] if target in self.group.by_name else self.group.items
        if target is not None and target not in self.group.by_name:
            return False, f"no resource called {target!r}"
        for v in views:
            v.failures.clear()
        self.failed_until = None
        return True, "failures cleared"

    def admin_force_active(self, action: AdminAction, target: str | None) -> tuple[bool, str]:
        """Operator override: take over without hearing the peer or the arbiter."""
        if self.role is Role.STANDBY:
            # A standby held back only because its copy may lack commits: still fence or
            # arbitrate, but promote this copy, accepting the loss.
            if self.repl_blocked is None:
                return False, "force-active only overrides a standby held back by its copy"
            self.accept_loss = True
            self._alarm(
                AlarmKind.REPLICA_INELIGIBLE,
                Severity.CRITICAL,
                f"{self.name}'s copy will be promoted by an operator's order although "
                f"{self.repl_blocked.detail}: acknowledged commits may be lost",
                Reason("admin.accept_loss", str(self.repl_blocked)),
            )
            return True, "taking over with this copy once the peer is fenced or released"
        self.forced = True
        self._alarm(
            AlarmKind.STATE,
            Severity.CRITICAL,
            "forced active by an operator: if the peer is alive and holds the group, "
            "both nodes now hold it",
            Reason("admin.force_active"),
        )
        return True, "taking over without evidence, as ordered"

    # ------------------------------------------------------------ evaluation

    def _evaluate(self) -> None:
        self._next_wake = INF
        self._update_links()
        self._prune_intents()
        for _ in range(MAX_DECISIONS):
            before = self.role
            DECIDE[self.role](self)
            if self.role is before:
                break
        self._tend_fencing()
        self._tend_arbiter()
        if self.repl is not None:
            self._tend_replication(self.repl)
        self._tend_heartbeat()

    def _update_links(self) -> None:
        t = self.timers
        now, warn, dead = self.now, t.warn_time, t.dead_time
        for peer in self.peers.values():
            any_up = False
            # Inline on purpose: this runs for every link on every event.
            for link, view in peer.links.items():
                seen = view.last_seen
                if seen is None:
                    continue
                silent = now - seen
                if silent >= dead:
                    state = LinkState.DOWN
                else:
                    any_up = True
                    state = LinkState.LATE if silent >= warn else LinkState.UP
                    self._wake(seen + (dead if state is LinkState.LATE else warn))
                if state is not view.state:
                    self._link_changed(peer, link, view.state, state)
                    view.state = state
            # The newest echo of our heartbeats left us up to two intervals before it
            # arrived (ours waits for the peer's next beat, which waits its interval):
            # allow for that, or a silence shorter than the dead time loses the peer.
            echo_dead = t.dead_time + 2 * t.interval
            acked = peer.acked_sent_at is not None and self.now - peer.acked_sent_at < echo_dead
            if acked and peer.acked_sent_at is not None:
                self._wake(peer.acked_sent_at + echo_dead)
            confirmed = any_up and acked
            if confirmed and self.yielded_to == peer.name:
                self.yielded_to = None  # we see it again: the usual rules apply
            if confirmed and not peer.confirmed:
                peer.confirmed = True
                peer.beat_at_loss = None
                if peer.lost_at is not None:
                    self._alarm(
                        AlarmKind.PEER_BACK,
                        Severity.INFO,
                        f"{peer.name} is back",
                        Reason("peer.confirmed", "heartbeats cross both ways again"),
                    )
            elif not confirmed and peer.confirmed:
                peer.confirmed = False
                peer.lost_at = self.now
                peer.beat_at_loss = peer.beat
                # Silence shows first as a stale echo (it ages from our send
                # time), so only a link still fully up means a one-way cut.
                one_way = any(v.state is LinkState.UP for v in peer.links.values())
                why = (
                    f"it no longer echoes our heartbeats ({t.dead_time:g}s): a one-way cut"
                    if one_way
                    else f"no heartbeat crossed both ways for {t.dead_time:g}s"
                )
                self._alarm(
                    AlarmKind.PEER_LOST,
                    Severity.WARNING,
                    f"lost {peer.name}: {why}",
                    Reason("peer.lost", why),
                )

    def _link_changed(self, peer: PeerView, link: str, old: LinkState, new: LinkState) -> None:
        if new is LinkState.DOWN:
            self._alarm(
                AlarmKind.LINK_DOWN,
                Severity.WARNING,
                f"link {link} to {peer.name} down",
                Reason("link.dead_time", f"silent for {self.timers.dead_time:g}s"),
            )
        elif new is LinkState.LATE:
            self._alarm(
                AlarmKind.LINK_LATE,
                Severity.INFO,
                f"link {link} to {peer.name} late",
                Reason("link.warn_time", f"silent for {self.timers.warn_time:g}s"),
            )
        elif new is LinkState.UP and old in (LinkState.DOWN, LinkState.UNKNOWN):
            self._alarm(
                AlarmKind.LINK_UP,
                Severity.INFO,
                f"link {link} to {peer.name} up",
                Reason("link.heard"),
            )

    # ------------------------------------------------------------ role decisions

    def _decide_starting(self) -> None:
        if any(v.state is ResState.UNKNOWN for v in self.group.items):
            return  # probes outstanding: we do not know yet what runs here
        if any(p.is_active_now() for p in self.peers.values()):
            self._stand_down(Reason("boot.peer_active", "a peer holds the group"))
            return
        confirmed = [p for p in self.peers.values() if p.confirmed]
        if len(confirmed) == len(self.peers):
            if any(self._stuck(p) for p in confirmed) and self._eligible():
                if self._data_held_back():
                    return
                # It cannot let go of what it holds and waits to be fenced.
                self._begin_arbitration(Reason("boot.peer_stuck", "a peer waits to be fenced"))
                return
            if any(p.holds_now() for p in confirmed):
                return  # a peer is still probing or releasing: wait for its word
            self._elect(Reason("boot.election", "every peer is here and holds nothing"))
            return
        # Found running (the agent restarted under its resources): no waiting for
        # the initial dead time with things held and no evidence; arbitrate now.
        found_running = self.group.holds()
        if self.now < self.initial_deadline and not self.forced and not found_running:
            self._wake(self.initial_deadline)
            return
        if not self._eligible() or not self._best_candidate():
            self._stand_down(Reason("boot.not_candidate", "another node ranks higher"))
            return
        if self.forced:
            self._begin_takeover(Reason("admin.force_active", "ordered by an operator"))
            return
        if self.mode is ArbitrationMode.NONE and not self.cluster.policies.boot_alone:
            self._warn_once(
                "boot.alone",
                "no peer after the initial dead time; heartbeat-only clusters wait "
                "(policies.boot_alone or `hotstandby force-active` to override)",
            )
            return
        if self._data_held_back():
            return
        self._begin_arbitration(Reason("boot.alone", "no peer after the initial dead time"))

    def _stuck(self, p: PeerView) -> bool:
        """A peer that could not stop a resource and waits to be fenced (fence mode)."""
        return self.mode is ArbitrationMode.FENCE and p.holds_now() and p.role is Role.FENCED

    def _decide_standby(self) -> None:
        if self.group.known_held():
            # A standby holds nothing; something started behind our back goes.
            self._begin_release(Reason("standby.holding", "a standby must hold nothing"))
            return
        peers = self.peers.values()
        if any(p.holds_now() and not self._stuck(p) for p in peers):
            return
        lost = [
            p for p in peers if (not p.confirmed or self._stuck(p)) and not self._yielded(p.name)
        ]
        if not self._eligible() or not self._best_candidate():
            return
        if lost:
            if self._data_held_back():
                return
            # A lost peer may have taken over since we last heard it (with its
            # own evidence about us), so even one that held nothing is arbitrated.
            names = ", ".join(p.name for p in lost)
            self._begin_arbitration(Reason("standby.peer_lost", f"lost {names}"))
            return
        if any(not p.confirmed for p in peers):
            return  # only a node we yielded to is unseen: it is taking over
        self._elect(Reason("standby.election", "every peer is here and holds nothing"))

    def _decide_arbitrating(self) -> None:
        claim = self.claim
        assert claim is not None
        if any(p.holds_now() and not self._stuck(p) for p in self.peers.values()):
            self._abort_claim(Reason("arbitrate.peer_back", "a peer holds the group after all"))
            return
        if claim.election:
            self._decide_election(claim)
            return
        if self.group.known_held() and self._must_self_demote():
            return  # found running, arbitrating without a lease: let it go
        targets = [p for p in self.peers.values() if not p.confirmed or self._stuck(p)]
        if not targets:
            self._abort_claim(Reason("arbitrate.peer_back", "every peer is back, holding nothing"))
            return
        if self.forced:
            self._begin_takeover(Reason("admin.force_active", "ordered by an operator"))
            return
        if self.options.weaken_takeover_rule or self.mode is ArbitrationMode.NONE:
            why = (
                "test switch: no evidence asked"
                if self.options.weaken_takeover_rule
                else ("heartbeat-only cluster: silence is taken as death")
            )
            if self.options.weaken_takeover_rule:
                # Act as if the arbiter had granted it, or the lease rule would
                # hide the missing evidence by demoting at once.
                self.lease_until = self.now + timing.lease_validity(self.cluster)
            self._begin_takeover(Reason("takeover.heartbeat_only", why))
            return
        evidence = {
            ArbitrationMode.FENCE: self._fence_evidence,
            ArbitrationMode.WITNESS: self._witness_evidence,
            ArbitrationMode.DISK: self._disk_evidence,
        }[self.mode]
        proof = evidence(claim, targets)
        if proof is not None:
            # Checked again with the evidence in hand: the belief may have lapsed meanwhile.
            blocked = self._data_blocked()
            if blocked is not None:
                self._hold_back(blocked, Severity.CRITICAL)
                self._abort_claim(Reason("takeover.replica_not_promotable", blocked.detail))
                return
            self._begin_takeover(proof)

    def _decide_taking_over(self) -> None:
        if self._yield_to_higher_epoch() or self._must_self_demote():
            return
        if not self.group.idle() or self._stop_failed_one():
            return
        v = self.group.next_to_start()
        if v is None:
            self._set_role(Role.ACTIVE, Reason("takeover.complete", "every resource is up"))
            for item in self.group.items:
                item.next_monitor = self.now + item.spec.monitor_interval
            return
        self._run(
            v,
            Action.START,
            Reason("takeover.start", f"in order: {v.spec.name}"),
            released=self.takeover_released,
        )

    def _decide_active(self) -> None:
        if self._yield_to_higher_epoch():
            return
        if self._must_self_demote():
            return
        if self._failback_due():
            return
        for v in self.group.items:
            if v.pending is not None:
                continue
            if v.state is ResState.RUNNING and v.next_monitor is not None:
                if self.now >= v.next_monitor:
                    v.next_monitor = self.now + v.spec.monitor_interval
                    self._run(v, Action.MONITOR, Reason("monitor.interval"))
                else:
                    self._wake(v.next_monitor)
        # Restart in place: stop what failed, then start in order what is down.
        if not self.group.idle() or self._stop_failed_one():
            return
        down = self.group.next_to_start()
        if down is not None:
            self._run(down, Action.START, Reason("restart.start", f"{down.spec.name} is down"))

    def _stop_failed_one(self) -> bool:
        """Stop the first failed resource (a failed start or monitor may leave it half up)."""
        failed = next((v for v in self.group.items if v.state is ResState.FAILED), None)
        if failed is None:
            return False
        self._run(failed, Action.STOP, Reason("restart.stop", f"{failed.spec.name} failed"))
        return True

    def _decide_releasing(self) -> None:
        release = self.release
        assert release is not None
        # A slow release (a failed group, a switchover) must still beat a standby
        # that lost us and got the lease.
        self._tighten_release(release, self._unconfirmed_deadline())
        if release.deadline is not None and self.now >= release.deadline:
            self._self_fence(Reason("release.too_slow", "not released before the lease ended"))
            return
        if release.deadline is not None:
            self._wake(release.deadline)
        if self.group.stop_failed():
            return
        v = self.group.next_to_stop()
        if v is None:
            self._release_complete(release)
            return
        if v.pending is None:
            self._run(v, Action.STOP, Reason("release.stop", f"in reverse: {v.spec.name}"))

    def _decide_quiet(self) -> None:
        """Maintenance and fenced nodes decide nothing."""

    # ------------------------------------------------------------ evidence

    def _fence_evidence(self, claim: Claim, targets: list[PeerView]) -> Reason | None:
        for p in targets:
            self._ensure_fence_job(p, claim.started + self._fence_delay(p))
        if all(self.fencing[p.name].done for p in targets):
            names = ", ".join(p.name for p in targets)
            return Reason("takeover.fenced", f"fence of {names} confirmed by the agent")
        return None

    def _witness_evidence(self, claim: Claim, targets: list[PeerView]) -> Reason | None:
        if claim.granted_at is None:
            if self.arb_pending_at is None and self.now >= claim.next_try:
                claim.next_try = self.now + timing.renew_period(self.cluster)
                self._ask(ArbiterRequest.CLAIM, Reason("arbitrate.claim", "ask the witness"))
            else:
                self._wake(claim.next_try)
            return None
        safe = self._release_wait(targets, claim.granted_at)
        if self.now < safe:
            self._wake(safe)
            return None
        return Reason("takeover.lease", "the witness granted us the lease after the peer's ran out")

    def _disk_evidence(self, claim: Claim, targets: list[PeerView]) -> Reason | None:
        wait = timing.disk_claim_wait(self.cluster)
        for p in targets:
            if p.name not in claim.posted_at and self.arb_pending_at is None:
                reason = Reason("arbitrate.release_or_die", p.name)
                self._ask(ArbiterRequest.CLAIM, reason, p.name, token=claim.token)
                return None
        if len(claim.posted_at) < len(targets):
            return None
        silent = [p for p in targets if p.name not in claim.released]
        safe = claim.started
        for p in silent:
            safe = max(safe, claim.posted_at[p.name] + wait, self._release_wait([p], safe))
        if self.now < safe:
            self._wake(safe)
            return None
        if silent and claim.read_at < safe:
            # Before acting on silence, read our own slot once more: a rival
            # claim posted meanwhile must be seen (and may make us yield).
            if self.arb_pending_at is None:
                self._ask(ArbiterRequest.RENEW, Reason("arbitrate.final_read", "rival claims?"))
            return None
        released = [p.name for p in targets if p.name in claim.released]
        detail = (
            f"acknowledged by {', '.join(released)}"
            if released
            else (f"no answer in {wait:g}s: a live peer would have released")
        )
        return Reason("takeover.disk", detail)

    def _release_wait(self, targets: list[PeerView], floor: float) -> float:
        """When every target, if alive and cut off, must have released what it held."""
        safe = floor
        wait = timing.unconfirmed_release_wait(self.cluster)
        for p in targets:
            promise = p.beat_at_loss or p.beat
            if promise is None or not promise.lease_ok:
                # A peer never heard since we booted has had no confirmation from
                # us for at least as long as we have been arbitrating.
                started = self.claim.started if self.claim else self.now
                lost = p.lost_at if p.lost_at is not None else started
                safe = max(safe, lost + wait)
        return safe

    # ------------------------------------------------------------ transitions

    def _set_role(self, role: Role, reason: Reason) -> None:
        old = self.role
        self.role = role
        self.beat_now = True
        self._out.append(RoleChanged(old, role, self.epoch, reason))

    def _elect(self, reason: Reason) -> None:
        if self._eligible() and self._best_candidate():
            # Two nodes may each think themselves best from heartbeats that are a
            # moment old: announce the candidacy first (role ARBITRATING, which
            # makes every peer defer) and take over only once every peer has
            # answered it while deferring.
            self._begin_arbitration(reason, election=True)
        else:
            self._stand_down(reason)

    def _stand_down(self, reason: Reason) -> None:
        if self.group.holds():
            self._begin_release(Reason(reason.rule, f"{reason.detail}; stopping what runs here"))
        elif self.role is not Role.STANDBY:
            self._set_role(Role.STANDBY, reason)

    def _begin_arbitration(self, reason: Reason, election: bool = False) -> None:
        self.claims_made += 1
        token = ((self.boot & TOKEN_BOOT_MASK) << 20) | (self.claims_made & 0xFFFFF)
        self.claim = Claim(started=self.now, token=token, election=election, reason=reason)
        self._set_role(Role.ARBITRATING, reason)

    def _bowed_out(self, p: PeerView) -> bool:
        """A peer that cannot be a rival: it is leaving, or it handed the group to us."""
        b = p.beat
        return b is not None and not b.holds and (b.leaving or b.handover_to == self.name)

    def _decide_election(self, claim: Claim) -> None:
        """A candidacy among peers that all see us: done once each has answered it deferring."""
        peers = self.peers.values()
        if any(not p.confirmed for p in peers):
            self._abort_claim(Reason("election.peer_lost", "a peer vanished during the election"))
            return
        mine = self.cluster.rank(self.name)
        if any(p.role is Role.ARBITRATING and self.cluster.rank(p.name) < mine for p in peers):
            self._abort_claim(Reason("election.rival", "a preferred node is a candidate too"))
            return
        answered = all(
            self._bowed_out(p)
            or (
                p.acked_sent_at is not None
                and p.acked_sent_at >= claim.started
                and p.role not in (Role.ARBITRATING, Role.TAKING_OVER, Role.ACTIVE)
            )
            for p in peers
        )
        if answered:
            self._begin_takeover(claim.reason, released=True)

    def _withdraw_claim(self) -> None:
        """Take our release requests back off the disk, so none outlives its claim."""
        claim, self.claim = self.claim, None
        if claim is None or self.mode is not ArbitrationMode.DISK:
            return
        for peer in claim.posted_at:
            self._ask(
                ArbiterRequest.RELEASE,
                Reason("disk.withdraw", peer),
                peer,
                wait=False,
                token=claim.token,
            )

    def _abort_claim(self, reason: Reason) -> None:
        self._withdraw_claim()
        if self.mode is ArbitrationMode.WITNESS and self.lease_held:
            self.lease_held = False
            self._ask(
                ArbiterRequest.RELEASE, Reason("arbitrate.abort", "give the lease back"), wait=False
            )
        self._stand_down(reason)  # releasing first whatever was found running here

    def _begin_takeover(self, reason: Reason, released: bool = False) -> None:
        self.takeover_released = released
        self.epoch = max([self.epoch] + [p.epoch for p in self.peers.values()]) + 1
        self._withdraw_claim()
        self.forced = False
        self.accept_loss = False
        self.repl_blocked = None
        self.handover_to = None
        self.last_takeover = reason
        self._out.append(Persist(self.epoch, True, reason))
        self._alarm(
            AlarmKind.TAKEOVER,
            Severity.CRITICAL,
            f"{self.name} takes over (epoch {self.epoch})",
            reason,
        )
        self._set_role(Role.TAKING_OVER, reason)

    def _begin_release(
        self,
        reason: Reason,
        handover: str | None = None,
        deadline: float | None = None,
        ack_to: str | None = None,
    ) -> None:
        self.release = Release(reason=reason, deadline=deadline, ack_to=ack_to)
        if handover is not None:
            self.handover_to = handover
            # The handover is void if the target has not taken over in this long.
            self.handover_until = self.now + self.timers.initial_dead
        self._alarm(AlarmKind.RELEASE, Severity.WARNING, f"{self.name} releases the group", reason)
        self._set_role(Role.RELEASING, reason)

    def _release_complete(self, release: Release) -> None:
        self.release = None
        self._out.append(Persist(self.epoch, False, Reason("release.complete")))
        if release.reason.rule == "split_brain.lower_epoch":
            self._alarm(
                AlarmKind.SPLIT_BRAIN,
                Severity.INFO,
                f"split brain resolved: {self.name} released the group",
                Reason("split_brain.resolved", release.reason.detail),
            )
        if self.mode is ArbitrationMode.WITNESS and self.lease_held:
            self.lease_held = False
            self._ask(
                ArbiterRequest.RELEASE,
                Reason("release.complete", "give the lease back"),
                wait=False,
            )
        if release.ack_to is not None:
            reason = Reason("release.ack", release.ack_to)
            self._ask(
                ArbiterRequest.ACK, reason, release.ack_to, wait=False, token=release.ack_token
            )
        if self.leaving:
            # Released: say so (standby, holds nothing) in the last heartbeat, so the
            # peer takes over at once; and no event after Exit finds a release missing.
            self._set_role(Role.STANDBY, Reason("release.complete", "planned stop"))
            self._finish_leaving(Reason("release.complete", "planned stop"))
            return
        self._set_role(Role.STANDBY, Reason("release.complete", release.reason.rule))

    def _finish_leaving(self, reason: Reason) -> None:
        self.beat_now = True
        self._tend_heartbeat()
        self._out.append(Exit(reason))

    def _self_fence(self, reason: Reason) -> None:
        self._alarm(AlarmKind.STATE, Severity.CRITICAL, f"{self.name} stops itself", reason)
        self._out.append(SelfFence(reason))
        self._set_role(Role.FENCED, reason)

    def _yield_to_higher_epoch(self) -> bool:
        for p in self.peers.values():
            # self.warned is empty but in trouble: this runs on every heartbeat.
            if self.warned and p.confirmed and not p.is_active_now():
                self._split_brain_resolved(p.name)
            if p.is_active_now() and self._outranks(p.epoch, p.name, self.epoch, self.name):
                self._alarm(
                    AlarmKind.SPLIT_BRAIN,
                    Severity.CRITICAL,
                    f"both {self.name} and {p.name} hold the group; {p.name} keeps it",
                    Reason(
                        "split_brain.lower_epoch", f"epoch {self.epoch} < {p.epoch} of {p.name}"
                    ),
                )
                self._begin_release(Reason("split_brain.lower_epoch", f"{p.name} keeps the group"))
                return True
            if p.is_active_now():
                self._warn_once(
                    f"split.{p.name}.{p.epoch}",
                    f"{p.name} also holds the group; it must release (lower epoch)",
                    AlarmKind.SPLIT_BRAIN,
                )
        return False

    def _split_brain_resolved(self, peer: str) -> None:
        """The peer we warned of holding the group too is seen holding nothing: say so."""
        warned = {key for key in self.warned if key.startswith(f"split.{peer}.")}
        if warned:
            self.warned -= warned
            self._alarm(
                AlarmKind.SPLIT_BRAIN,
                Severity.INFO,
                f"split brain resolved: {peer} released the group; {self.name} keeps it",
                Reason("split_brain.resolved", f"{peer} no longer holds the group"),
            )

    def _unconfirmed_deadline(self) -> float | None:
        """When, having lost a peer and the arbiter's lease, everything must be released by.

        None while a peer is confirmed, or in modes without leases (fence: the peer
        fences us; heartbeat-only: nothing protects the cluster anyway).
        """
        if self.mode not in (ArbitrationMode.WITNESS, ArbitrationMode.DISK):
            return None
        if all(p.confirmed for p in self.peers.values()):
            return None
        if self.lease_until == float("-inf") and self.arb_pending_at is not None:
            return None  # our first renewal is on its way: wait for its answer
        start_at = self.lease_until - timing.release_bound(self.cluster)
        if self.now < start_at:
            self._wake(start_at)
            return None
        return self.now + self.timers.release

    def _must_self_demote(self) -> bool:
        deadline = self._unconfirmed_deadline()
        if deadline is None:
            return False
        why = "lost every peer and the arbiter: release before the lease ends"
        self._begin_release(Reason("demote.unconfirmed", why), deadline=deadline)
        return True

    def _tighten_release(self, release: Release, deadline: float | None) -> None:
        """A release already under way must now also end by `deadline`."""
        if deadline is not None and (release.deadline is None or deadline < release.deadline):
            release.deadline = deadline

    def _failback_due(self) -> bool:
        policy = self.cluster.policies
        better = policy.failback and [
            p
            for p in self.peers.values()
            if p.confirmed
            and p.role is Role.STANDBY
            and self._peer_eligible(p)
            and self.cluster.rank(p.name) < self.cluster.rank(self.name)
        ]
        if not better:
            self.failback_since = None
            return False
        if self.failback_since is None:
            self.failback_since = self.now
        due = self.failback_since + policy.failback_delay
        if self.now < due:
            self._wake(due)
            return False
        self.failback_since = None
        target = min(better, key=lambda p: self.cluster.rank(p.name)).name
        self._begin_release(
            Reason("failback", f"{target} is preferred and healthy"), handover=target
        )
        return True

    def _release_requested(self, claimant: str, token: int) -> None:
        """A peer asks, on the disk, that we release or die."""
        peer = self.peers[claimant]
        if token in self.ignored_claims:
            return
        current = peer.beat is not None and token >> 20 == peer.beat.boot & TOKEN_BOOT_MASK
        if peer.confirmed and not current:
            # Posted by an earlier boot of a peer we now hear: nothing acts on it
            # any more. Clear it from our slot without yielding.
            self._ask(
                ArbiterRequest.ACK,
                Reason("disk.stale_request", claimant),
                claimant,
                wait=False,
                token=token,
            )
            return
        if self.role in HOLDING_ROLES or self.group.holds():
            # It takes over once we acknowledge, or after a wait we could not
            # survive: so release now, or stop ourselves before that wait ends.
            self._yield_to(claimant)
            if self.role is Role.RELEASING and self.release is not None:
                self.release.ack_to, self.release.ack_token = claimant, token
                self._tighten_release(self.release, self.now + self.timers.release)
            elif self.role is not Role.FENCED:
                self.claim = None
                release = Reason("disk.release_or_die", f"{claimant} asks us to release")
                self._begin_release(
                    release, handover=claimant, deadline=self.now + self.timers.release
                )
                assert self.release is not None
                self.release.ack_to, self.release.ack_token = claimant, token
            return
        if self.role is Role.ARBITRATING and self.cluster.rank(self.name) < self.cluster.rank(
            claimant
        ):
            # Both of us claim: the preferred node goes on and does not answer;
            # the claimant aborts when it reads our own request. Rank, not epoch:
            # both ends must reach the same verdict from static facts.
            if len(self.ignored_claims) > 64:
                self.ignored_claims.clear()  # old claims ended long ago
            self.ignored_claims.add(token)
            self._warn_once(
                f"claim.race.{claimant}",
                f"{claimant} claims the group too; {self.name} ranks higher and goes on",
            )
            return
        if self.role is Role.ARBITRATING:
            self._abort_claim(Reason("disk.yield", f"{claimant} claims the group and ranks higher"))
        # Holding nothing, we acknowledge, and promise not to claim against it
        # until we hear it again: it is about to take over.
        self._yield_to(claimant)
        self._ask(
            ArbiterRequest.ACK,
            Reason("disk.ack", "we hold nothing"),
            claimant,
            wait=False,
            token=token,
        )

    def _yield_to(self, claimant: str) -> None:
        # It takes over within its claim wait; if we have not heard it by the end
        # of that (and the release bound), it died meanwhile: claim again.
        self.yielded_to = claimant
        wait = timing.disk_claim_wait(self.cluster) + timing.release_bound(self.cluster)
        self.yielded_until = self.now + wait

    def _yielded(self, name: str) -> bool:
        if self.yielded_to != name:
            return False
        if self._ahead(self.yielded_until):
            return True
        self.yielded_to = None
        return False

    def _enter_maintenance(self) -> None:
        self.claim = None
        self._set_role(Role.MAINTENANCE, Reason("admin.maintenance", "nothing is managed"))

    def _leave_maintenance(self) -> None:
        for v in self.group.items:
            if v.pending is None:
                v.state = ResState.UNKNOWN
                self._run(v, Action.PROBE, Reason("maintenance.off", "learn what runs now"))
        self.initial_deadline = self.now + self.timers.initial_dead
        self._set_role(Role.STARTING, Reason("maintenance.off", "probe, then decide"))

    # ------------------------------------------------------------ resource results

    def _probe_done(self, v: ResView, event: ResourceDone) -> None:
        v.state = {
            Outcome.OK: ResState.RUNNING,
            Outcome.STOPPED: ResState.STOPPED,
            Outcome.FAILED: ResState.FAILED,
        }[event.outcome]

    def _start_done(self, v: ResView, event: ResourceDone) -> None:
        if event.outcome is Outcome.OK:
            v.state = ResState.RUNNING
            v.next_monitor = self.now + v.spec.monitor_interval
            if self.role is Role.ACTIVE:
                self._alarm(
                    AlarmKind.RESOURCE_RECOVERED,
                    Severity.INFO,
                    f"{v.spec.name} restarted in place on {self.name}",
                    Reason("restart.done", event.detail),
                )
            return
        v.state = ResState.FAILED
        v.failures.append(self.now)
        self._alarm(
            AlarmKind.RESOURCE_FAILED,
            Severity.CRITICAL,
            f"{v.spec.name} failed to start on {self.name}",
            Reason("resource.start_failed", event.detail),
        )
        if self.role is Role.TAKING_OVER and self._someone_else_can_host():
            self._group_failed_here(v, "a start failed during takeover")
        elif self.role in (Role.ACTIVE, Role.TAKING_OVER):
            # Nobody else can take it: retry here (stop, then start) rather
            # than leave the group down.
            self._count_failure(v)

    def _stop_done(self, v: ResView, event: ResourceDone) -> None:
        if event.outcome is Outcome.OK:
            v.state = ResState.STOPPED
            return
        v.state = ResState.STOP_FAILED
        reason = Reason("resource.stop_failed", f"{v.spec.name}: {event.detail}")
        self._alarm(
            AlarmKind.RESOURCE_FAILED,
            Severity.CRITICAL,
            f"{v.spec.name} could not be stopped on {self.name}: fencing needed",
            reason,
        )
        if self.mode is ArbitrationMode.FENCE:
            # Stay and say so in heartbeats: the peer fences us before it takes over.
            self.release = None
            self._set_role(Role.FENCED, reason)
        else:
            self._self_fence(reason)

    def _monitor_done(self, v: ResView, event: ResourceDone) -> None:
        v.last_monitor = (self.now, event.outcome, event.detail)
        if v.state is not ResState.RUNNING or self.role is not Role.ACTIVE:
            return  # the answer came after the group moved on
        if event.outcome is Outcome.OK:
            if v.degraded:
                v.degraded = False
                self._alarm(
                    AlarmKind.RESOURCE_RECOVERED,
                    Severity.INFO,
                    f"{v.spec.name} passes its monitor again on {self.name}",
                    Reason("monitor.recovered", event.detail),
                )
            return
        if v.spec.on_fail is OnFail.ALARM:
            if not v.degraded:
                v.degraded = True
                self._alarm(
                    AlarmKind.RESOURCE_FAILED,
                    Severity.WARNING,
                    f"{v.spec.name} failed its monitor on {self.name}; the group stays "
                    "(on_fail = alarm)",
                    Reason("resource.monitor_failed.alarm_only", event.detail),
                )
            return
        v.state = ResState.FAILED
        v.failures.append(self.now)
        self._alarm(
            AlarmKind.RESOURCE_FAILED,
            Severity.WARNING,
            f"{v.spec.name} failed its monitor on {self.name}",
            Reason("resource.monitor_failed", event.detail),
        )
        self._count_failure(v)

    def _count_failure(self, v: ResView) -> None:
        policy = self.cluster.policies
        count = self.group.recent_failures(v, self.now, policy.restart_window)
        if count <= policy.max_restarts:
            return  # _decide_active restarts it in place
        if self._someone_else_can_host():
            self._group_failed_here(v, f"{count} failures within {policy.restart_window:g}s")
        else:
            self._warn_once(
                f"stuck.{v.spec.name}",
                f"{v.spec.name} keeps failing and no other node can take the group",
                AlarmKind.RESOURCE_FAILED,
            )

    def _someone_else_can_host(self) -> bool:
        # A peer that just handed the group to us can take it back.
        return any(
            p.confirmed and (self._peer_eligible(p) or (self._bowed_out(p) and not p.beat.leaving))
            for p in self.peers.values()
            if p.beat is not None
        )

    def _group_failed_here(self, v: ResView, why: str) -> None:
        self.failed_until = self.now + self.cluster.policies.failure_expiry
        self._begin_release(Reason("group.move", f"{v.spec.name}: {why}"))

    # ------------------------------------------------------------ side duties

    def _tend_fencing(self) -> None:
        if self.mode is not ArbitrationMode.FENCE:
            return
        if self.role is Role.ACTIVE:
            # Fence a lost peer at once, so that in a cut our fence beats the
            # standby's (which waits fence_delay) and the service stays here.
            for p in self.peers.values():
                last = p.beat_at_loss or p.beat
                if last is not None and last.leaving and not last.holds:
                    continue  # a planned stop that released: it holds nothing and left
                if not p.confirmed and p.beat is not None:
                    self._ensure_fence_job(p, self.now)
        for name, job in list(self.fencing.items()):
            peer = self.peers[name]
            if peer.confirmed and not job.pending and not self._stuck(peer):
                del self.fencing[name]
                continue
            if job.done or job.pending:
                continue
            if self.now < job.not_before:
                self._wake(job.not_before)
                continue
            job.pending = True
            job.attempt += 1
            reason = Reason("fence.peer_lost", f"{name} is lost; attempt {job.attempt}")
            if job.attempt == 1:
                # Retries are announced by the failure before them ("...; retrying").
                self._alarm(AlarmKind.FENCE, Severity.WARNING, f"fencing {name}", reason)
            self._out.append(FencePeer(name, job.attempt, reason))

    def _ensure_fence_job(self, peer: PeerView, not_before: float) -> None:
        if peer.name not in self.fencing:
            self.fencing[peer.name] = FenceJob(not_before=not_before)

    def _fence_delay(self, peer: PeerView) -> float:
        # Delay only fencing of a node that holds the group: its own fence of us
        # then wins a race in a mere cut.
        if self._stuck(peer):
            return 0.0  # it asks to be fenced: no race to give it
        return self.cluster.arbitration.fence_delay if peer.might_hold() else 0.0

    def _tend_arbiter(self) -> None:
        if self.mode not in (ArbitrationMode.WITNESS, ArbitrationMode.DISK):
            return
        if self.arb_pending_at is not None and self.now - self.arb_pending_at > self.timers.lease:
            self.arb_pending_at = None  # an answer that never came: ask again
        holding = (
            self.role in HOLDING_ROLES
            or (self.role is not Role.FENCED and self.group.known_held())
            or (
                self.role is Role.ARBITRATING
                and self.mode is ArbitrationMode.DISK
                and self.claim is not None
                and bool(self.claim.posted_at)
            )
        )
        if not holding:
            return
        if self.arb_pending_at is None and self.now >= self.next_renew:
            self.next_renew = self.now + timing.renew_period(self.cluster)
            witness_claim = self.mode is ArbitrationMode.WITNESS and not self.lease_held
            request = ArbiterRequest.CLAIM if witness_claim else ArbiterRequest.RENEW
            self._ask(request, Reason("lease.renew", "keep the lease while holding"))
        self._wake(self.next_renew)

    def _tend_heartbeat(self) -> None:
        interval = self.timers.interval
        due = self.beat_now or self.now >= self.next_beat
        if due or (self._answer and self.now >= self.next_beat - ANSWER_WINDOW * interval):
            self.beat_now = False
            pace = interval * ACTIVE_PACE if self.role is Role.ACTIVE else interval
            self.next_beat = self.now + pace
            reason = Reason("heartbeat.interval" if due else "heartbeat.answer")
            self._out.append(SendHeartbeat(self._heartbeat(), reason))
        self._wake(self.next_beat)

    def _heartbeat(self) -> Heartbeat:
        self.seq += 1
        self.sent_at[self.seq] = self.now
        # Oldest first (insertion order): drop from the front what no echo can name.
        horizon = self.now - 2 * self.timers.dead_time
        while self.sent_at:
            oldest = next(iter(self.sent_at))
            if self.sent_at[oldest] >= horizon:
                break
            del self.sent_at[oldest]
        if self.handover_to is not None and (
            self.now >= self.handover_until or self.peers[self.handover_to].is_active_now()
        ):
            self.handover_to = None
        lease_left = self.lease_until - self.now
        return Heartbeat(
            sender=self.name,
            boot=self.boot,
            seq=self.seq,
            epoch=self.epoch,
            role=self.role,
            holds=self.group.holds() or self.role in HOLDING_ROLES,
            heard=tuple((p.name, p.beat.seq) for p in self.peers.values() if p.beat is not None),
            lease_ok=lease_left >= timing.lease_ok_margin(self.cluster),
            offline=self.offline,
            failed=not self._eligible_failure_wise(),
            maintenance=self.role is Role.MAINTENANCE,
            leaving=self.leaving,
            handover_to=self.handover_to,
            intents=tuple(i for i, _ in self.intents),
            digest=self.cluster.digest[:16],
            replica_ok=self.replica_word() if self.repl is not None else False,
            promotable=self.repl.promotable_list() if self.repl is not None else (),
        )

    # ------------------------------------------------------------ choosing a node

    def _eligible_failure_wise(self) -> bool:
        if self.failed_until is not None and not self._ahead(self.failed_until):
            self.failed_until = None  # the failure has expired
        return self.failed_until is None

    def _eligible(self) -> bool:
        return not self.offline and not self.leaving and self._eligible_failure_wise()

    def _peer_eligible(self, p: PeerView) -> bool:
        b = p.beat
        return (
            b is not None
            and not (b.offline or b.failed or b.leaving or b.maintenance)
            and b.role in (Role.STANDBY, Role.STARTING)
            and b.handover_to is None
            and self._peer_data_ok(p, b)
        )

    # ------------------------------------------------------------ replicated data

    def _peer_data_ok(self, p: PeerView, beat: Heartbeat) -> bool:
        """Whether a peer's copy may be promoted, as far as this node can tell."""
        repl = self.repl
        if repl is None:
            return True
        if repl.primary:
            return p.name in repl.promotable_list()  # our own word on it
        # Among nodes of which none may be promoted (a cluster's first start), rank decides.
        return beat.replica_ok or not self.replica_word()

    def replica_word(self) -> bool:
        """What this node's heartbeat says of its own copy (Heartbeat.replica_ok)."""
        repl = self.repl
        if repl is None or repl.primary:
            return True
        if repl.believes(self.now, self.peers) is None:
            return True
        # The node that held the group last, back with every node in view: an election
        # may pick it, never a takeover alone.
        return repl.last_primary and self.role in (Role.STARTING, Role.STANDBY, Role.ARBITRATING)

    def _data_blocked(self) -> Reason | None:
        """Why this node must not take over alone with its copy, or None."""
        if self.repl is None or self.accept_loss or self.group.known_held():
            return None  # found running here: the primary is this node already
        if self.options.ignore_replica_rule:
            return None
        return self.repl.believes(self.now, self.peers)

    def _data_held_back(self) -> bool:
        """Before arbitrating: hold back (and say why) when the copy may lack commits."""
        blocked = self._data_blocked()
        if blocked is None:
            self.repl_blocked = None
            return False
        self._hold_back(blocked, Severity.CRITICAL)
        return True

    def _hold_back(self, why: Reason, severity: Severity) -> None:
        if self.repl_blocked is None or self.repl_blocked.rule != why.rule:
            self._alarm(
                AlarmKind.REPLICA_INELIGIBLE,
                severity,
                f"{self.name} does not take over: its copy may lack acknowledged commits "
                f"({why.detail}); `hotstandby force-active` on it accepts the loss",
                why,
            )
        self.repl_blocked = why

    def _tend_replication(self, repl: Replicas) -> None:
        v = self.group.by_name[repl.rules.resource]
        primary_now = self.role in HOLDING_ROLES and v.state is ResState.RUNNING
        if primary_now and not repl.primary:
            repl.become_primary()
        elif not primary_now and repl.primary:
            repl.stop_primary()
        if repl.primary and self.role is not Role.RELEASING:
            ask, wake = repl.tend_primary(self.now, self.peers, self.seq + 1)
            if ask is not None:
                self._out.append(ask)
            if wake is not None:
                self._wake(wake)
        holder = next(
            (p.name for p in self.peers.values() if p.confirmed and p.role is Role.ACTIVE), None
        )
        # With no active primary in view (one is being promoted, say) there is nothing to
        # follow: the copy stays as it is until there is.
        if self.role is Role.STANDBY and self.group.all_stopped() and holder is not None:
            follow, at = repl.tend_follow(self.now, holder)
            if follow is not None:
                self._out.append(follow)
            self._wake(at)
        if self.repl_blocked is not None and self.role is not Role.STANDBY:
            self.repl_blocked = None
        lapse = repl.lapse_at(self.peers)
        if lapse is not None:
            self._ahead(lapse)  # the heartbeat must stop claiming the copy then

    def _best_candidate(self) -> bool:
        """Whether this node is the one that should hold the group, of those in view."""
        if any(p.confirmed and p.role is Role.ARBITRATING for p in self.peers.values()):
            # It may take over at any moment: wait until it does or gives up.
            return False
        for p in self.peers.values():
            if p.confirmed and p.beat is not None and p.beat.handover_to is not None:
                return p.beat.handover_to == self.name
        if self.handover_to is not None:
            return False
        rivals = [p.name for p in self.peers.values() if p.confirmed and self._peer_eligible(p)]
        if self.repl is not None and not self.replica_word():
            # A copy that may be promoted beats any rank.
            ready = self.peers.values()
            if any(p.name in rivals and p.beat is not None and p.beat.replica_ok for p in ready):
                return False
        return all(self.cluster.rank(self.name) < self.cluster.rank(r) for r in rivals)

    def _handover_target(self, wanted: str | None) -> str | Reject:
        ready = [p for p in self.peers.values() if p.confirmed and self._peer_eligible(p)]
        if wanted is not None:
            if wanted not in self.peers:
                return Reject(f"{wanted!r} is not a peer of {self.name}")
            if all(p.name != wanted for p in ready):
                return Reject(f"{wanted} is not reachable and ready to take over{self._why_not()}")
            return wanted
        if not ready:
            return Reject(f"no other node is reachable and ready to take over{self._why_not()}")
        return min(ready, key=lambda p: self.cluster.rank(p.name)).name

    def _why_not(self) -> str:
        if self.repl is None or not self.repl.primary:
            return ""
        what = "synchronous and caught up" if self.repl.rules.synchronous else "under max_lag"
        return (
            f" (a replica must be {what} to be promoted; promotable now: "
            + (", ".join(self.repl.promotable_list()) or "none")
            + ")"
        )

    def _outranks(self, epoch_a: int, name_a: str, epoch_b: int, name_b: str) -> bool:
        """Whether history a wins over b: the higher epoch, then the preferred node."""
        if epoch_a != epoch_b:
            return epoch_a > epoch_b
        return self.cluster.rank(name_a) < self.cluster.rank(name_b)

    # ------------------------------------------------------------ intents

    def _add_intent(self, action: AdminAction, target: str | None) -> None:
        self.intent_counter += 1
        intent = Intent(f"{self.name}.{self.boot:x}.{self.intent_counter}", action, target)
        self.applied_intents[intent.id] = self.now
        self.intents.append((intent, self.now + self._intent_ttl()))
        self.beat_now = True

    def _intent_for(self, action: AdminAction, target: str) -> tuple[bool, str]:
        if target not in self.peers:
            return False, f"no node called {target!r}"
        if not self.peers[target].confirmed:
            return False, f"{target} is not reachable"
        self._add_intent(action, target)
        return True, f"sent to {target}"

    def _intent_ttl(self) -> float:
        return max(self.timers.initial_dead, 10 * self.timers.dead_time)

    def _prune_intents(self) -> None:
        if not self.intents and not self.applied_intents:
            return  # the usual case, on the hot path
        self.intents = [(i, until) for i, until in self.intents if until > self.now]
        for _, until in self.intents:
            self._wake(until)
        horizon = self.now - 2 * self._intent_ttl()
        for key in [k for k, t in self.applied_intents.items() if t < horizon]:
            del self.applied_intents[key]

    def _apply_intent(self, intent: Intent, beat: Heartbeat) -> None:
        if intent.target not in (None, self.name):
            return
        if intent.action in (AdminAction.MAINTENANCE_ON, AdminAction.MAINTENANCE_OFF) and (
            beat.maintenance is not (intent.action is AdminAction.MAINTENANCE_ON)
        ):
            return  # its sender has changed its mind since: the intent is stale
        if intent.action is AdminAction.SWITCHOVER and self.role is not Role.ACTIVE:
            return
        entry = ADMIN[(self.role, intent.action)]
        if isinstance(entry, Reject):
            return  # not applicable here; the origin already answered its operator
        if intent.action is AdminAction.MAINTENANCE_ON:
            self._enter_maintenance()  # without a new intent: it is spreading already
        elif intent.action is AdminAction.MAINTENANCE_OFF:
            self._leave_maintenance()
        else:
            getattr(self, entry)(intent.action, intent.target)

    # ------------------------------------------------------------ output helpers

    def _run(self, v: ResView, action: Action, reason: Reason, released: bool = False) -> None:
        v.pending = action
        if action is Action.START:
            v.state = ResState.STARTING
        elif action is Action.STOP and v.state is not ResState.STOP_FAILED:
            v.state = ResState.STOPPING
        self._out.append(RunResource(v.spec.name, action, reason, released))

    def _ask(
        self,
        request: ArbiterRequest,
        reason: Reason,
        peer: str | None = None,
        wait: bool = True,
        token: int = 0,
    ) -> None:
        if wait:
            self.arb_pending_at = self.now
        self._out.append(AskArbiter(request, self.epoch, reason, peer, at=self.now, token=token))

    def _granted(self, event: ArbiterAnswer, validity: float) -> None:
        if self.mode is ArbitrationMode.DISK:
            # Posting proves the disk works for us: it counts as a renewal.
            self.lease_until = max(self.lease_until, event.sent_at + validity)
            if self.claim is not None and event.peer is not None:
                self.claim.posted_at.setdefault(event.peer, event.sent_at)
            return
        self.lease_held = True
        self.lease_until = max(self.lease_until, event.sent_at + validity)
        if self.claim is not None and self.role is Role.ARBITRATING:
            self.claim.granted_at = self.now
        elif self.role not in HOLDING_ROLES:
            self.lease_held = False
            self._ask(
                ArbiterRequest.RELEASE,
                Reason("lease.unwanted", "granted after we gave up"),
                wait=False,
            )

    def _alarm(self, kind: AlarmKind, severity: Severity, message: str, reason: Reason) -> None:
        self._out.append(RaiseAlarm(kind, severity, message, reason))

    def _warn_once(self, key: str, message: str, kind: AlarmKind = AlarmKind.ARBITER) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self._alarm(kind, Severity.WARNING, message, Reason(key))

    def _reply(self, event: AdminRequest, ok: bool, message: str) -> None:
        self._out.append(Reply(event.id, ok, message, Reason(f"admin.{event.action.value}")))

    def _ahead(self, until: float) -> bool:
        """Whether `until` is still to come; if so, be woken then to look again."""
        if self.now >= until:
            return False
        self._wake(until)
        return True

    def _wake(self, at: float) -> None:
        if self.now < at < self._next_wake:
            self._next_wake = at


DECIDE = {
    Role.STARTING: Engine._decide_starting,
    Role.STANDBY: Engine._decide_standby,
    Role.ARBITRATING: Engine._decide_arbitrating,
    Role.TAKING_OVER: Engine._decide_taking_over,
    Role.ACTIVE: Engine._decide_active,
    Role.RELEASING: Engine._decide_releasing,
    Role.MAINTENANCE: Engine._decide_quiet,
    Role.FENCED: Engine._decide_quiet,
}
