"""A follow against real PostgreSQL 15 servers at its limits: a password from
`replication_passfile` (a wrong one refused), and a primary that does not answer cut off by
`follow_timeout`, nothing of the half-made copy left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from hotstandby.agent.resources.postgres import find_postmaster
from hotstandby.core.messages import Action, Outcome

from .pg_repl_lab import Pair, base_backups_under, connect, count, wait_for

pytestmark = pytest.mark.lab

ROLE = "hs_replicator"
PASSWORD = "s3cret-for-the-test"


def require_passwords(pair: Pair) -> None:
    """alpha asks ROLE for a password over TCP (first lines of pg_hba.conf: they win)."""
    hba = Path(pair.pgdata("alpha"), "pg_hba.conf")
    lines = [
        f"host replication {ROLE} 127.0.0.1/32 scram-sha-256",
        f"host all {ROLE} 127.0.0.1/32 scram-sha-256",
    ]
    hba.write_text("\n".join(lines) + "\n" + hba.read_text())


def write_passfile(pair: Pair, password: str) -> str:
    """A .pgpass for ROLE, owned by the server's user with mode 0600 as libpq wants it."""
    path = pair.base / "beta" / "pgpass"
    path.write_text(f"127.0.0.1:{pair.port('alpha')}:*:{ROLE}:{password}\n")
    owner = Path(pair.pgdata("alpha")).stat()
    os.chown(path, owner.st_uid, owner.st_gid)
    path.chmod(0o600)
    return str(path)


async def start_alpha_with_role(pair: Pair) -> None:
    alpha = pair.adapter("alpha", replication_user=ROLE)
    require_passwords(pair)
    started = await alpha.run(Action.START)
    assert started.outcome is Outcome.OK, started
    with connect(pair.port("alpha")) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN REPLICATION PASSWORD '{PASSWORD}'")
        conn.execute(f"GRANT pg_read_all_settings, pg_read_all_stats TO {ROLE}")
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 10)")


def test_the_passfile_gives_the_replica_its_password(pair: Pair) -> None:
    async def scenario() -> None:
        await start_alpha_with_role(pair)
        passfile = write_passfile(pair, PASSWORD)
        beta = pair.adapter("beta", replication_user=ROLE, replication_passfile=passfile)
        done = await beta.follow("alpha")
        assert done.ok and done.streaming, done
        # The replica's own walreceiver logs in with the same file: rows keep coming.
        with connect(pair.port("alpha")) as conn:
            conn.execute("INSERT INTO t VALUES (11)")
        wait_for(lambda: count(pair.port("beta")) == 11, "row 11 on beta")
        with connect(pair.port("beta")) as conn:
            row = conn.execute("SHOW primary_conninfo").fetchone()
        assert row is not None and f"passfile={passfile}" in row[0], row

    asyncio.run(scenario())


def test_a_wrong_password_is_refused_and_said_so(pair: Pair) -> None:
    async def scenario() -> None:
        await start_alpha_with_role(pair)
        passfile = write_passfile(pair, "not-the-password")
        beta = pair.adapter("beta", replication_user=ROLE, replication_passfile=passfile)
        done = await beta.follow("alpha")
        assert not done.ok, done
        assert "password authentication failed" in done.detail, done
        # Nothing half made is left where the replica's data belongs.
        assert not Path(pair.pgdata("beta")).exists()
        assert not (pair.base / "beta" / ".data.hotstandby-new").exists()

    asyncio.run(scenario())


def test_a_primary_that_does_not_answer_is_given_up_after_follow_timeout(pair: Pair) -> None:
    async def scenario() -> None:
        alpha = pair.adapter("alpha")
        assert (await alpha.run(Action.START)).outcome is Outcome.OK
        server = find_postmaster(pair.pgdata("alpha"))
        assert server is not None
        # Frozen: the kernel still accepts connections, nothing answers on them.
        os.kill(server.pid, signal.SIGSTOP)
        try:
            beta = pair.adapter("beta", follow_timeout="1s")
            began = time.monotonic()
            done = await beta.follow("alpha")
            took = time.monotonic() - began
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert not done.ok and "did not finish within 1s" in done.detail, done
        assert took < 5.0, took
        assert not Path(pair.pgdata("beta")).exists()
        assert not (pair.base / "beta" / ".data.hotstandby-new").exists()
        assert base_backups_under(pair.base) == []

    asyncio.run(scenario())
