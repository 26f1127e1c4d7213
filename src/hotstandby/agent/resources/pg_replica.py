"""PostgreSQL replicated mode: the adapter of a node's own copy (primary or streaming replica).

The actions' and methods' semantics are documented with the parameters in `postgres.py`.
The core decides; this carries out: START makes this node's server the primary, STOP stops
it, MONITOR checks it and reads its replication (`last_report`), `require` sets the replicas
every commit waits for, `follow` makes this node's server a replica of the primary named,
mending it when it is not (`pg_rewind.py` holds the mechanics), `health` answers the HTTP
health endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from hotstandby.agent.ports import ActionResult, StepReport, ignore_steps
from hotstandby.agent.resources import pg_rewind
from hotstandby.agent.resources.pg_replication import (
    ReplicationParams,
    conninfo_values,
    lsn_int,
    slot_name,
    standby_names_for,
    standby_names_in,
)
from hotstandby.agent.resources.pg_rewind import DataError
from hotstandby.agent.resources.postgres import (
    ConnectError,
    PostgresParams,
    PostgresResource,
    connect_local,
    find_postmaster,
    first_line,
)
from hotstandby.core.messages import (
    Action,
    FollowDone,
    Outcome,
    ReplicaInfo,
    ReplicasRequired,
    ReplicationReport,
)

# One row: the server's role and what a replica and a primary need to know of it.
STATE_QUERY = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       current_setting('synchronous_standby_names'),
       (SELECT status FROM pg_stat_wal_receiver),
       current_setting('primary_conninfo'),
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint
"""
REPLICAS_QUERY = """
SELECT application_name, state, sync_state, coalesce(flush_lsn::text, '0/0')
FROM pg_stat_replication WHERE application_name <> '' ORDER BY application_name
"""
# How long a promotion may take (pg_promote's own bound; the start_timeout cuts it sooner).
PROMOTE_WAIT = 60
# How long require() waits for a new backend to see the reloaded setting.
RELOAD_WAIT = 10.0
# How long a replica just started gets to say it streams, before follow() answers anyway.
STREAM_WAIT = 3.0
POLL = 0.05
# The server's words (lc_messages C) for a replica that cannot go on as it is.
WAL_GONE = ("has already been removed",)
OFF_HISTORY = (
    "is not a child of this server's history",
    "forked off current database system timeline",
    "requested starting point",
)
# How much of the server log's end a replica that does not stream is looked for in.
LOG_LOOK = 16 << 10


class NoAnswerError(Exception):
    """The server did not answer: the text says how."""


@dataclass(frozen=True)
class ServerState:
    """What STATE_QUERY read."""

    recovery: bool  # a replica
    lsn: int | None  # the primary's WAL position (None on a replica)
    standby_names: str  # synchronous_standby_names in effect
    receiver: str | None  # pg_stat_wal_receiver.status, None when no receiver runs
    conninfo: str  # primary_conninfo
    lag: int | None  # bytes received but not replayed yet

    @property
    def upstream(self) -> str:
        """The host a replica streams from, as its conninfo says."""
        return conninfo_values(self.conninfo).get("host", "?")


class ReplicatedPostgres(PostgresResource):
    """A ResourceAdapter for one node's PostgreSQL copy in replicated mode."""

    def __init__(
        self, name: str, params: PostgresParams, report: StepReport = ignore_steps
    ) -> None:
        super().__init__(name, params, report)
        if params.replication is None:
            raise ValueError(f"resource {name!r} is not in replicated mode")
        self.repl: ReplicationParams = params.replication
        # The primary's replication as the last START or MONITOR read it.
        self.last_report: ReplicationReport | None = None
        # The follow() under way: a START or STOP cuts it short rather than wait for it.
        self._following: asyncio.Task[FollowDone] | None = None

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start (be the primary), stop, monitor or probe."""
        try:
            if action is Action.START:
                self._cut_follow_short()
                async with self._lock:
                    return await self._become_primary()
            if action is Action.STOP:
                self._cut_follow_short()
                async with self._lock:
                    return await self._stop()
            if action is Action.MONITOR:
                return await self._monitor_primary()
            return await self._probe()
        except (OSError, DataError) as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: {err}")
        except KeyError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: no user {err}")

    # ---- connections

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            conn = await connect_local(self.params)
        except ConnectError as err:
            raise NoAnswerError(str(err)) from None
        try:
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()  # without waiting on a server that may be frozen

    async def _rows(
        self, conn: psycopg.AsyncConnection[Any], query: Any, args: Sequence[object] = ()
    ) -> list[tuple[Any, ...]]:
        limit = self.params.query_timeout
        try:
            async with asyncio.timeout(limit):
                cursor = await conn.execute(query, args or None)
                return await cursor.fetchall() if cursor.description else []
        except TimeoutError:
            raise NoAnswerError(f"no answer within {limit:g}s") from None
        except psycopg.Error as err:
            raise NoAnswerError(f"query failed: {first_line(err)}") from None

    async def _state_of(self, conn: psycopg.AsyncConnection[Any]) -> ServerState:
        (row,) = await self._rows(conn, STATE_QUERY)
        return ServerState(
            recovery=bool(row[0]),
            lsn=None if row[1] is None else lsn_int(row[1]),
            standby_names=row[2] or "",
            receiver=row[3],
            conninfo=row[4] or "",
            lag=row[5],
        )

    async def _state(self) -> ServerState:
        async with self._connect() as conn:
            return await self._state_of(conn)

    # ---- probe and monitor

    async def _probe(self) -> ActionResult:
        running = find_postmaster(self.params.pgdata)
        if running is None:
            return ActionResult(Outcome.STOPPED, "not running")
        try:
            state = await self._state()
        except NoAnswerError as err:
            return ActionResult(Outcome.FAILED, f"pid {running.pid} runs but {err}")
        if state.recovery:
            how = "streaming" if state.receiver == "streaming" else "not streaming"
            return ActionResult(Outcome.STOPPED, f"a replica runs ({how} from {state.upstream})")
        return ActionResult(Outcome.OK, f"the primary runs (pid {running.pid}), answers")

    async def _monitor_primary(self) -> ActionResult:
        running = find_postmaster(self.params.pgdata)
        if running is None:
            return await self._monitor()  # STOPPED, reaping what this agent started
        try:
            async with self._connect() as conn:
                if not await self._rows(conn, self.params.monitor_query):
                    return ActionResult(
                        Outcome.FAILED, f"pid {running.pid} runs but the monitor query "
                        "returned no row"
                    )  # fmt: skip
                state = await self._state_of(conn)
                if state.recovery:
                    return ActionResult(
                        Outcome.FAILED,
                        f"pid {running.pid} runs as a replica (of {state.upstream}), "
                        "not as the primary",
                    )
                self.last_report = await self._read_report(conn, state)
        except NoAnswerError as err:
            return ActionResult(Outcome.FAILED, f"pid {running.pid} runs but {err}")
        return ActionResult(Outcome.OK, f"the primary runs (pid {running.pid}), answers")

    async def _read_report(
        self, conn: psycopg.AsyncConnection[Any], state: ServerState
    ) -> ReplicationReport:
        rows = await self._rows(conn, REPLICAS_QUERY)
        replicas = tuple(
            ReplicaInfo(
                node=name, state=st, sync=sync in ("sync", "quorum"), flush_lsn=lsn_int(flush)
            )
            for name, st, sync, flush in rows
        )
        return ReplicationReport(
            resource=self.name,
            lsn=state.lsn or 0,
            replicas=replicas,
            required=standby_names_in(state.standby_names),
        )

    # ---- start: be the primary

    def _server_args(self, primary: str | None) -> list[str]:
        # pg_rewind needs hint bits WAL-logged on the server it rewinds, so on every node.
        args = ["-c", "wal_log_hints=on"]
        if primary is not None:
            args += ["-c", f"primary_conninfo={self.repl.conninfo(primary)}"]
            if self.repl.slots:
                args += ["-c", f"primary_slot_name={slot_name(self.repl.node)}"]
        return args

    async def _become_primary(self) -> ActionResult:
        p = self.params
        done: list[str] = []
        if find_postmaster(p.pgdata) is None:
            if not pg_rewind.has_cluster(p.pgdata):
                return ActionResult(
                    Outcome.FAILED,
                    f"no cluster in {p.pgdata} (no PG_VERSION): this node has no copy of the "
                    "data to serve; let it follow the primary first",
                )
            replica = os.path.exists(os.path.join(p.pgdata, "standby.signal"))
            started = await self._launch(self._server_args(None))
            if started.outcome is not Outcome.OK:
                return started
            done.append(f"{started.detail}{' as a replica' if replica else ''}")
        try:
            async with self._connect() as conn:
                state = await self._state_of(conn)
                promoted = state.recovery
                if promoted:
                    done.append(await self._promote(conn))
                    state = await self._state_of(conn)
                elif not done:
                    done.append("already running as the primary")
                made = await self._make_slots(conn, fresh=promoted)
                if made:
                    text = f"slots: made {', '.join(made)}"
                    self._step(text)
                    done.append(text)
                self.last_report = await self._read_report(conn, state)
        except NoAnswerError as err:
            return ActionResult(Outcome.FAILED, "; ".join([*done, f"the server {err}"]))
        return ActionResult(Outcome.OK, "; ".join(done))

    async def _promote(self, conn: psycopg.AsyncConnection[Any]) -> str:
        began = time.monotonic()
        # pg_promote waits for the end of recovery itself; a longer query bound than the
        # monitor's, since a replica far behind replays the rest of its WAL first.
        try:
            async with asyncio.timeout(PROMOTE_WAIT + 5):
                cursor = await conn.execute("SELECT pg_promote(true, %s)", (PROMOTE_WAIT,))
                row = await cursor.fetchone()
        except TimeoutError:
            raise NoAnswerError(f"was not promoted within {PROMOTE_WAIT}s") from None
        except psycopg.Error as err:
            raise NoAnswerError(f"cannot be promoted: {first_line(err)}") from None
        if row is None or not row[0]:
            raise NoAnswerError(f"was not promoted within {PROMOTE_WAIT}s")
        (name,) = (await self._rows(conn, "SELECT pg_walfile_name(pg_current_wal_lsn())"))[0]
        took = time.monotonic() - began
        text = f"promote: {took:.2f}s, timeline {int(name[:8], 16)}"
        self._step(text)
        return text

    async def _make_slots(self, conn: psycopg.AsyncConnection[Any], *, fresh: bool) -> list[str]:
        """Make the slot of every other node's replica where missing; their names."""
        if not self.repl.slots:
            return []
        rows = await self._rows(
            conn, "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'"
        )
        present = {name: active for name, active in rows}
        made: list[str] = []
        for node in self.repl.others:
            slot = slot_name(node)
            if slot in present and fresh and not present[slot]:
                # A slot from this node's earlier life as a primary keeps an old position
                # (and the WAL from there on); the replica starts from the new one.
                await self._rows(conn, "SELECT pg_drop_replication_slot(%s)", (slot,))
                del present[slot]
            if slot not in present:
                await self._rows(
                    conn, "SELECT pg_create_physical_replication_slot(%s, true)", (slot,)
                )
                made.append(slot)
        return made

    # ---- require: which replicas every commit waits for

    async def require(self, nodes: tuple[str, ...]) -> ReplicasRequired:
        """Make every commit wait for each of `nodes` (none: asynchronous), once in effect."""
        value = standby_names_for(nodes)
        try:
            async with self._connect() as conn:
                state = await self._state_of(conn)
                if state.recovery:
                    return ReplicasRequired(
                        self.name, nodes, False, detail="this node's server is a replica"
                    )
                await self._rows(
                    conn,
                    sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
                        sql.Literal(value)
                    ),
                )
                await self._rows(conn, "SELECT pg_reload_conf()")
                await self._await_setting(value)
                # Whether a commit waits at all is the checkpointer's word
                # (sync_standbys_defined), and it acts on the reload only when it next
                # wakes. It handles a pending reload before a requested checkpoint, so once
                # CHECKPOINT returns, every commit from now on waits for `nodes`: a commit
                # acknowledged without them lies before the LSN read after it, and the core
                # counts a replica lossless only once its flush_lsn reaches that LSN.
                await self._rows(conn, "CHECKPOINT")
                ((lsn,),) = await self._rows(conn, "SELECT pg_current_wal_lsn()::text")
        except NoAnswerError as err:
            return ReplicasRequired(self.name, nodes, False, detail=f"the server {err}")
        return ReplicasRequired(
            self.name, nodes, True, lsn_int(lsn), detail=f"synchronous_standby_names = {value!r}"
        )

    async def _await_setting(self, value: str) -> None:
        """Until a new backend (forked after the postmaster's reload) shows `value`."""
        deadline = time.monotonic() + RELOAD_WAIT
        while True:
            async with self._connect() as conn:
                ((shown,),) = await self._rows(conn, "SHOW synchronous_standby_names")
            if shown == value:
                return
            if time.monotonic() > deadline:
                raise NoAnswerError(f"still shows synchronous_standby_names = {shown!r}")
            await asyncio.sleep(POLL)

    # ---- follow: be a replica of the primary

    def _cut_follow_short(self) -> None:
        # A takeover must not wait for a base backup: the core asked for more than a replica.
        if self._following is not None and not self._following.done():
            self._step("follow: cut short, the node is to start or stop")
            self._following.cancel()

    async def follow(self, primary: str | None) -> FollowDone:
        """Make this node's server a replica streaming from `primary`, mending it if need be."""
        inner = asyncio.create_task(self._follow_locked(primary))
        self._following = inner
        try:
            return await inner
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller's own cancellation (its timeout); inner has cleaned up
            return self._done(primary, False, "cut short: a start or stop came first")
        finally:
            if self._following is inner:
                self._following = None

    async def _follow_locked(self, primary: str | None) -> FollowDone:
        limit = self.repl.follow_timeout
        async with self._lock:
            try:
                async with asyncio.timeout(limit):
                    return await self._follow(primary)
            except TimeoutError:
                return self._done(primary, False, f"follow did not finish within {limit:g}s")
            except (OSError, DataError, NoAnswerError) as err:
                return self._done(primary, False, str(err))
            except KeyError as err:
                return self._done(primary, False, f"no user {err}")

    def _done(
        self, primary: str | None, ok: bool, detail: str, streaming: bool = False,
        diverged: str = "",
    ) -> FollowDone:  # fmt: skip
        return FollowDone(self.name, primary, ok, detail, streaming, diverged)

    async def _follow(self, primary: str | None) -> FollowDone:
        p, r = self.params, self.repl
        running = find_postmaster(p.pgdata)
        if primary is None or primary == r.node:
            # No primary known, or this node's own server is it: nothing here is touched.
            if running is None:
                return self._done(primary, False, "not running")
            state = await self._state()
            if not state.recovery:
                return self._done(primary, primary == r.node, "this node's server is a primary")
            streaming = state.receiver == "streaming"
            return self._done(primary, False, f"a replica runs (of {state.upstream})", streaming)
        if primary not in r.addresses:
            return self._done(primary, False, f"no replication_address for node {primary!r}")
        want = conninfo_values(r.conninfo(primary))
        if running is not None:
            try:
                state = await self._state()
            except NoAnswerError as err:
                # Starting up, frozen or stopping: not stopped on a guess; the next call looks.
                return self._done(primary, False, f"pid {running.pid} runs but {err}")
            if state.recovery and _same_upstream(conninfo_values(state.conninfo), want):
                if state.receiver == "streaming":
                    return self._done(primary, True, f"streaming from {primary}", True)
                log = self._recent_log()
                trouble = next((m for m in (*WAL_GONE, *OFF_HISTORY) if m in log), None)
                if trouble is None:
                    errors = [line for line in log.splitlines() if "FATAL:" in line]
                    last = f"; the log's last error: {errors[-1].strip()[-300:]}" if errors else ""
                    return self._done(
                        primary, True,
                        f"a replica of {primary}, not streaming (receiver: "
                        f"{state.receiver or 'none'}){last}",
                    )  # fmt: skip
                await self._stop_for_follow(f"the replica cannot go on ({trouble})")
                if trouble in WAL_GONE:
                    why = "the primary no longer has the WAL it needs"
                    return await self._rebuild(primary, why)
            else:
                what = "the primary" if not state.recovery else f"a replica of {state.upstream}"
                await self._stop_for_follow(f"{what} runs here")
                if state.recovery:
                    pg_rewind.write_standby_signal(p.pgdata, p.user)
                    return await self._start_replica(primary, [])
        if not pg_rewind.has_cluster(p.pgdata):
            return await self._rebuild(primary, f"no cluster in {p.pgdata}")
        return await self._rewind_and_start(primary)

    async def _stop_for_follow(self, why: str) -> None:
        self._step(f"follow: {why}: stopping it")
        stopped = await self._stop()
        if stopped.outcome is not Outcome.OK:
            raise DataError(f"cannot stop the server: {stopped.detail}")

    def _recent_log(self) -> str:
        """The server log's end, since this agent started the server."""
        try:
            with open(self.params.server_log, "rb") as log:
                end = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_start, end - LOG_LOOK))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    async def _rewind_and_start(self, primary: str) -> FollowDone:
        p, r = self.params, self.repl
        remaining = self._remaining
        try:
            state = await pg_rewind.cluster_state(p.bindir, p.pgdata)
            replica = os.path.exists(os.path.join(p.pgdata, "standby.signal"))
            if state not in pg_rewind.CLEAN_STATES:
                if replica:
                    # A replica's crash recovery runs as it starts in standby mode (single-
                    # user mode refuses standby mode); had it diverged, its log says so.
                    return await self._start_replica(primary, [f"cluster state: {state}"])
                began = time.monotonic()
                await pg_rewind.finish_recovery(p.bindir, p.pgdata, p.user, remaining())
                took = time.monotonic() - began
                self._step(f"follow: crash recovery (single-user): {took:.2f}s")
        except DataError as err:
            # What cannot be read cannot be rewound: a fresh copy, this one kept.
            return await self._rebuild(primary, str(err), diverged=True)
        source = r.conninfo(primary, dbname=p.database)
        try:
            await self._checkpoint(source)
            check = await pg_rewind.rewind(
                p.bindir, p.pgdata, p.user, source, remaining(), dry_run=True
            )
        except DataError as err:
            return await self._rebuild(primary, str(err), diverged=True)
        if not check.needed:
            self._step("follow: no rewind required")
            pg_rewind.write_standby_signal(p.pgdata, p.user)
            return await self._start_replica(primary, ["no rewind required"])
        where = f"diverged at WAL location {check.diverged_at} on timeline {check.timeline}"
        began = time.monotonic()
        copy = await pg_rewind.keep_copy(p.pgdata, r.diverged_dir, remaining())
        self._step(f"follow: {where}: kept a copy in {copy} ({time.monotonic() - began:.2f}s)")
        began = time.monotonic()
        try:
            await pg_rewind.rewind(p.bindir, p.pgdata, p.user, source, remaining(), dry_run=False)
        except DataError as err:
            self._step(f"follow: {err}")
            # The copy is kept: what is left in pgdata is neither the old data nor a replica.
            return await self._rebuild(primary, str(err), diverged=False, kept=copy)
        text = f"pg_rewind: {time.monotonic() - began:.2f}s"
        self._step(f"follow: {text}")
        pg_rewind.write_standby_signal(p.pgdata, p.user)
        return await self._start_replica(primary, [where, f"kept in {copy}", text], copy)

    async def _rebuild(
        self, primary: str, why: str, *, diverged: bool = False, kept: str = ""
    ) -> FollowDone:
        """A fresh base backup in place of pgdata, the old one kept (when it held one)."""
        p, r = self.params, self.repl
        self._step(f"follow: {why}: a fresh copy from {primary}")
        began = time.monotonic()
        slot = slot_name(r.node) if r.slots else ""
        new = await pg_rewind.base_backup(
            p.bindir, p.pgdata, p.user, r.conninfo(primary), slot, self._remaining()
        )
        took = time.monotonic() - began
        label = "diverged" if diverged else "replaced"
        keep_in = None if kept else r.diverged_dir
        old = await asyncio.to_thread(pg_rewind.swap_in, p.pgdata, new, keep_in, label)
        pg_rewind.write_standby_signal(p.pgdata, p.user)
        text = f"base backup: {took:.2f}s"
        self._step(f"follow: {text}" + (f", the old data kept in {old}" if old else ""))
        steps = [why, text] + ([f"the old data kept in {old}"] if old else [])
        return await self._start_replica(primary, steps, kept or (old if diverged else ""))

    async def _start_replica(
        self, primary: str, steps: list[str], diverged: str = ""
    ) -> FollowDone:
        started = await self._launch(self._server_args(primary), replica=True)
        if started.outcome is not Outcome.OK:
            return self._done(primary, False, "; ".join([*steps, started.detail]), False, diverged)
        deadline = time.monotonic() + STREAM_WAIT
        streaming = False
        while True:
            with contextlib.suppress(NoAnswerError):
                streaming = (await self._state()).receiver == "streaming"
            if streaming or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL)
        text = f"a replica of {primary}: {started.detail}, " + (
            "streaming" if streaming else "not streaming yet"
        )
        self._step(f"follow: {text}")
        return self._done(primary, True, "; ".join([*steps, text]), streaming, diverged)

    async def _checkpoint(self, source: str) -> None:
        """CHECKPOINT on the primary, so that pg_rewind sees its new timeline.

        A promoted server writes its timeline into its control file only at its next
        checkpoint, which PostgreSQL 15 requests but does not wait for; pg_rewind reads the
        timeline from there and, until then, finds "no rewind required" for a former primary
        whose WAL did diverge (PostgreSQL's documentation of pg_rewind asks for this
        checkpoint). Done here rather than after the promotion, so a takeover never waits
        for it.
        """
        p = self.params
        limit = p.connect_timeout + p.query_timeout
        try:
            async with asyncio.timeout(limit):
                conn = await psycopg.AsyncConnection.connect(
                    source, connect_timeout=max(2, math.ceil(p.connect_timeout)), autocommit=True
                )
                try:
                    await conn.execute("CHECKPOINT")
                finally:
                    with contextlib.suppress(Exception):
                        conn.pgconn.finish()
        except TimeoutError:
            raise DataError(f"CHECKPOINT on the primary: no answer within {limit:g}s") from None
        except psycopg.Error as err:
            raise DataError(f"CHECKPOINT on the primary: {first_line(err)}") from None

    @property
    def follow_timeout(self) -> float:
        """The bound the agent puts on one follow()."""
        return self.repl.follow_timeout

    def _remaining(self) -> float:
        # Each program's own bound; follow()'s timeout around them all cuts them sooner.
        return self.repl.follow_timeout

    # ---- health, for load balancers

    async def health(self) -> dict[str, object]:
        """Whether this node's server runs, as primary or as a streaming replica."""
        out: dict[str, object] = {
            "running": False, "primary": False, "replica": False, "streaming": False,
            "lag_bytes": None, "detail": "not running",
        }  # fmt: skip
        running = find_postmaster(self.params.pgdata)
        if running is None:
            return out
        try:
            state = await self._state()
        except NoAnswerError as err:
            out["detail"] = f"pid {running.pid} runs but {err}"
            return out
        streaming = state.receiver == "streaming"
        out.update(
            running=True,
            primary=not state.recovery,
            replica=state.recovery,
            streaming=streaming,
            lag_bytes=state.lag if state.recovery else None,
            detail="the primary" if not state.recovery else (
                f"a replica, {'streaming' if streaming else 'not streaming'} "
                f"from {state.upstream}"
            ),
        )  # fmt: skip
        return out


def _same_upstream(have: dict[str, str], want: dict[str, str]) -> bool:
    keys = ("host", "port", "user", "application_name", "passfile")
    return all(have.get(k) == want.get(k) for k in keys)
