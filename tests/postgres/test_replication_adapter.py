"""The postgres adapter in replicated mode against two real PostgreSQL 15 servers.

alpha and beta each have their own data directory, port and socket directory on loopback
(replication_address 127.0.0.1 for both). The tests build a replica by base backup, make
commits wait for it and stop waiting, promote it, rewind a former primary that had commits
the new primary lacks (kept in a copy first, shown by starting a server on the copy), hand
over cleanly without a rewind, and fall back to a base backup when a rewind cannot run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from hotstandby.agent.ports import ReplicatedAdapter
from hotstandby.agent.resources.pg_replica import ReplicatedPostgres
from hotstandby.agent.resources.postgres import PostgresResource, find_postmaster, parse_params
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map
from hotstandby.core.messages import Action, Outcome

from .pg_lab import BINDIR, free_port
from .pg_repl_lab import (
    SETTINGS,
    Pair,
    base_backups_under,
    connect,
    count,
    make_pair,
    remove_pair,
    wait_for,
    walreceiver,
)

pytestmark = pytest.mark.lab


async def primary_with_replica(pair: Pair) -> tuple[ReplicatedPostgres, ReplicatedPostgres]:
    """alpha started as the primary with table t, beta a streaming replica made by follow."""
    alpha, beta = pair.adapter("alpha"), pair.adapter("beta")
    started = await alpha.run(Action.START)
    assert started.outcome is Outcome.OK, started
    assert "slots: made hotstandby_beta" in started.detail, started
    with connect(pair.port("alpha")) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 100)")
    began = time.monotonic()
    done = await beta.follow("alpha")
    took = time.monotonic() - began
    assert done.ok and done.streaming, done
    assert "no cluster in" in done.detail and "base backup:" in done.detail, done
    assert done.diverged == ""
    print(f"base backup and replica start: {took:.2f}s ({done.detail})")
    return alpha, beta


def test_a_new_node_follows_by_base_backup_and_commits_wait_for_it(pair: Pair) -> None:
    async def scenario() -> None:
        alpha, beta = pair.adapter("alpha"), pair.adapter("beta")
        assert (await beta.run(Action.PROBE)).outcome is Outcome.STOPPED
        start = await beta.run(Action.START)
        assert start.outcome is Outcome.FAILED and "no cluster in" in start.detail, start
        alpha, beta = await primary_with_replica(pair)
        assert Path(pair.pgdata("beta"), "standby.signal").exists()
        with connect(pair.port("alpha")) as conn:
            conn.execute("INSERT INTO t VALUES (101)")
        wait_for(lambda: count(pair.port("beta")) == 101, "row 101 on beta")
        # All is well: follow is the cheap path, one query.
        again = await beta.follow("alpha")
        assert again.ok and again.streaming and again.detail == "streaming from alpha", again

        # Roles as PROBE, MONITOR and health see them.
        probe = await beta.run(Action.PROBE)
        assert probe.outcome is Outcome.STOPPED, probe
        assert probe.detail == "a replica runs (streaming from 127.0.0.1)"
        monitor = await beta.run(Action.MONITOR)
        assert monitor.outcome is Outcome.FAILED and "runs as a replica" in monitor.detail
        assert (await alpha.run(Action.PROBE)).outcome is Outcome.OK
        health = await beta.health()
        assert health["replica"] and health["streaming"] and not health["primary"], health
        assert isinstance(health["lag_bytes"], int)
        assert (await alpha.health())["primary"] is True

        required = await alpha.require(("beta",))
        assert required.ok and required.lsn > 0, required
        monitored = await alpha.run(Action.MONITOR)
        assert monitored.outcome is Outcome.OK, monitored
        report = alpha.last_report
        assert report is not None and report.required == ("beta",), report
        (replica,) = report.replicas
        assert replica.node == "beta" and replica.sync and replica.state == "streaming"
        end = time.monotonic() + 10
        while await flush_reported(alpha) < required.lsn:
            assert time.monotonic() < end, "beta's flush_lsn never reached require's lsn"
            await asyncio.sleep(0.02)
        assert report.lsn >= required.lsn

        # A commit waits while beta's walreceiver is frozen, and returns once it thaws.
        receiver = walreceiver(pair.pgdata("beta"))
        returned = threading.Event()

        def commit(value: int) -> None:
            with connect(pair.port("alpha")) as conn:
                conn.execute("INSERT INTO t VALUES (%s)", (value,))
            returned.set()

        os.kill(receiver, signal.SIGSTOP)
        try:
            writer = threading.Thread(target=commit, args=(102,))
            writer.start()
            assert not returned.wait(1.5), "a commit returned while its replica was frozen"
        finally:
            os.kill(receiver, signal.SIGCONT)
        assert returned.wait(10), "the commit did not return once the replica thawed"
        writer.join()

        # require(()) : commits go on without beta.
        unrequired = await alpha.require(())
        assert unrequired.ok and unrequired.lsn >= required.lsn, unrequired
        returned.clear()
        os.kill(receiver, signal.SIGSTOP)
        try:
            writer = threading.Thread(target=commit, args=(103,))
            writer.start()
            assert returned.wait(5), "a commit waited for a replica no longer required"
        finally:
            os.kill(receiver, signal.SIGCONT)
        writer.join()
        assert (await alpha.run(Action.MONITOR)).outcome is Outcome.OK
        assert alpha.last_report is not None and alpha.last_report.required == ()
        wait_for(lambda: count(pair.port("beta")) == 103, "row 103 on beta")
        assert (await beta.require(("alpha",))).ok is False

    asyncio.run(scenario())


async def flush_reported(alpha: ReplicatedPostgres) -> int:
    """beta's flush_lsn as alpha's MONITOR reports it (0 when not listed)."""
    assert (await alpha.run(Action.MONITOR)).outcome is Outcome.OK
    assert alpha.last_report is not None
    return max((r.flush_lsn for r in alpha.last_report.replicas), default=0)


def test_a_former_primary_is_rewound_and_what_diverged_is_kept(pair: Pair) -> None:
    async def scenario() -> None:
        alpha, beta = await primary_with_replica(pair)
        wait_for(lambda: count(pair.port("beta")) == 100, "100 rows on beta")
        # Rows only alpha gets: beta's server stopped, commits not waiting for it. (A frozen
        # walreceiver would still find them in its socket's buffer once thawed.)
        assert (await alpha.require(())).ok
        assert (await beta.run(Action.STOP)).outcome is Outcome.OK
        with connect(pair.port("alpha")) as conn:
            for value in range(1001, 1011):
                conn.execute("INSERT INTO t VALUES (%s)", (value,))
        # Power cut: the whole server at once.
        running = find_postmaster(pair.pgdata("alpha"))
        assert running is not None
        os.killpg(running.pid, signal.SIGKILL)
        wait_for(lambda: find_postmaster(pair.pgdata("alpha")) is None, "alpha gone")

        pair.steps.clear()
        promoted = await beta.run(Action.START)
        assert promoted.outcome is Outcome.OK, promoted
        assert "as a replica" in promoted.detail, promoted
        assert "promote: " in promoted.detail and "timeline 2" in promoted.detail, promoted
        assert "slots: made hotstandby_alpha" in promoted.detail
        assert count(pair.port("beta")) == 100
        with connect(pair.port("beta")) as conn:
            conn.execute("INSERT INTO t VALUES (2000)")
        assert (await beta.run(Action.PROBE)).outcome is Outcome.OK

        began = time.monotonic()
        done = await alpha.follow("beta")
        took = time.monotonic() - began
        assert done.ok and done.streaming, done
        assert isinstance(alpha, ReplicatedAdapter)  # what the agent drives
        assert "diverged at WAL location" in done.detail and "on timeline 1" in done.detail
        assert done.diverged and Path(done.diverged).is_dir(), done
        assert Path(done.diverged).name.startswith("data.diverged-")
        print(f"rewind follow: {took:.2f}s; steps: {[m for _, m in pair.steps]}")
        wait_for(lambda: count(pair.port("alpha")) == 101, "beta's rows on alpha")
        assert (
            count(pair.port("alpha"), "SELECT count(*) FROM t WHERE id > 1000 AND id < 2000") == 0
        )
        assert (await alpha.follow("beta")).detail == "streaming from beta"

        # The rows the rewind threw away are in the kept copy: a server started on it has them.
        copy = kept_copy_server(done.diverged, pair.base / "alpha" / "run")
        assert (await copy.run(Action.START)).outcome is Outcome.OK
        try:
            with connect(copy.params.port) as conn:
                row = conn.execute("SELECT count(*) FROM t WHERE id > 1000").fetchone()
            assert row == (10,)
        finally:
            assert (await copy.run(Action.STOP)).outcome is Outcome.OK

    asyncio.run(scenario())


def kept_copy_server(pgdata: str, socket_dir: Path) -> PostgresResource:
    """A shared-disk mode adapter for a throwaway server on a kept copy."""
    raw = {
        "pgdata": pgdata, "bindir": BINDIR, "port": free_port(),
        "listen_addresses": "127.0.0.1", "socket_dir": str(socket_dir), "settings": SETTINGS,
        "log": f"{pgdata}.log",
    }  # fmt: skip
    resource = Resource("copy", ResourceKind.POSTGRES, frozen_map(raw), stop_timeout=30.0)
    return PostgresResource("copy", parse_params(resource, "alpha"))


def test_a_clean_switchover_needs_no_rewind(pair: Pair) -> None:
    async def scenario() -> None:
        alpha, beta = await primary_with_replica(pair)
        assert (await alpha.require(("beta",))).ok
        with connect(pair.port("alpha")) as conn:
            conn.execute("INSERT INTO t SELECT generate_series(101, 5000)")
        stopped = await alpha.run(Action.STOP)
        assert stopped.outcome is Outcome.OK and "stop -m fast: stopped" in stopped.detail
        began = time.monotonic()
        promoted = await beta.run(Action.START)
        print(f"switchover promote: {time.monotonic() - began:.2f}s ({promoted.detail})")
        assert promoted.outcome is Outcome.OK, promoted
        assert count(pair.port("beta")) == 5000
        done = await alpha.follow("beta")
        assert done.ok and done.streaming and done.diverged == "", done
        assert "no rewind required" in done.detail, done
        assert not any(".diverged-" in p.name for p in (pair.base / "alpha").iterdir())
        with connect(pair.port("beta")) as conn:
            conn.execute("INSERT INTO t VALUES (5001)")
        wait_for(lambda: count(pair.port("alpha")) == 5001, "row 5001 on alpha")

    asyncio.run(scenario())


def test_a_replica_that_cannot_be_rewound_gets_a_fresh_copy(pair: Pair) -> None:
    async def scenario() -> None:
        _, beta = await primary_with_replica(pair)
        assert (await beta.run(Action.STOP)).outcome is Outcome.OK
        # pg_control unreadable: neither pg_controldata nor pg_rewind can use this directory.
        control = Path(pair.pgdata("beta"), "global", "pg_control")
        control.write_bytes(b"\0" * 16)
        done = await beta.follow("alpha")
        assert done.ok and done.streaming, done
        assert "base backup:" in done.detail, done
        assert done.diverged and Path(done.diverged, "PG_VERSION").exists(), done
        assert Path(done.diverged, "global", "pg_control").read_bytes() == b"\0" * 16
        assert count(pair.port("beta")) == 100

    asyncio.run(scenario())


def test_follow_cut_short_kills_the_base_backup(pair: Pair) -> None:
    async def scenario() -> None:
        alpha = pair.adapter("alpha")
        beta = pair.adapter("beta")
        assert (await alpha.run(Action.START)).outcome is Outcome.OK
        with connect(pair.port("alpha")) as conn:
            conn.execute("CREATE TABLE big AS SELECT generate_series(1, 300000) AS id")
        task = asyncio.create_task(beta.follow("alpha"))
        new = Path(pair.base / "beta" / ".data.hotstandby-new")
        end = time.monotonic() + 10
        while not (new.exists() and any(new.iterdir())) and time.monotonic() < end:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not new.exists()
        assert not Path(pair.pgdata("beta")).exists()
        assert base_backups_under(pair.base) == []

    asyncio.run(scenario())


def test_a_start_cuts_a_follow_short(pair: Pair) -> None:
    async def scenario() -> None:
        alpha, beta = pair.adapter("alpha"), pair.adapter("beta")
        assert (await alpha.run(Action.START)).outcome is Outcome.OK
        with connect(pair.port("alpha")) as conn:
            conn.execute("CREATE TABLE big AS SELECT generate_series(1, 300000) AS id")
        following = asyncio.create_task(beta.follow("alpha"))
        new = Path(pair.base / "beta" / ".data.hotstandby-new")
        end = time.monotonic() + 10
        while not (new.exists() and any(new.iterdir())) and time.monotonic() < end:
            await asyncio.sleep(0.005)
        began = time.monotonic()
        start = await beta.run(Action.START)
        took = time.monotonic() - began
        assert start.outcome is Outcome.FAILED and "no cluster in" in start.detail, start
        assert took < 5.0
        done = await following
        assert not done.ok and "cut short" in done.detail, done
        assert not new.exists()

    asyncio.run(scenario())


def test_a_replica_whose_wal_is_gone_gets_a_fresh_copy(pair: Pair) -> None:
    async def scenario() -> None:
        # No slot and no WAL kept beyond need: the primary may drop what beta still needs.
        lean = {**SETTINGS, "wal_keep_size": "0", "min_wal_size": "32MB"}
        alpha = pair.adapter("alpha", replication_slots=False, settings=lean)
        beta = pair.adapter("beta", replication_slots=False, settings=lean)
        assert (await alpha.run(Action.START)).outcome is Outcome.OK
        first = await beta.follow("alpha")
        assert first.ok and first.streaming, first
        assert (await beta.run(Action.STOP)).outcome is Outcome.OK
        with connect(pair.port("alpha")) as conn:
            conn.execute("CREATE TABLE t (id int)")
            for value in range(4):
                conn.execute("INSERT INTO t VALUES (%s)", (value,))
                conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
        # Restarted as it was, the replica asks for WAL the primary no longer has.
        started = await beta.follow("alpha")
        assert started.ok and "no rewind required" in started.detail, started
        end = time.monotonic() + 15
        while True:
            done = await beta.follow("alpha")
            if "base backup:" in done.detail or time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        assert done.ok and done.streaming and done.diverged == "", done
        assert "no longer has the WAL it needs" in done.detail, done
        kept = [p for p in (pair.base / "beta").iterdir() if ".replaced-" in p.name]
        assert len(kept) == 1 and (kept[0] / "PG_VERSION").exists()
        assert count(pair.port("beta")) == 4

    asyncio.run(scenario())


def test_a_primary_found_running_is_stopped_then_rewound(pair: Pair) -> None:
    async def scenario() -> None:
        alpha, beta = await primary_with_replica(pair)
        wait_for(lambda: count(pair.port("beta")) == 100, "100 rows on beta")
        # Two primaries after a cut healed: beta promoted while alpha still ran and took one
        # more commit, which beta never got.
        assert (await beta.run(Action.START)).outcome is Outcome.OK
        assert (await alpha.require(())).ok
        with connect(pair.port("alpha")) as conn:
            conn.execute("INSERT INTO t VALUES (7777)")
        pair.steps.clear()
        done = await alpha.follow("beta")
        assert done.ok and done.streaming and done.diverged, done
        messages = [m for _, m in pair.steps]
        assert messages[0] == "follow: the primary runs here: stopping it", messages
        assert any(m.startswith("stop -m fast: stopped") for m in messages), messages
        assert not any("single-user" in m for m in messages), messages  # a clean stop
        wait_for(lambda: count(pair.port("alpha")) == 100, "beta's rows on alpha")
        assert (await alpha.run(Action.PROBE)).outcome is Outcome.STOPPED
        # Told that it is the primary itself, a node leaves its running primary alone.
        same = await beta.follow("beta")
        assert same.ok and same.detail == "this node's server is a primary", same
        unknown = await alpha.follow(None)
        assert not unknown.ok and unknown.streaming, unknown

    asyncio.run(scenario())


def test_a_replica_of_the_old_primary_follows_the_new_one(template: Path) -> None:
    trio = make_pair(template, ("alpha", "beta", "gamma"))
    try:

        async def scenario() -> None:
            alpha, beta, gamma = (trio.adapter(n) for n in trio.nodes)
            assert (await alpha.run(Action.START)).outcome is Outcome.OK
            with connect(trio.port("alpha")) as conn:
                conn.execute("CREATE TABLE t (id int)")
            for node in (beta, gamma):
                done = await node.follow("alpha")
                assert done.ok and done.streaming, done
            stopped = await alpha.run(Action.STOP)
            assert stopped.outcome is Outcome.OK
            promoted = await beta.run(Action.START)
            assert promoted.outcome is Outcome.OK, promoted
            assert "slots: made hotstandby_alpha, hotstandby_gamma" in promoted.detail, promoted
            with connect(trio.port("beta")) as conn:
                conn.execute("INSERT INTO t VALUES (1)")
            trio.steps.clear()
            moved = await gamma.follow("beta")
            assert moved.ok and moved.streaming and moved.diverged == "", moved
            messages = [m for _, m in trio.steps]
            assert messages[0].startswith("follow: a replica of 127.0.0.1 runs here"), messages
            assert not any("pg_rewind" in m or "base backup" in m for m in messages), messages
            wait_for(lambda: count(trio.port("gamma")) == 1, "beta's row on gamma")
            assert (await gamma.follow("beta")).detail == "streaming from beta"

        asyncio.run(scenario())
    finally:
        remove_pair(trio)
