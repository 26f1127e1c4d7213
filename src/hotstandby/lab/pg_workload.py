"""A write workload for PostgreSQL through the floating IP, and what it proves after a fault.

Run in the lab's client namespace, as an application would be:

    python -m hotstandby.lab.pg_workload prepare DSN ACCOUNTS [FILLER_ROWS]
    python -m hotstandby.lab.pg_workload run DSN OUT STOP_FILE ACCOUNTS
    python -m hotstandby.lab.pg_workload verify DSN ACCOUNTS OUT

`run` commits one transaction after another, each inserting a new unique id into `writes`
and moving an amount between two of the `accounts` (their total never changes). It writes
one JSON line to OUT per outcome, flushed at once: {"ok": ID, "t": T} only once COMMIT was
acknowledged, {"failed": ID, "t": T, "error": TEXT} when the transaction's outcome is unknown
or it failed; T is CLOCK_MONOTONIC, the same in every namespace, so it compares with the
test's clock. It connects with an ordinary connection string (no timeouts, no keepalives):
a connection to a dead primary is freed only by the new holder of the address answering
the client's retransmissions with a reset. It stops when STOP_FILE exists.

`verify` reads the new primary and prints a JSON report (see `Verdict`).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

#: Each account's balance at the start.
OPENING_BALANCE = 1000
#: The pause between a failure and the next attempt: a busy loop would only burn the CPU.
RETRY_PAUSE = 0.02


def prepare(dsn: str, accounts: int, filler: int = 0) -> None:
    """Create the workload's tables (empty writes, every account at the opening balance).

    `filler` rows of about 100 bytes go into a table of their own: WAL that a crash
    recovery has to replay, as a busy server's would.
    """
    import psycopg  # noqa: PLC0415

    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS writes, accounts")
        conn.execute("CREATE TABLE writes (id bigint PRIMARY KEY, at double precision)")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
        conn.execute(
            "INSERT INTO accounts SELECT g, %s FROM generate_series(1, %s) g",
            (OPENING_BALANCE, accounts),
        )
        conn.execute("DROP TABLE IF EXISTS filler")
        conn.execute("CREATE TABLE filler (id int, pad text)")
        conn.execute(
            "INSERT INTO filler SELECT g, repeat('x', 90) FROM generate_series(1, %s) g",
            (filler,),
        )


def run(dsn: str, out: TextIO, stop_file: str, accounts: int) -> None:
    """Commit writes until stop_file exists, recording each outcome the client saw."""
    import psycopg  # noqa: PLC0415

    rng = random.Random(os.getpid())
    next_id = 1
    conn: psycopg.Connection[Any] | None = None
    while not os.path.exists(stop_file):
        wid = next_id
        next_id += 1  # never reused: a failed id that is found committed is counted
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(dsn)
            a, b = rng.sample(range(1, accounts + 1), 2)
            amount = rng.randint(1, 50)
            with conn.transaction():
                conn.execute(
                    "UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, a)
                )
                conn.execute(
                    "UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, b)
                )
                conn.execute("INSERT INTO writes VALUES (%s, %s)", (wid, time.monotonic()))
            record: dict[str, Any] = {"ok": wid, "t": time.monotonic()}
        except psycopg.Error as err:
            record = {"failed": wid, "t": time.monotonic(), "error": str(err).strip()[:200]}
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(RETRY_PAUSE)
        out.write(json.dumps(record) + "\n")
        out.flush()
    if conn is not None:
        conn.close()


@dataclass(frozen=True)
class Verdict:
    """What the new primary holds against what the client saw."""

    acknowledged: int  # commits the client saw acknowledged
    lost: int  # of those, missing on the new primary (must be 0)
    reported_failed: int  # transactions the client saw fail
    failed_but_committed: int  # of those, committed after all (the outcome was unknown)
    total: int  # the accounts' total now
    expected_total: int  # and what it must be
    rows: int  # ids on the new primary


def verify(dsn: str, accounts: int, records: Iterable[dict[str, Any]]) -> Verdict:
    """Compare the new primary's ids and total with the client's records."""
    import psycopg  # noqa: PLC0415

    acked = set()
    failed = set()
    for r in records:
        if "ok" in r:
            acked.add(int(r["ok"]))
        else:
            failed.add(int(r["failed"]))
    with psycopg.connect(dsn) as conn:
        present = {int(row[0]) for row in conn.execute("SELECT id FROM writes").fetchall()}
        row = conn.execute("SELECT coalesce(sum(balance), 0) FROM accounts").fetchone()
    total = int(row[0]) if row is not None else 0
    return Verdict(
        acknowledged=len(acked),
        lost=len(acked - present),
        reported_failed=len(failed),
        failed_but_committed=len(failed & present),
        total=total,
        expected_total=accounts * OPENING_BALANCE,
        rows=len(present),
    )


@dataclass(frozen=True)
class Outage:
    """How the client lived through a fault at time `fault`."""

    # The longest the client went without an acknowledged commit, from the last one before
    # the fault on (commits acknowledged in the instant between the fault's time and the
    # node's freeze do not shorten it).
    outage: float
    freed: float | None  # from the fault to the first failure the client saw (the reset)
    first_error: str  # that failure's text
    acked_before: int
    acked_after: int


def outage(records: list[dict[str, Any]], fault: float) -> Outage:
    """The client's write outage around `fault` (CLOCK_MONOTONIC seconds)."""
    acks = sorted(float(r["t"]) for r in records if "ok" in r)
    before = [t for t in acks if t <= fault]
    after = [t for t in acks if t > fault]
    failures = [r for r in records if "failed" in r and r["t"] > fault]
    if not before or not after:
        raise ValueError(f"no acknowledged commit {'before' if not before else 'after'} the fault")
    window = [before[-1], *after]
    first = failures[0] if failures else None
    return Outage(
        outage=max(b - a for a, b in itertools.pairwise(window)),
        freed=None if first is None else float(first["t"]) - fault,
        first_error="" if first is None else str(first["error"]),
        acked_before=len(before),
        acked_after=len(after),
    )


def read_records(path: str) -> list[dict[str, Any]]:
    """The records a run wrote (a last line cut short by a kill is left out)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def main(argv: list[str]) -> int:
    """The command line (see the module docstring)."""
    command, dsn = argv[0], argv[1]
    if command == "prepare":
        prepare(dsn, int(argv[2]), int(argv[3]) if len(argv) > 3 else 0)
    elif command == "run":
        with open(argv[2], "a") as out:
            run(dsn, out, argv[3], int(argv[4]))
    elif command == "verify":
        print(json.dumps(asdict(verify(dsn, int(argv[2]), read_records(argv[3])))))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
