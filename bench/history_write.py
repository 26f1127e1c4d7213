"""What recording costs the agent's loop: the event history file and the alarm dispatcher.

    python bench/history_write.py [--records N]

Prints, per record: the time the loop spends in Agent._record with the history file, the
takeover timelines and the alarm dispatcher attached (an alarm record goes to a syslog channel
whose socket nobody reads fast); the writer thread's throughput to the real disk (flushed, not
fsynced); and the loop's cost while the disk is stuck (the history file is a FIFO nobody
reads), which must stay the same.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from types import MappingProxyType

from hotstandby.agent.alarms.config import parse_channel
from hotstandby.agent.history import EVENTS_FILE, EventLog
from hotstandby.agent.loop import Adapters, Agent
from hotstandby.agent.recording import attach
from hotstandby.agent.state_store import StateStore
from hotstandby.config import load

EXAMPLE = Path(__file__).parents[1] / "src/hotstandby/examples/classic-database.toml"


def per_record_us(agent: Agent, n: int, kind: str) -> list[float]:
    """Microseconds per _record call, in batches of 100."""
    out = []
    for batch in range(n // 100):
        began = time.perf_counter()
        for i in range(100):
            agent._record(kind, f"record {batch * 100 + i}", "bench.rule", severity="warning")
        out.append((time.perf_counter() - began) / 100 * 1e6)
    return out


async def loop_cost(directory: Path, n: int) -> tuple[list[float], list[float], list[float]]:
    """Microseconds per record: without recording attached, with it, and for an alarm."""
    cluster = load(EXAMPLE)
    bare = Agent(cluster, "alpha", b"k" * 32, Adapters([], {}), StateStore(directory))
    baseline = per_record_us(bare, n, "bench")
    agent = Agent(cluster, "alpha", b"k" * 32, Adapters([], {}), StateStore(directory))
    sink = directory / "log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(sink))
    spec = parse_channel(0, "syslog", MappingProxyType({"kind": "syslog", "socket": str(sink)}))
    close = attach(agent, directory, [spec])
    plain = per_record_us(agent, n, "bench")
    alarms = per_record_us(agent, n, "alarm.link_late")
    await close()
    receiver.close()
    return baseline, plain, alarms


def throughput(directory: Path, n: int) -> float:
    log = EventLog(directory)
    log.start()
    record = {"at": time.time(), "kind": "role", "message": "x" * 120, "rule": "bench"}
    began = time.perf_counter()
    for _ in range(n):
        log.append(record)
    log.wait_idle(60)
    took = time.perf_counter() - began
    log.close()
    return n / took


def stuck(directory: Path, n: int) -> float:
    os.mkfifo(directory / EVENTS_FILE)
    log = EventLog(directory)
    log.start()
    record = {"at": time.time(), "kind": "role", "message": "x" * 120, "rule": "bench"}
    began = time.perf_counter()
    for _ in range(n):
        log.append(record)
    per = (time.perf_counter() - began) / n * 1e6
    threading.Thread(target=(directory / EVENTS_FILE).read_bytes, daemon=True).start()
    log.wait_idle(60)
    log.close()
    return per


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    n = parser.parse_args().records
    # The agent logs every record too; that cost is the same with or without recording.
    logging.getLogger("hotstandby").setLevel(logging.CRITICAL + 1)
    with tempfile.TemporaryDirectory(prefix="hsb-bench-") as tmp:
        root = Path(tmp)
        for name in ("loop", "disk", "stuck"):
            (root / name).mkdir()
        baseline, plain, alarms = asyncio.run(loop_cost(root / "loop", n))
        rate = throughput(root / "disk", n)
        stuck_us = stuck(root / "stuck", n)
    print(f"records: {n} (the agent's own log line per record is switched off here)")
    print(
        f"loop, per record, nothing attached: median {statistics.median(baseline):.1f} us, "
        f"max batch {max(baseline):.1f} us"
    )
    print(
        f"loop, per record (history + timeline + dispatcher): median "
        f"{statistics.median(plain):.1f} us, max batch {max(plain):.1f} us"
    )
    print(
        f"loop, per alarm record (also queued for a syslog channel): median "
        f"{statistics.median(alarms):.1f} us, max batch {max(alarms):.1f} us"
    )
    print(f"writer thread to disk (flushed, not fsynced): {rate:,.0f} records/s")
    print(f"loop, per record while the disk is stuck: {stuck_us:.2f} us")


if __name__ == "__main__":
    main()
