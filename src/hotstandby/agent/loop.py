"""The agent's event loop: events into the core, its commands out to the adapters.

The loop owns the only Engine of this node. Everything slow (resource actions,
fencing, the arbiter, disk I/O) runs in tasks or threads that report back
through the event queue, so the loop always comes back for the next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hotstandby.agent.counters import AgentCounters
from hotstandby.agent.link_quality import LinkQuality
from hotstandby.agent.ports import (
    ArbiterAdapter,
    FenceAdapter,
    HeartbeatLink,
    ReplicatedAdapter,
    ResourceAdapter,
    TickledAdapter,
)
from hotstandby.agent.state_store import StateStore, StoredState
from hotstandby.agent.tickle import ConnectionReader, repeat_rounds, send_round
from hotstandby.core.cluster import Cluster, LinkKind
from hotstandby.core.engine import Engine
from hotstandby.core.group import ResState
from hotstandby.core.messages import (
    Action,
    AdminAction,
    AdminRequest,
    ArbiterAnswer,
    ArbiterOutcome,
    AskArbiter,
    Boot,
    Command,
    Event,
    Exit,
    FenceDone,
    FencePeer,
    FollowDone,
    FollowPrimary,
    Heartbeat,
    HeartbeatReceived,
    Outcome,
    Persist,
    RaiseAlarm,
    Rejected,
    ReplicasRequired,
    Reply,
    RequireReplicas,
    ResourceDone,
    Role,
    RoleChanged,
    RunResource,
    SelfFence,
    SendHeartbeat,
    Tick,
)
from hotstandby.wire import Codec, ReplayGuard, WireError
from hotstandby.wire.connlist import (
    Connection,
    ConnListCodec,
    ConnListStore,
    IPAddress,
    connections_on,
    is_connlist,
)

log = logging.getLogger("hotstandby.agent")

HISTORY = 2000  # events kept in memory for `hotstandby events` and `why`
# Decoded heartbeats remembered by their bytes: a beat's copies on the other links
# arrive within a few milliseconds, long before a node's next beat.
DECODED_KEPT = 8
# The active node reads its connections on the floating addresses when the kernel's TCP
# counters moved (looked at on each of its heartbeat wakeups; tickle.ConnectionReader), walking
# /proc/net/tcp at most every CONNLIST_INTERVAL, and sends the list to its peers when it
# changed, or at least every CONNLIST_REFRESH while not empty.
CONNLIST_INTERVAL = 1.0
CONNLIST_REFRESH = 5.0

# What a dropped heartbeat most likely means, for the operator reading the history.
DROP_REASONS = {
    "bad_mac": "authentication failed: a different secret, or corruption",
    "wrong_cluster": "it belongs to another cluster",
    "bad_version": "a different protocol version",
    "replayed": "an old or repeated message",
    "old_boot": "a message from a previous start of its sender",
    "truncated": "cut short",
    "malformed": "not a valid heartbeat",
    "bad_magic": "not a hotstandby heartbeat at all",
    "oversized": "longer than any heartbeat",
    "unknown_sender": "authentic, but from a node not in this cluster (or from itself)",
}


def monotonic() -> float:
    """The agent's clock: monotonic seconds, never stepped by NTP."""
    return time.monotonic()


@dataclass
class Record:
    """One line of the event history."""

    at: float  # wall clock, for people
    kind: str
    message: str
    rule: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The record as plain JSON data."""
        return {
            "at": self.at,
            "kind": self.kind,
            "message": self.message,
            "rule": self.rule,
            **self.data,
        }


@dataclass(frozen=True)
class _Carry:
    """Commands of a step taken in a callback, left to the agent task to carry out in order."""

    commands: Sequence[Command]


@dataclass
class Adapters:
    """Everything the loop drives, built from the configuration (or fakes in tests)."""

    links: list[HeartbeatLink]
    resources: dict[str, ResourceAdapter]
    fence: FenceAdapter | None = None
    arbiter: ArbiterAdapter | None = None


class Agent:
    """One node's agent around its engine."""

    def __init__(
        self,
        cluster: Cluster,
        node: str,
        secret: bytes,
        adapters: Adapters,
        store: StateStore,
        clock: Callable[[], float] = monotonic,
        on_self_fence: Callable[[str], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.engine = Engine(cluster, node)
        self.codec = Codec(cluster.name, secret)
        self.adapters = adapters
        self.store = store
        self.clock = clock
        self.on_self_fence = on_self_fence or _exit_now
        self.queue: asyncio.Queue[Event | _Carry] = asyncio.Queue()
        self.guards = {link.name: ReplayGuard() for link in adapters.links}
        self.stats = {link.name: link.stats for link in adapters.links}
        self.quality = LinkQuality(
            frozenset(link.name for link in cluster.links if link.kind is LinkKind.DISK)
        )
        self.history: deque[Record] = deque(maxlen=HISTORY)
        self.followers: list[asyncio.Queue[Record]] = []
        # Called with every new record, in the loop, and must return at once: the
        # history file, the alarm dispatcher, the takeover timelines.
        self.observers: list[Callable[[Record], None]] = []
        # More sections of the `status` snapshot, by name (e.g. the alarm channels).
        self.status_sections: dict[str, Callable[[], Any]] = {}
        self.replies: dict[str, asyncio.Future[Reply]] = {}
        # The newest FollowDone of this standby's replicated copy (status, health).
        self.following: FollowDone | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = asyncio.Event()
        self.counters = AgentCounters()  # for the metrics
        self.started_at = time.time()
        self.on_step: list[Callable[[], None]] = []  # e.g. systemd notify, watchdog pet
        self._admin_counter = 0
        self.stored = StoredState()
        self._decoded: dict[bytes, Heartbeat] = {}
        # Who may send us heartbeats, computed once: checked for every datagram.
        self._peers = frozenset(n for n in cluster.node_names if n != node)
        # A step's commands are being carried out (or wait in the queue to be):
        # events arriving meanwhile queue behind them. True until the engine boots.
        self._busy = True
        # The engine's next deadline, kept by a plain timer callback rather than by a
        # timeout around the agent task's wait: a deadline then costs one callback, not
        # a cancellation thrown into the task, a new timeout and a new future each time.
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None  # the engine deadline that timer is for
        # Tickle ACKs (agent/tickle.py): the connection lists of the active node. Only over
        # UDP links: the serial line is too slow for them and the disk slots hold heartbeats.
        self.boot_id = 0
        self.connlist = ConnListCodec(self.codec)
        self.connlists = ConnListStore()
        self.connlist_guards = {link.name: ReplayGuard() for link in adapters.links}
        udp = {link.name for link in cluster.links if link.kind is LinkKind.UDP}
        self._connlist_links = [link for link in adapters.links if link.name in udp]
        self._connlist_sent: tuple[Connection, ...] = ()
        self._connlist_sent_at = 0.0
        self._connlist_seq = 0
        self._connlist_generation = 0
        self._connections = ConnectionReader()
        # The resources that tickle, sorted out when the agent starts: an isinstance()
        # against a runtime-checkable protocol inspects the class each time, and the active
        # node looks at them on each of its heartbeats.
        self._tickled: list[tuple[str, TickledAdapter]] = []
        self._connlist_wake: asyncio.Event | None = None  # set: the publisher should look
        self.status_sections["connections"] = self._connlist_status

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Boot the engine and serve events until a planned stop completes."""
        loaded = self.store.load()
        if loaded.problem:
            self._record("state", loaded.problem, "state.corrupt")
        # Count this start durably before saying a word, so our boot id is larger
        # than any earlier one and peers can tell a late old heartbeat from ours.
        self.stored = replace(loaded.state, boots=loaded.state.boots + 1)
        await asyncio.to_thread(self.store.save, self.stored)
        for link in self.adapters.links:
            await link.start(self._deliver)
        ident = self.boot_id = (self.stored.boots << 32) | secrets.randbits(32)
        self._tickled = [
            (name, adapter)
            for name, adapter in self.adapters.resources.items()
            if isinstance(adapter, TickledAdapter)
        ]
        if self._connlist_links and self._tickled_addresses(running=False):
            self._spawn(self._publish_connections())
        boot = Boot(boot=ident, epoch=loaded.state.epoch, was_active=loaded.state.active)
        await self._step(boot)
        try:
            while not self.stopped.is_set():
                item = await self._next_event()
                if isinstance(item, _Carry):
                    await self._carry_out(item.commands)
                else:
                    await self._step(item)
        finally:
            self._disarm()
            pending = list(self.tasks)
            for task in pending:
                task.cancel()
            if pending:
                # Let adapters unwind (kill their child processes, close files)
                # before the links close and run() returns; bounded, so an
                # adapter that ignores cancellation cannot hold up the stop.
                await asyncio.wait(pending, timeout=1.0)
            for link in self.adapters.links:
                await link.close()
            self._connections.close()

    async def _next_event(self) -> Event | _Carry:
        # No timeout here: the engine's deadlines come as Ticks from `_on_deadline`.
        return await self.queue.get()

    def _loop_time(self, deadline: float) -> float:
        """The event loop's time at which our clock reaches `deadline`."""
        return asyncio.get_running_loop().time() + max(0.0, deadline - self.clock())

    def _arm(self) -> None:
        """Keep the deadline timer on the engine's next deadline (after every step)."""
        deadline = self.engine.next_deadline()
        if deadline == self._armed_for and (deadline is None or self._timer is not None):
            return  # most steps leave the deadline where it was: keep the timer
        self._disarm()
        if deadline is not None:
            self._armed_for = deadline
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._loop_time(deadline), self._on_deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed_for = None

    def _on_deadline(self) -> None:
        self._timer = self._armed_for = None
        tick = Tick()
        if not self._step_at_once(tick):
            # Behind a step being carried out, or events waiting their turn: in order.
            self.queue.put_nowait(tick)
        self._check_connections()

    async def _step(self, event: Event) -> None:
        commands = self.engine.step(event, self.clock())
        self._arm()
        await self._carry_out(commands)

    async def _carry_out(self, commands: Sequence[Command]) -> None:
        self._busy = True
        try:
            for command in commands:
                if isinstance(command, Persist):
                    await self._persist(command)
                else:
                    self._execute(command)
            for hook in self.on_step:
                hook()
        finally:
            self._busy = False

    def _step_at_once(self, event: Event) -> bool:
        """Step `event` from a callback, sparing it the trip through the queue and the
        agent task (most of an idle agent's work is heartbeats and the beat timer);
        False when it must queue: a step is being carried out, or earlier events wait
        their turn."""
        if self._busy or not self.queue.empty():
            return False
        commands = self.engine.step(event, self.clock())
        self._arm()
        # Most steps (a beat's copies) command nothing: spare them the scan.
        if commands and (self.stopped.is_set() or any(isinstance(c, Persist) for c in commands)):
            # The state file must be written before the commands after it: the agent
            # task carries them out in order, and nothing else steps meanwhile.
            self._busy = True
            self.queue.put_nowait(_Carry(commands))
            return True
        self._busy = True  # a command must not step us again before the rest are out
        try:
            for command in commands:
                self._execute(command)
            for hook in self.on_step:
                hook()
        finally:
            self._busy = False
        if self.stopped.is_set():
            self.queue.put_nowait(_Carry(()))  # wake the agent task to end the loop
        return True

    def submit(self, event: Event) -> None:
        """Queue an event from outside the loop's own adapters (tests, signals)."""
        self.queue.put_nowait(event)

    async def admin(self, action: AdminAction, target: str | None = None) -> Reply:
        """Ask the engine as an operator would, and wait for its answer."""
        self._admin_counter += 1
        request_id = f"{self.node}.admin.{self._admin_counter}"
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        self.submit(AdminRequest(request_id, action, target))
        try:
            async with asyncio.timeout(10.0):
                return await future
        finally:
            self.replies.pop(request_id, None)

    # ------------------------------------------------------------ input

    def _deliver(self, link: str, data: bytes) -> None:
        data = bytes(data)
        if is_connlist(data):
            self._receive_connlist(link, data)
            return
        # Every heartbeat arrives once per link with the same bytes: authenticate and
        # parse it once. Identical bytes are an identical, already verified message;
        # the per-link replay guard below still sees every copy.
        beat = self._decoded.get(data)
        if beat is None:
            try:
                beat = self.codec.decode(data)
            except WireError as err:
                self._drop(link, err.reason, err.detail)
                return
            if len(self._decoded) >= DECODED_KEPT:
                del self._decoded[next(iter(self._decoded))]
            self._decoded[data] = beat
        if beat.sender not in self._peers:
            self._drop(link, "unknown_sender", f"from {beat.sender!r}")
            return
        refused = self.guards[link].admit(beat.sender, beat.boot, beat.seq)
        if refused is not None:
            self._drop(link, refused.value, f"from {beat.sender}")
            return
        stats = self.stats[link]
        stats.received += 1
        echo = None
        for name, seq in beat.heard:
            if name == self.node:
                echo = seq
                break
        self.quality.received(link, beat.sender, beat.boot, beat.seq, echo, self.clock())
        event = HeartbeatReceived(link, beat)
        if not self._step_at_once(event):
            self.queue.put_nowait(event)

    def _drop(self, link: str, reason: str, detail: str) -> None:
        """Count a rejected message; say so in the history the first time, and then rarely."""
        stats = self.stats[link]
        stats.drop(reason)
        count = stats.dropped[reason]
        if count == 1 or count % 1000 == 0:
            why = DROP_REASONS.get(reason, reason)
            self._record(
                "link.rejected",
                f"{link}: dropped {count} heartbeat(s): {why} ({detail})",
                f"wire.{reason}",
                severity="warning",
                link=link,
                reason=reason,
            )

    # ------------------------------------------------------------ commands

    async def _persist(self, command: Persist) -> None:
        # Awaited: the state is on disk before any later command of this step
        # (a takeover's first start) is carried out.
        self.stored = replace(self.stored, epoch=command.epoch, active=command.active)
        await asyncio.to_thread(self.store.save, self.stored)

    def _execute(self, command: Command) -> None:
        """Carry out one command other than Persist (see `_persist`)."""
        if isinstance(command, SendHeartbeat):
            self.quality.sent(command.beat.seq, self.clock())
            message = self.codec.encode(command.beat)
            for link in self.adapters.links:
                link.send(message)
        elif isinstance(command, RunResource):
            self._spawn(self._run_resource(command, self.engine.role is Role.TAKING_OVER))
        elif isinstance(command, FencePeer):
            self._spawn(self._fence(command))
        elif isinstance(command, RequireReplicas):
            self._spawn(self._require(command))
        elif isinstance(command, FollowPrimary):
            self._spawn(self._follow(command))
        elif isinstance(command, AskArbiter):
            self._spawn(self._ask_arbiter(command))
        elif isinstance(command, RaiseAlarm):
            self._record(
                f"alarm.{command.kind.value}",
                command.message,
                command.reason.rule,
                severity=command.severity.value,
                detail=command.reason.detail,
                epoch=self.engine.epoch,
            )
        elif isinstance(command, RoleChanged):
            self.counters.role_changed(command.old, command.new, self.clock())
            self._record(
                "role",
                f"{command.old.value} -> {command.new.value}",
                command.reason.rule,
                detail=command.reason.detail,
                epoch=command.epoch,
            )
        elif isinstance(command, Reply):
            future = self.replies.get(command.id)
            if future is not None and not future.done():
                future.set_result(command)
        elif isinstance(command, Rejected):
            log.debug("rejected %s: %s", type(command.event).__name__, command.reason)
        elif isinstance(command, SelfFence):
            self._record("self_fence", "stopping at once", command.reason.rule)
            self.on_self_fence(str(command.reason))
        elif isinstance(command, Exit):
            self._record("exit", "planned stop complete", command.reason.rule)
            self.stopped.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_resource(self, command: RunResource, taking_over: bool = False) -> None:
        spec = next(r for r in self.cluster.resources if r.name == command.resource)
        timeout = {
            Action.START: spec.start_timeout,
            Action.STOP: spec.stop_timeout,
        }.get(command.action, spec.monitor_timeout)
        adapter = self.adapters.resources[command.resource]
        began = self.clock()
        try:
            result = await asyncio.wait_for(
                adapter.run(command.action, released=command.released), timeout
            )
            outcome, detail = result.outcome, result.detail
        except TimeoutError:
            outcome, detail = Outcome.FAILED, f"timed out after {timeout:g}s"
        except Exception as err:  # an adapter bug must not kill the loop
            outcome, detail = Outcome.FAILED, f"{type(err).__name__}: {err}"
        took = self.clock() - began
        self.counters.resource_done(command.resource, outcome)
        if command.action in (Action.START, Action.STOP) or outcome is not Outcome.OK:
            self._record(
                "resource",
                f"{command.resource} {command.action.value}: "
                f"{outcome.value} in {took * 1000:.0f} ms {detail}".strip(),
                command.reason.rule,
                resource=command.resource,
                took=took,
            )
        self.queue.put_nowait(ResourceDone(command.resource, command.action, outcome, detail))
        if (
            outcome is Outcome.OK
            and command.action is Action.START
            and taking_over
            and not command.released
            and isinstance(adapter, TickledAdapter)
            and adapter.tickle_addresses
        ):
            # The old holder did not let go cleanly: it may have frozen with clients waiting.
            self._tickle(command.resource, adapter.tickle_addresses)
        if (
            outcome is Outcome.OK
            and command.action in (Action.START, Action.MONITOR)
            and isinstance(adapter, ReplicatedAdapter)
            and adapter.last_report is not None
        ):
            self.queue.put_nowait(adapter.last_report)

    def _replicated(self, resource: str) -> ReplicatedAdapter | None:
        adapter = self.adapters.resources.get(resource)
        return adapter if isinstance(adapter, ReplicatedAdapter) else None

    async def _require(self, command: RequireReplicas) -> None:
        spec = next(r for r in self.cluster.resources if r.name == command.resource)
        adapter = self._replicated(command.resource)
        wanted = ", ".join(command.nodes) or "no replica (asynchronous)"
        if adapter is None:
            answer = ReplicasRequired(
                command.resource, command.nodes, False, detail="not replicated"
            )
        else:
            try:
                answer = await asyncio.wait_for(
                    adapter.require(command.nodes), spec.monitor_timeout
                )
            except TimeoutError:
                answer = ReplicasRequired(
                    command.resource,
                    command.nodes,
                    False,
                    detail=f"timed out after {spec.monitor_timeout:g}s",
                )
            except Exception as err:  # an adapter bug must not kill the loop
                answer = ReplicasRequired(
                    command.resource, command.nodes, False, detail=f"{type(err).__name__}: {err}"
                )
        # The engine matches the answer to its request by the nodes it asked for.
        answer = replace(answer, resource=command.resource, nodes=command.nodes)
        self._record(
            "replication",
            f"{command.resource}: commits wait for {wanted}: "
            + ("in effect" if answer.ok else f"failed: {answer.detail}"),
            command.reason.rule,
            severity="info" if answer.ok else "warning",
            detail=command.reason.detail,
            resource=command.resource,
            required=list(command.nodes),
        )
        self.queue.put_nowait(answer)

    async def _follow(self, command: FollowPrimary) -> None:
        adapter = self._replicated(command.resource)
        if adapter is None:
            done = FollowDone(command.resource, command.primary, False, "not replicated")
        else:
            limit = adapter.follow_timeout
            try:
                done = await asyncio.wait_for(adapter.follow(command.primary), limit)
            except TimeoutError:
                done = FollowDone(
                    command.resource, command.primary, False, f"timed out after {limit:g}s"
                )
            except Exception as err:
                done = FollowDone(
                    command.resource, command.primary, False, f"{type(err).__name__}: {err}"
                )
        done = replace(done, resource=command.resource, primary=command.primary)
        last = self.following
        self.following = done
        # Every few seconds while all is well: only changes go into the history.
        if (
            last is None
            or (last.ok, last.streaming, last.primary)
            != (
                done.ok,
                done.streaming,
                done.primary,
            )
            or done.diverged
        ):
            state = "streaming" if done.streaming else ("ok" if done.ok else "failed")
            self._record(
                "replica",
                f"{command.resource}: copy follows {done.primary or 'no primary'}: {state}"
                + (f" ({done.detail})" if done.detail else ""),
                command.reason.rule,
                severity="info" if done.ok else "warning",
                resource=command.resource,
                primary=done.primary,
                streaming=done.streaming,
                diverged=done.diverged,
            )
        self.queue.put_nowait(done)

    async def _fence(self, command: FencePeer) -> None:
        if self.adapters.fence is None:
            self.queue.put_nowait(FenceDone(command.target, False, "no fence method configured"))
            return
        # The methods run in order, each bounded by its own timeout: allow them all.
        limit = self.adapters.fence.total_timeout
        try:
            ok, detail = await asyncio.wait_for(self.adapters.fence.fence(command.target), limit)
        except TimeoutError:
            ok, detail = False, f"timed out after {limit:g}s"
        except Exception as err:
            ok, detail = False, f"{type(err).__name__}: {err}"
        self.queue.put_nowait(FenceDone(command.target, ok, detail))

    async def _ask_arbiter(self, command: AskArbiter) -> None:
        if self.adapters.arbiter is None:
            answers = [
                ArbiterAnswer(
                    ArbiterOutcome.UNREACHABLE, command.at, detail="no arbiter configured"
                )
            ]
        else:
            try:
                answers = await asyncio.wait_for(
                    self.adapters.arbiter.ask(
                        command.request, command.epoch, command.at, command.peer, command.token
                    ),
                    self.cluster.timers.lease / 4,
                )
            except TimeoutError:
                answers = [ArbiterAnswer(ArbiterOutcome.UNREACHABLE, command.at, detail="timeout")]
            except Exception as err:
                answers = [
                    ArbiterAnswer(
                        ArbiterOutcome.UNREACHABLE,
                        command.at,
                        detail=f"{type(err).__name__}: {err}",
                    )
                ]
        for answer in answers:
            self.queue.put_nowait(answer)

    # ------------------------------------------------------------ tickle ACKs

    def _tickled_addresses(self, *, running: bool = True) -> list[IPAddress]:
        """The floating addresses of ip resources with tickles on (only running ones)."""
        found: list[IPAddress] = []
        for name, adapter in self._tickled:
            view = self.engine.group.by_name.get(name)
            if running and (view is None or view.state is not ResState.RUNNING):
                continue
            found += adapter.tickle_addresses
        return found

    def _connection_addresses(self) -> list[IPAddress]:
        """The addresses whose connections this node publishes: none unless it is active."""
        return self._tickled_addresses() if self.engine.role is Role.ACTIVE else []

    def _check_connections(self) -> None:
        """Wake the publisher when this node's connections may have changed: run at every
        deadline, which on the active node is its heartbeat timer, so a new client is known
        to the peers within about an interval, at the price of reading a few counters on a
        wakeup the node makes anyway (no timer of its own)."""
        wake = self._connlist_wake
        # Unreadable counters count as moved: the publisher's read then says what is wrong.
        if (
            wake is not None
            and not wake.is_set()
            and self._connections.stale(self._connection_addresses())
        ):
            wake.set()

    async def _publish_connections(self) -> None:
        """While active, send the peers this node's connections on the floating addresses:
        when they may have changed (`_check_connections`), and again every CONNLIST_REFRESH
        while there are any; an empty list once when the node stops being active."""
        wake = self._connlist_wake = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONNLIST_REFRESH):
                    await wake.wait()
            wake.clear()
            walks = self._connections.walks
            try:
                conns = await self._connections.read(self._connection_addresses())
            except OSError as err:
                log.warning("cannot read this node's TCP connections: %s", err)
                await asyncio.sleep(CONNLIST_INTERVAL)
                continue
            self._send_connections(conns)
            if self._connections.walks != walks:
                # However fast connections come and go, walk at most this often.
                await asyncio.sleep(CONNLIST_INTERVAL)

    def _send_connections(self, conns: tuple[Connection, ...]) -> None:
        """Send `conns` to the peers if they changed, or to refresh a list that is not empty."""
        now = self.clock()
        if conns == self._connlist_sent and (
            not conns or now - self._connlist_sent_at < CONNLIST_REFRESH
        ):
            return
        if conns != self._connlist_sent:
            self._connlist_generation += 1
        messages = self.connlist.encode_all(
            self.node, self.boot_id, self._connlist_seq + 1, self._connlist_generation, conns
        )
        self._connlist_seq += len(messages)
        self._connlist_sent, self._connlist_sent_at = conns, now
        for message in messages:
            for link in self._connlist_links:
                link.send(message)

    def _receive_connlist(self, link: str, data: bytes) -> None:
        try:
            chunk = self.connlist.decode(data)
        except WireError as err:
            self._drop(link, err.reason, f"connection list: {err.detail}")
            return
        if chunk.sender == self.node or chunk.sender not in self.cluster.node_names:
            self._drop(link, "unknown_sender", f"connection list from {chunk.sender!r}")
            return
        refused = self.connlist_guards[link].admit(chunk.sender, chunk.boot, chunk.seq)
        if refused is not None:
            self._drop(link, refused.value, f"connection list from {chunk.sender}")
            return
        self.connlists.add(chunk)

    def _tickle(self, resource: str, addresses: Sequence[IPAddress]) -> None:
        """Tickle the clients of every other node's remembered connections on `addresses`."""
        for sender in self.connlists.senders():
            conns = connections_on(self.connlists.connections(sender), addresses)
            if not conns:
                continue
            # The first round at once (and in the history); the others in the background.
            sent, errors = send_round(conns)
            self._spawn(repeat_rounds(conns))
            self.connlists.forget(sender, addresses)
            self._record(
                "resource.tickle",
                f"{resource}: tickled {len(conns)} client connection(s) of {sender}"
                + (f" ({len(errors)} send errors, first: {errors[0]})" if errors else ""),
                "tickle.after_takeover",
                severity="warning" if errors else "info",
                resource=resource,
                peer=sender,
                connections=len(conns),
                sent=sent,
            )

    def _connlist_status(self) -> dict[str, Any]:
        return {"published": len(self._connlist_sent), "known": self.connlists.summary()}

    def resource_step(self, resource: str, message: str) -> None:
        """A step of a resource action, as it happens (a StepReport for the adapters)."""
        self._record("resource.step", f"{resource}: {message}", resource=resource)

    # ------------------------------------------------------------ history

    def _record(self, kind: str, message: str, rule: str = "", **data: Any) -> None:
        record = Record(time.time(), kind, message, rule, data)
        self.history.append(record)
        severity = data.get("severity", "info")
        level = {"critical": logging.CRITICAL, "warning": logging.WARNING}.get(
            severity, logging.INFO
        )
        log.log(level, "%s: %s [%s]", kind, message, rule)
        for follower in self.followers:
            follower.put_nowait(record)
        for observe in self.observers:
            observe(record)


def _exit_now(why: str) -> None:
    # Self-fencing: no cleanup, no finally blocks. The resources stay as they
    # are and the watchdog (when configured) resets the machine.
    log.critical("self-fence: %s", why)
    os._exit(70)
