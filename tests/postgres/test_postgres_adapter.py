"""The postgres adapter against a real PostgreSQL 15 server, run as the postgres user.

Each test makes its own cluster (initdb into a temp dir), starts the server through the
adapter on a free loopback port, and stops it (or kills its process group) at the end.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hotstandby.agent.resources.postgres import (
    PostgresResource,
    find_postmaster,
    parse_params,
)
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map
from hotstandby.core.messages import Action, Outcome

from .pg_lab import BINDIR, free_port, make_cluster, remove, skip_reason

pytestmark = pytest.mark.lab

Steps = list[tuple[str, str]]


@pytest.fixture
def base() -> Iterator[Path]:
    """A fresh cluster; whatever server is left of it is killed, then it is removed."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    made = make_cluster()
    try:
        yield made
    finally:
        found = find_postmaster(str(made / "data"))
        if found is not None:
            os.kill(found.pid, signal.SIGCONT)
            os.killpg(found.pid, signal.SIGKILL)
        remove(made)


def adapter(base: Path, steps: Steps, **params: Any) -> PostgresResource:
    """The adapter for the cluster in base, with these params over the test's defaults."""
    raw = {
        "pgdata": str(base / "data"),
        "bindir": BINDIR,
        "port": free_port(),
        "listen_addresses": "127.0.0.1",
        "socket_dir": str(base / "run"),
        "connect_timeout": "2s",
        "query_timeout": "1s",
        **params,
    }
    resource = Resource(
        "db", ResourceKind.POSTGRES, frozen_map(raw), stop_timeout=30.0, monitor_timeout=5.0
    )
    return PostgresResource(
        "db", parse_params(resource, "alpha"), lambda n, m: steps.append((n, m))
    )


def connect(pg: PostgresResource) -> psycopg.Connection[Any]:
    """A client connection over TCP on loopback, as an application's."""
    return psycopg.connect(
        host="127.0.0.1", port=pg.params.port, dbname="postgres", user="postgres",
        connect_timeout=5,
    )  # fmt: skip


def test_start_monitor_probe_stop(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps)

    async def scenario() -> None:
        assert (await pg.run(Action.PROBE)).outcome is Outcome.STOPPED
        assert (await pg.run(Action.MONITOR)).outcome is Outcome.STOPPED
        started = await pg.run(Action.START)
        assert started.outcome is Outcome.OK and "started (pid" in started.detail, started
        assert "crash recovery" not in started.detail
        assert Path(pg.params.server_log).stat().st_uid == pwd.getpwnam("postgres").pw_uid
        running = find_postmaster(pg.params.pgdata)
        assert running is not None and running.status == "ready"
        with connect(pg) as conn:
            assert conn.execute("SELECT current_setting('port')").fetchone() == (
                str(pg.params.port),
            )
        assert (await pg.run(Action.MONITOR)).outcome is Outcome.OK
        assert (await pg.run(Action.PROBE)).outcome is Outcome.OK
        again = await pg.run(Action.START)
        assert again.outcome is Outcome.OK and "already running" in again.detail
        stopped = await pg.run(Action.STOP)
        assert stopped.outcome is Outcome.OK and "stop -m smart: stopped" in stopped.detail
        assert steps == [("db", stopped.detail)]
        assert find_postmaster(pg.params.pgdata) is None
        assert not Path(pg.params.pgdata, "postmaster.pid").exists()
        with pytest.raises(ProcessLookupError):
            os.kill(running.pid, 0)
        assert (await pg.run(Action.MONITOR)).outcome is Outcome.STOPPED
        assert (await pg.run(Action.PROBE)).outcome is Outcome.STOPPED
        assert (await pg.run(Action.STOP)).detail == "not running"

    asyncio.run(scenario())


def test_an_open_transaction_outlasts_smart_and_fast_ends_it(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps, smart_timeout="1s")

    async def scenario() -> None:
        assert (await pg.run(Action.START)).outcome is Outcome.OK
        client = connect(pg)
        try:
            client.execute("CREATE TABLE t (id int)")
            client.execute("INSERT INTO t VALUES (1)")  # a transaction left open
            began = time.monotonic()
            stopped = await pg.run(Action.STOP)
            took = time.monotonic() - began
            assert stopped.outcome is Outcome.OK, stopped
            messages = [m for _, m in steps]
            assert messages[0].startswith("stop -m smart: still running after"), messages
            assert messages[1].startswith("stop -m fast: stopped in"), messages
            assert len(messages) == 2
            assert 1.0 <= took < 10.0
            with pytest.raises(psycopg.OperationalError):
                client.execute("SELECT 1")
        finally:
            client.close()
        # The rolled back transaction's table is gone after the next start.
        assert (await pg.run(Action.START)).outcome is Outcome.OK
        with connect(pg) as conn:
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
        assert (await pg.run(Action.STOP)).outcome is Outcome.OK

    asyncio.run(scenario())


def test_a_killed_server_restarts_through_crash_recovery(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps)

    async def scenario() -> None:
        assert (await pg.run(Action.START)).outcome is Outcome.OK
        with connect(pg) as conn:
            conn.execute("CREATE TABLE acked (id int)")
            conn.execute("INSERT INTO acked SELECT generate_series(1, 20000)")
        running = find_postmaster(pg.params.pgdata)
        assert running is not None
        # As a power loss: the whole server at once, no shutdown checkpoint.
        os.killpg(running.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while find_postmaster(pg.params.pgdata) is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # The pid file stays behind, stale: probe and monitor see no server.
        assert Path(pg.params.pgdata, "postmaster.pid").exists()
        assert (await pg.run(Action.PROBE)).outcome is Outcome.STOPPED
        assert (await pg.run(Action.MONITOR)).outcome is Outcome.STOPPED
        steps.clear()
        started = await pg.run(Action.START)
        assert started.outcome is Outcome.OK, started
        assert "after crash recovery: redo " in started.detail, started.detail
        assert pg.last_recovery is not None
        redo, ready = pg.last_recovery
        assert redo is not None and 0 <= redo <= ready
        assert steps == [
            ("db", f"start: crash recovery: redo {redo:.2f}s, ready after {ready:.2f}s")
        ]
        with connect(pg) as conn:
            assert conn.execute("SELECT count(*) FROM acked").fetchone() == (20000,)
        assert (await pg.run(Action.STOP)).outcome is Outcome.OK

    asyncio.run(scenario())


def test_a_frozen_server_fails_the_monitor_within_its_timeout(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps, connect_timeout="2s", query_timeout="1s")

    async def scenario() -> None:
        assert (await pg.run(Action.START)).outcome is Outcome.OK
        running = find_postmaster(pg.params.pgdata)
        assert running is not None
        os.killpg(running.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            result = await pg.run(Action.MONITOR)
            took = time.monotonic() - began
        finally:
            os.killpg(running.pid, signal.SIGCONT)
        assert result.outcome is Outcome.FAILED, result
        assert f"pid {running.pid} runs but" in result.detail
        assert took < 2.0 + 1.0 + 0.5
        assert (await pg.run(Action.MONITOR)).outcome is Outcome.OK
        assert (await pg.run(Action.STOP)).outcome is Outcome.OK

    asyncio.run(scenario())


def test_a_start_cut_short_kills_the_server(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps)

    async def scenario() -> None:
        task = asyncio.create_task(pg.run(Action.START))
        deadline = time.monotonic() + 10
        while find_postmaster(pg.params.pgdata) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        found = find_postmaster(pg.params.pgdata)
        assert found is not None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(ProcessLookupError):
            os.kill(found.pid, 0)

    asyncio.run(scenario())


def test_a_server_that_cannot_start_fails_with_its_log(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps, settings={"shared_buffers": "nonsense"})

    async def scenario() -> None:
        result = await pg.run(Action.START)
        assert result.outcome is Outcome.FAILED
        assert "the server exited while starting" in result.detail
        assert "shared_buffers" in result.detail, result.detail

    asyncio.run(scenario())


def test_an_immediate_stop_leaves_recovery_to_the_next_start(base: Path) -> None:
    steps: Steps = []
    pg = adapter(base, steps, stop_modes=["immediate"])

    async def scenario() -> None:
        assert (await pg.run(Action.START)).outcome is Outcome.OK
        stopped = await pg.run(Action.STOP)
        assert stopped.outcome is Outcome.OK
        assert stopped.detail.startswith("stop -m immediate: stopped in"), stopped
        assert find_postmaster(pg.params.pgdata) is None
        started = await pg.run(Action.START)
        assert started.outcome is Outcome.OK and "crash recovery" in started.detail, started
        assert (await pg.run(Action.STOP)).outcome is Outcome.OK

    asyncio.run(scenario())
