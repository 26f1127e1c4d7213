"""PostgreSQL: the database server, on the shared volume or replicated to every node.

Parameters of a `postgres` resource ([resource.params] in the cluster file):

- `mode`: "shared-disk" (the default): the data directory lives on the shared volume and only
  the node that holds the volume runs the server; list the postgres resource after the volume
  and the floating IP. "replicated": each node keeps its own copy; the active node's server
  is the primary, every other node's a hot-standby replica streaming from it (see
  "Replicated mode" below; the adapter is `pg_replica.py`).
- `pgdata`: the data directory, an absolute path; required. It must hold an existing cluster
  (made once by `initdb` or `pg_createcluster`, with its postgresql.conf and pg_hba.conf in
  it): the cluster never runs initdb itself.
- `bindir`: the directory of the server programs; default "/usr/lib/postgresql/15/bin"
  (Debian's postgresql-15). It must hold `postgres` and `pg_ctl`.
- `port`: the TCP port and the socket's number, 1 to 65535; default 5432.
- `listen_addresses`: the server's listen_addresses; default "*" (every address, the floating
  one included, which the ip resource adds before the server starts).
- `user`: the operating system user the server runs as (PostgreSQL refuses root); default
  "postgres" (Debian's package creates it).
- `socket_dir`: where the server makes its Unix socket; default "/var/run/postgresql",
  created (owned by `user`) when missing.
- `settings`: a table of further server settings, each passed as `-c NAME=VALUE`
  (`{ shared_buffers = "1GB" }`); the server runs without a shell, so values need no quoting.
- `log`: the file the server's output is appended to; default PGDATA/hotstandby-server.log.
  Crash recovery is read from it (keep `logging_collector` off, or only the time the server
  took to become ready is reported). It is appended to, never rotated: rotate it with
  copytruncate.
- `stop_modes`: the shutdown modes a stop goes through, in this order, a list drawn from
  "smart" (waits for clients to disconnect), "fast" (rolls back open transactions and
  disconnects clients) and "immediate" (no shutdown checkpoint: the next start runs crash
  recovery); default ["smart", "fast", "immediate"]; the last must be "immediate".
- `smart_timeout`, `fast_timeout`, `immediate_timeout`: how long each mode may take
  (`pg_ctl stop -t`); defaults "3s", "10s", "5s". Those of the modes used, together, must fit
  in the resource's stop_timeout.
- `database`, `dbuser`: what the monitor connects to and as; defaults "postgres", "postgres".
  The monitor connects as root over the Unix socket: pg_hba.conf must let it in as `dbuser`
  (`local all postgres trust`, or `peer map=...` with pg_ident.conf mapping root to it).
- `monitor_query`: the query the monitor runs; default "SELECT 1". It must return a row.
- `connect_timeout`, `query_timeout`: bounds on the monitor's connection and on its query;
  defaults "2s" and "2s"; together they must fit in the resource's monitor_timeout.

Replicated mode (mode = "replicated"): every parameter above applies, and

- `pgdata`, `port`, `socket_dir` and `log` may each be a table of one value per node
  (`{ alpha = "/srv/pg/main", beta = "/srv/pg/main2" }`) naming every node of the cluster.
  `log` defaults to PGDATA's parent/<name of PGDATA>-hotstandby-server.log, outside the data
  directory: a base backup or a rewind copies every file of the primary's over this node's.
- `replication_address` (required): a table of every node to the IP address the other
  nodes' replicas connect to for its server (the private link's):
  `{ alpha = "198.51.100.1", beta = "198.51.100.2" }`. A replica of node X connects to
  replication_address[X] on port[X]. Node names must be plain a-z, 0-9, "_" and "-": a
  replica's application_name is its node name (so pg_stat_replication names nodes).
- `replication_user`: the user replicas, pg_basebackup and pg_rewind connect as; default
  "postgres". pg_hba.conf on every node must let it in from the other nodes' addresses for
  `replication` (streaming, base backups) and for `database` (pg_rewind reads the primary
  through an ordinary connection, so it needs superuser or pg_rewind's function grants).
- `replication_passfile`: an absolute path, passed as passfile= in the conninfo; optional.
- `replication_slots`: true (the default): the primary keeps a physical slot
  `hotstandby_<node>` ("-" as "_") for every other node, made at START when missing, and
  each replica streams through its own, so the primary keeps the WAL a replica still needs
  (set max_slot_wal_keep_size in `settings` to bound what a long-gone replica may hold).
- `follow_timeout`: the bound on one follow() (which may run a base backup); default "10min".
- `diverged_dir`: where data this node had and the primary lacks is kept before it is
  thrown away; default PGDATA's parent. PGDATA itself must not be a mountpoint (a fresh copy
  replaces the directory).
- `stop_modes` defaults to ["fast", "immediate"]: a switchover disconnects clients anyway.
- `dbuser` must be a superuser (the adapter promotes, sets synchronous_standby_names with
  ALTER SYSTEM, runs CHECKPOINT and reads primary_conninfo).
- The server always runs with `-c wal_log_hints=on` (pg_rewind needs it); a replica also
  with `-c primary_conninfo='host=ADDR port=PORT user=USER application_name=NODE [passfile=]'`
  and `-c primary_slot_name=...`; postgresql.conf is never edited. synchronous_standby_names
  is set only by `require` (ALTER SYSTEM): set on the command line, it would override that.
  `settings` may not set any of these four.

What `hotstandby check --node NAME` looks at on this machine (warnings): `bindir` holds
executable `postgres` and `pg_ctl` (replicated mode: `pg_rewind` and `pg_basebackup` too),
and their major version matches PGDATA/PG_VERSION when that is readable; `user` exists; in
shared-disk mode, `pgdata` lies under the mountpoint of a volume resource listed before this
one (otherwise the data would not move with the group); in replicated mode, `pgdata` is not
a mountpoint itself.

Actions:

- start: OK at once when a server already runs for `pgdata` and answers. Otherwise starts
  `postgres -D PGDATA -p PORT -k SOCKET_DIR -c listen_addresses=... [-c settings]` as `user`,
  without a shell, in a session of its own, its output appended to `log`; waits until
  postmaster.pid says "ready", then runs the monitor query. A server that exits meanwhile
  fails the start, with the tail of its log. After an unclean stop (a power loss, a kill)
  the server runs crash recovery first: the start reports it as a step with the redo time
  the server logged ("redo done at ... elapsed: X s") and the time until it was ready, and
  the result's detail says it too. A start cut short by the start_timeout kills the server's
  whole process group.
- stop: `pg_ctl stop -m MODE -t LIMIT` for each of `stop_modes` in turn, until the server is
  gone; every mode tried is a step. OK when no server runs for `pgdata` (at once when none
  did); FAILED only when one still runs after the last mode (the core then fences the node).
- monitor: the monitor query over a real connection, within connect_timeout and
  query_timeout: OK when it returns a row. STOPPED when no postmaster runs for `pgdata`;
  FAILED when one runs but the query fails or does not answer in time (a frozen server).
- probe: a postmaster for `pgdata` (postmaster.pid names a live postgres process) that
  answers a connection: OK; none (no postmaster.pid, or a stale one: the server clears a stale
  one itself at its next start): STOPPED; a live postmaster that does not answer: FAILED.

Actions in replicated mode (the core decides; `pg_replica.py` carries out):

- start: make this node's server the primary. A replica running: promoted (pg_promote,
  waiting for the end of recovery); not running with a replica's data (standby.signal):
  started, then promoted; not running with a primary's data: started; no cluster in pgdata:
  FAILED. Then the missing slots are made (a promotion remakes this node's stale ones).
  Steps report the times ("promote: 0.21s, timeline 3"); `last_report` is set.
- stop: as in shared-disk mode; the node then holds nothing (the core asks follow()).
- monitor: the monitor query, and the server must not be in recovery (a replica where the
  primary should run is FAILED); sets `last_report` (a ReplicationReport: the primary's WAL
  position, each replica's state, sync and flush position, the replicas commits wait for).
- probe: the primary running and answering: OK; a replica running: STOPPED ("a replica runs
  (streaming from ...)"); nothing: STOPPED; a live postmaster not answering: FAILED.
- require(nodes): synchronous_standby_names = 'FIRST n ("a", "b")' (every node listed, so
  each is lossless), or '' for none, with ALTER SYSTEM and a reload; answers once it is in
  effect, with the primary's WAL position then (ReplicasRequired).
- follow(primary): make this node's server a replica of `primary` (None: keep what runs,
  report). A replica of it streaming: reported, one query. A primary here: stopped first; a
  replica of another: restarted with the new conninfo. Stopped data: crash recovery finished
  in single-user mode if it stopped uncleanly, then `pg_rewind --dry-run`; when a rewind is
  needed (the primary lacks WAL this node has), the data directory is first copied to
  `diverged_dir/<name>.diverged-<UTC time>` and FollowDone.diverged names the copy, with the
  point of divergence in the detail. A failed rewind, no cluster, or a replica whose WAL is
  gone from the primary: a fresh pg_basebackup into a new directory, which replaces pgdata
  once complete (the old one kept in diverged_dir). Never touches a primary when `primary`
  is this node.
- health(): running, primary, replica, streaming, lag_bytes, detail (one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pwd
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotstandby.agent.ports import ActionResult, StepReport, ignore_steps
from hotstandby.agent.resources import pg_replication
from hotstandby.agent.resources.child import (
    child_env,
    kill_group,
    read_tail,
    reap_killed,
    run_command,
    user_exists,
    user_options,
)
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.agent.resources.pg_replication import ReplicationParams
from hotstandby.core.cluster import Cluster, Resource, ResourceKind
from hotstandby.core.messages import Action, Outcome

if TYPE_CHECKING:
    import psycopg

KEYS = (
    frozenset(
        {
            "mode",
            "pgdata",
            "bindir",
            "port",
            "listen_addresses",
            "user",
            "socket_dir",
            "settings",
            "log",
            "stop_modes",
            "smart_timeout",
            "fast_timeout",
            "immediate_timeout",
            "database",
            "dbuser",
            "monitor_query",
            "connect_timeout",
            "query_timeout",
        }
    )
    | pg_replication.KEYS
)
MODES = ("shared-disk", "replicated")
STOP_MODES = ("smart", "fast", "immediate")
# A switchover disconnects the clients anyway: waiting for them (smart) only delays it.
REPLICATED_STOP_MODES = ("fast", "immediate")
DEFAULT_STOP_LIMITS = {"smart": 3.0, "fast": 10.0, "immediate": 5.0}
DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin"
DEFAULT_SOCKET_DIR = "/var/run/postgresql"
LOG_NAME = "hotstandby-server.log"
MAX_LIMIT = 3600.0
# How often a start looks at postmaster.pid while the server comes up.
READY_POLL = 0.05
# Bound on `postgres --version` when `check` looks at this machine.
CHECK_TIMEOUT = 5.0
SETTING_NAME = re.compile(r"[a-z_][a-z0-9_.]*")
# PostgreSQL's own messages (lc_messages C): an unclean stop, then the redo's end.
CRASH_MARKS = (
    "database system was interrupted",
    "database system was not properly shut down",
)
REDO_DONE = re.compile(r"redo done at \S+ system usage: .*?elapsed: ([0-9.]+) s")
REDO_NOT_REQUIRED = "redo is not required"
# postmaster.pid: line 1 the pid, line 2 the data directory, line 8 the status.
PID_STATUS_LINE = 7


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresParams:
    """A postgres resource's validated parameters, for one node."""

    pgdata: str
    mode: str = "shared-disk"
    bindir: str = DEFAULT_BINDIR
    port: int = 5432
    listen_addresses: str = "*"
    user: str = "postgres"
    socket_dir: str = DEFAULT_SOCKET_DIR
    settings: Mapping[str, str] = field(default_factory=dict)
    log: str = ""
    stop_modes: tuple[str, ...] = STOP_MODES
    stop_limits: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_STOP_LIMITS))
    database: str = "postgres"
    dbuser: str = "postgres"
    monitor_query: str = "SELECT 1"
    connect_timeout: float = 2.0
    query_timeout: float = 2.0
    replication: ReplicationParams | None = None  # mode = "replicated" only

    @property
    def server_log(self) -> str:
        """The file the server's output goes to."""
        if self.log:
            return self.log
        if self.replication is not None:
            # Beside the data directory: a base backup or a rewind copies every file of the
            # primary's data directory, a log inside it included, over this node's own.
            parent, base = os.path.split(self.pgdata)
            return os.path.join(parent, f"{base}-{LOG_NAME}")
        return os.path.join(self.pgdata, LOG_NAME)


def parse_params(
    resource: Resource, node: str, cluster_nodes: tuple[str, ...] | None = None
) -> PostgresParams:
    """The validated parameters of postgres `resource` on `node` (ParamError otherwise)."""
    name = resource.name
    p = ParamReader(name, "postgres", resource.params, KEYS)
    mode = p.string("mode", "shared-disk")
    if mode not in MODES:
        raise p.error("mode", '"shared-disk" or "replicated"', mode)
    replication: ReplicationParams | None = None
    if mode == "replicated":
        if cluster_nodes is not None:
            pg_replication.check_node_tables(name, resource.params, cluster_nodes)
        raw_port = resource.params.get("port")
        p = p.for_node(node, pg_replication.PER_NODE_KEYS)
        replication = pg_replication.parse_replication(p, node, raw_port, cluster_nodes)
    else:
        for key in sorted(pg_replication.KEYS & set(resource.params)):
            raise ParamError(name, key, 'is for mode = "replicated" only', goes_on=True)
    modes = p.string_list("stop_modes") or (REPLICATED_STOP_MODES if replication else STOP_MODES)
    if (
        any(m not in STOP_MODES for m in modes)
        or list(modes) != sorted(set(modes), key=STOP_MODES.index)
        or modes[-1] != "immediate"
    ):
        raise p.error(
            "stop_modes",
            'shutdown modes in the order "smart", "fast", "immediate", ending with "immediate"',
            list(modes),
        )
    limits = {m: p.seconds(f"{m}_timeout", DEFAULT_STOP_LIMITS[m], MAX_LIMIT) for m in STOP_MODES}
    settings = p.string_table("settings")
    for key in settings:
        if not SETTING_NAME.fullmatch(key):
            raise p.error(f"settings.{key}", "a server setting name (shared_buffers)", key)
        if "\0" in settings[key]:
            raise p.error(f"settings.{key}", "a value without NUL", settings[key])
    params = PostgresParams(
        mode=mode,
        pgdata=_directory(p, "pgdata", None),
        bindir=_directory(p, "bindir", DEFAULT_BINDIR),
        port=p.integer("port", 5432, 1, 65535),
        listen_addresses=p.string("listen_addresses", "*"),
        user=p.string("user", "postgres"),
        socket_dir=_directory(p, "socket_dir", DEFAULT_SOCKET_DIR),
        settings=settings,
        log=p.absolute_path("log", required=False),
        stop_modes=tuple(modes),
        stop_limits=limits,
        database=p.string("database", "postgres"),
        dbuser=p.string("dbuser", "postgres"),
        monitor_query=p.string("monitor_query", "SELECT 1"),
        connect_timeout=p.seconds("connect_timeout", 2.0, MAX_LIMIT),
        query_timeout=p.seconds("query_timeout", 2.0, MAX_LIMIT),
        replication=replication,
    )
    if replication is not None and not replication.diverged_dir:
        diverged = pg_replication.default_diverged_dir(params.pgdata)
        params = replace(params, replication=replace(replication, diverged_dir=diverged))
    if params.user == "root":
        raise p.error("user", "a user other than root (PostgreSQL refuses to run as root)", "root")
    stop_total = sum(limits[m] for m in params.stop_modes)
    if stop_total >= resource.stop_timeout:
        raise ParamError(
            name,
            f"{params.stop_modes[0]}_timeout",
            f"the stop modes' time limits ({stop_total:g}s together) must be shorter than the "
            f"resource's stop_timeout ({resource.stop_timeout:g}s)",
        )
    monitor_total = params.connect_timeout + params.query_timeout
    if monitor_total > resource.monitor_timeout:
        raise ParamError(
            name,
            "connect_timeout",
            f"connect_timeout and query_timeout ({monitor_total:g}s together) must fit in the "
            f"resource's monitor_timeout ({resource.monitor_timeout:g}s)",
        )
    return params


def _directory(p: ParamReader, key: str, default: str | None) -> str:
    value = p.absolute_path(key, default=default)
    if os.path.normpath(value) != value or value.startswith("//") or value == "/":
        raise p.error(key, 'an absolute directory without "." or ".." parts or a trailing slash',
                      value)  # fmt: skip
    return value


# ---- what check looks at ---------------------------------------------------------------------


def host_risks(
    resource: Resource, node: str, cluster: Cluster | None = None
) -> list[tuple[str | None, str]]:
    """What this machine's state risks for the server: missing programs, user, version."""
    try:
        params = parse_params(resource, node)
    except ParamError:
        return []  # reported as an error by validate already
    found: list[tuple[str | None, str]] = []
    programs = ["postgres", "pg_ctl"]
    if params.replication is not None:
        programs += ["pg_rewind", "pg_basebackup"]
    for program in programs:
        path = os.path.join(params.bindir, program)
        if not os.access(path, os.X_OK):
            found.append(("bindir", f"{path} is not an executable program on this machine"))
    if not found:
        version = server_version(params.bindir)
        if version is None:
            found.append(("bindir", f"{params.bindir}/postgres --version gives no version"))
        else:
            with contextlib.suppress(OSError):
                data = Path(params.pgdata, "PG_VERSION").read_text().strip()
                if data != version.split(".")[0]:
                    found.append(
                        ("bindir", f"the server is version {version}, the cluster in "
                                   f"{params.pgdata} is version {data}")
                    )  # fmt: skip
    if not user_exists(params.user):
        found.append(("user", f"no user {params.user!r} on this machine"))
    if params.replication is not None and os.path.ismount(params.pgdata):
        found.append(
            ("pgdata", f"{params.pgdata} is a mountpoint: a fresh copy from the primary "
                       "replaces the directory, so keep the data one level below it")
        )  # fmt: skip
    if cluster is not None and params.mode == "shared-disk":
        mountpoints = _volumes_before(cluster, resource)
        if not any(params.pgdata.startswith(m.rstrip("/") + "/") for m in mountpoints):
            found.append(
                (
                    "pgdata",
                    f"{params.pgdata} is not on the mountpoint of a volume resource listed "
                    "before this one: in shared-disk mode the data must move with the group",
                )
            )
    return found


def _volumes_before(cluster: Cluster, resource: Resource) -> list[str]:
    out: list[str] = []
    for other in cluster.resources:
        if other.name == resource.name:
            break
        mountpoint = other.params.get("mountpoint")
        if other.kind is ResourceKind.VOLUME and isinstance(mountpoint, str):
            out.append(mountpoint)
    return out


def server_version(bindir: str) -> str | None:
    """The version `postgres --version` prints ("15.8"), None when it prints none."""
    try:
        done = subprocess.run(
            [os.path.join(bindir, "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
            env=child_env({}),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\b(\d+(?:\.\d+)*)", done.stdout)
    return match.group(1) if match else None


# ---- the server's state ----------------------------------------------------------------------


@dataclass(frozen=True)
class Postmaster:
    """A live postmaster found through PGDATA/postmaster.pid."""

    pid: int
    status: str  # "starting", "ready", "stopping", ... ("" before the server writes it)


def find_postmaster(pgdata: str) -> Postmaster | None:
    """The live postmaster of pgdata, None when none runs (no pid file, or a stale one)."""
    try:
        lines = Path(pgdata, "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    # A pid reused by another program, or a server of another data directory, is not ours.
    if comm not in ("postgres", "postmaster") or os.path.realpath(pgdata) != cwd:
        return None
    status = lines[PID_STATUS_LINE].strip() if len(lines) > PID_STATUS_LINE else ""
    return Postmaster(pid, status)


def recovery_in(log_text: str) -> tuple[bool, float | None]:
    """Whether the server log shows a crash recovery, and the redo's elapsed seconds."""
    crashed = any(mark in log_text for mark in CRASH_MARKS)
    match = REDO_DONE.search(log_text)
    if match:
        return crashed, float(match.group(1))
    return crashed, 0.0 if REDO_NOT_REQUIRED in log_text else None


# ---- the adapter -----------------------------------------------------------------------------


class PostgresResource:
    """A ResourceAdapter for one PostgreSQL server (shared-disk mode)."""

    def __init__(
        self, name: str, params: PostgresParams, report: StepReport = ignore_steps
    ) -> None:
        self.name = name
        self.params = params
        self._report = report
        self._env = child_env({"PGDATA": params.pgdata})
        # The server this agent started: reaped here when it exits.
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        # The last start's crash recovery: (redo seconds or None, seconds until ready).
        self.last_recovery: tuple[float | None, float] | None = None
        # Where the server log stood when this agent last started the server.
        self._log_start = 0

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe."""
        try:
            if action is Action.START:
                async with self._lock:
                    return await self._start()
            if action is Action.STOP:
                async with self._lock:
                    return await self._stop()
            return await self._monitor()
        except OSError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: {err}")
        except KeyError as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: no user {err}")

    def _step(self, message: str) -> None:
        self._report(self.name, message)

    # ---- start

    async def _start(self) -> ActionResult:
        p = self.params
        running = find_postmaster(p.pgdata)
        if running is not None:
            answer = await self._query()
            if answer is None:
                return ActionResult(Outcome.OK, f"already running (pid {running.pid})")
            return ActionResult(
                Outcome.FAILED, f"pid {running.pid} runs for {p.pgdata} but {answer}"
            )
        return await self._launch([])

    async def _launch(self, extra: list[str], *, replica: bool = False) -> ActionResult:
        """Start the server with `extra` arguments and wait until it answers."""
        p = self.params
        self._prepare_socket_dir()
        argv = [
            os.path.join(p.bindir, "postgres"), "-D", p.pgdata, "-p", str(p.port),
            "-k", p.socket_dir, "-c", f"listen_addresses={p.listen_addresses}",
        ]  # fmt: skip
        for key, value in p.settings.items():
            argv += ["-c", f"{key}={value}"]
        argv += extra
        began = time.monotonic()
        with open(p.server_log, "ab") as out:
            log_start = out.seek(0, os.SEEK_END)
            if log_start == 0:
                # In the data directory, every file belongs to the server's user.
                entry = pwd.getpwnam(p.user)
                os.fchown(out.fileno(), entry.pw_uid, entry.pw_gid)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                cwd=p.pgdata,
                start_new_session=True,
                **user_options(p.user),
            )
        self._proc = proc
        self._log_start = log_start
        try:
            failure = await self._await_ready(proc, log_start)
        except asyncio.CancelledError:
            await reap_killed(proc)
            raise
        if failure is not None:
            return failure
        ready = time.monotonic() - began
        crashed, redo = recovery_in(self._log_since(log_start, limit=1 << 20))
        # A replica made from a base backup or a rewind always says "interrupted": its
        # recovery is streaming's start, not a crash's.
        if not crashed or replica:
            self.last_recovery = None
            return ActionResult(Outcome.OK, f"started (pid {proc.pid}), ready after {ready:.2f}s")
        self.last_recovery = (redo, ready)
        redo_text = "redo time unknown" if redo is None else f"redo {redo:.2f}s"
        text = f"crash recovery: {redo_text}, ready after {ready:.2f}s"
        self._step(f"start: {text}")
        return ActionResult(Outcome.OK, f"started (pid {proc.pid}) after {text}")

    def _prepare_socket_dir(self) -> None:
        path = self.params.socket_dir
        if not os.path.isdir(path):
            entry = pwd.getpwnam(self.params.user)
            os.makedirs(path, mode=0o2775, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    async def _await_ready(
        self, proc: asyncio.subprocess.Process, log_start: int
    ) -> ActionResult | None:
        """None once the server accepts the monitor query; a FAILED result if it exits."""
        last: str | None = None
        while True:
            if proc.returncode is not None:
                tail = self._log_since(log_start)
                return ActionResult(
                    Outcome.FAILED, f"the server exited while starting ({proc.returncode}): {tail}"
                )
            found = find_postmaster(self.params.pgdata)
            # "standby": a hot standby that accepts connections.
            if found is not None and found.status in ("ready", "standby"):
                last = await self._query()
                if last is None:
                    return None
            # Waiting on the process is the cheap way to see it exit early.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READY_POLL):
                    await proc.wait()

    def _log_since(self, start: int, limit: int = 600) -> str:
        try:
            with open(self.params.server_log, "rb") as log:
                return read_tail(log, start, limit)
        except OSError as err:
            return f"(cannot read {self.params.server_log}: {err})"

    # ---- stop

    async def _stop(self) -> ActionResult:
        p = self.params
        if find_postmaster(p.pgdata) is None:
            await self._reap()
            return ActionResult(Outcome.OK, "not running")
        steps: list[str] = []
        pg_ctl = os.path.join(p.bindir, "pg_ctl")
        for mode in p.stop_modes:
            limit = p.stop_limits[mode]
            began = time.monotonic()
            done = await run_command(
                [pg_ctl, "stop", "-D", p.pgdata, "-m", mode, "-t", str(math.ceil(limit)), "-w"],
                self._env,
                cwd=p.pgdata,
                user=p.user,
            )
            took = time.monotonic() - began
            gone = find_postmaster(p.pgdata) is None
            if gone:
                text = f"stop -m {mode}: stopped in {took:.2f}s"
            else:
                text = f"stop -m {mode}: still running after {took:.2f}s ({done.describe()})"
            self._step(text)
            steps.append(text)
            if gone:
                await self._reap()
                return ActionResult(Outcome.OK, "; ".join(steps))
        return ActionResult(Outcome.FAILED, "; ".join(steps))

    async def _reap(self) -> None:
        proc = self._proc
        if proc is not None:
            # Its pid file is gone; what is left of its group is no server of ours.
            await reap_killed(proc)
            self._proc = None

    # ---- monitor and probe

    async def _monitor(self) -> ActionResult:
        running = find_postmaster(self.params.pgdata)
        if running is None:
            if self._proc is not None and self._proc.returncode is not None:
                kill_group(self._proc.pid)  # backends left by a postmaster that died
                return ActionResult(
                    Outcome.STOPPED, f"not running (the server exited: {self._proc.returncode})"
                )
            return ActionResult(Outcome.STOPPED, "not running")
        answer = await self._query()
        if answer is None:
            return ActionResult(Outcome.OK, f"running (pid {running.pid}), answers")
        return ActionResult(Outcome.FAILED, f"pid {running.pid} runs but {answer}")

    async def _query(self) -> str | None:
        """Run the monitor query: None when it returned a row, else what went wrong."""
        # psycopg (and its libpq) loads only on agents that have a postgres resource.
        import psycopg  # noqa: PLC0415

        p = self.params
        began = time.monotonic()
        try:
            conn = await connect_local(p)
        except ConnectError as err:
            return str(err)
        try:
            async with asyncio.timeout(p.query_timeout):
                cursor = await conn.execute(p.monitor_query)
                row = await cursor.fetchone()
        except TimeoutError:
            took = time.monotonic() - began
            return f"the monitor query did not answer within {p.query_timeout:g}s ({took:.1f}s)"
        except psycopg.Error as err:
            return f"the monitor query failed: {first_line(err)}"
        finally:
            with contextlib.suppress(Exception):
                # A connection to a frozen server: close without waiting on it.
                conn.pgconn.finish()
        if row is None:
            return "the monitor query returned no row"
        return None


class ConnectError(Exception):
    """No connection to this node's server; the message says why."""


async def connect_local(p: PostgresParams) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection to this node's server over its socket, within connect_timeout."""
    # psycopg (and its libpq) loads only on agents that have a postgres resource.
    import psycopg  # noqa: PLC0415

    try:
        async with asyncio.timeout(p.connect_timeout):
            return await psycopg.AsyncConnection.connect(
                host=p.socket_dir,
                port=p.port,
                dbname=p.database,
                user=p.dbuser,
                connect_timeout=max(2, math.ceil(p.connect_timeout)),
                autocommit=True,
            )
    except TimeoutError:
        raise ConnectError(f"no connection within {p.connect_timeout:g}s") from None
    except psycopg.Error as err:
        raise ConnectError(f"cannot connect: {first_line(err)}") from None


def first_line(err: BaseException) -> str:
    """An error's first line (its type's name when it has no text)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def build(resource: Resource, node: str, report: StepReport) -> PostgresResource:
    """The adapter of postgres `resource` on `node`."""
    params = parse_params(resource, node)
    if params.replication is not None:
        # The replica's mechanics load only where a replicated resource is configured.
        from hotstandby.agent.resources.pg_replica import ReplicatedPostgres  # noqa: PLC0415

        return ReplicatedPostgres(resource.name, params, report)
    return PostgresResource(resource.name, params, report)
