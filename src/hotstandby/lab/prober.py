"""What a client sees: a tiny TCP echo service for the nodes, and a prober for the client.

    python -m hotstandby.lab.prober serve PORT
    python -m hotstandby.lab.prober probe ADDRESS PORT [--interval S] [--timeout S]
    python -m hotstandby.lab.prober check ADDRESS PORT

`check` is a service monitor: exit 0 when the service echoes, 7 when the connection is
refused (not running), 1 otherwise.

The prober connects, sends a byte and waits for its echo, every `interval`, and
prints one line per probe: "ok T" or "fail T", T being CLOCK_MONOTONIC (shared by
every process on the machine, so the test can set it against the fault it caused).
It stops when its standard input closes. `outage` turns those lines into the
longest time without an answer around a moment.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import select
import socket
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass


def serve(port: int) -> None:
    """Echo one byte back to every connection, on every address of this namespace."""
    with socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True) as srv:
        srv.listen(64)
        print("ready", flush=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()


def _echo(conn: socket.socket) -> None:
    with conn:
        conn.settimeout(2.0)
        with contextlib.suppress(OSError):
            data = conn.recv(1)
            if data:
                conn.sendall(data)


def probe_once(address: str, port: int, timeout: float) -> bool:
    """One connect, one byte out, the same byte back, within `timeout`."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            sock.sendall(b"p")
            return sock.recv(1) == b"p"
        except OSError:
            return False


def probe(address: str, port: int, interval: float, timeout: float) -> None:
    """Probe until standard input closes; a line per probe."""
    print("ready", flush=True)
    next_at = time.monotonic()
    while True:
        ok = probe_once(address, port, timeout)
        print(f"{'ok' if ok else 'fail'} {time.monotonic():.6f}", flush=True)
        next_at += interval
        wait = max(0.0, next_at - time.monotonic())
        if select.select([sys.stdin], [], [], wait)[0] and not sys.stdin.readline():
            return


@dataclass(frozen=True)
class Outage:
    """The longest stretch without an answer: from the last answer before to the first after."""

    last_ok: float
    first_ok: float

    @property
    def seconds(self) -> float:
        """How long the client went without an answer."""
        return self.first_ok - self.last_ok


def outage(lines: Iterable[str], after: float) -> Outage | None:
    """The longest gap between answers that ends after `after` (a fault's time).

    None when no answer came after it. A probe may still be answered in the
    moment the fault is being made, so the longest gap counts, not the first.
    """
    oks = sorted(float(stamp) for kind, _, stamp in (x.partition(" ") for x in lines)
                 if kind == "ok")  # fmt: skip
    gaps = [Outage(a, b) for a, b in itertools.pairwise(oks) if b > after]
    return max(gaps, key=lambda g: g.seconds, default=None)


def check(address: str, port: int, timeout: float = 1.0) -> int:
    """A monitor's exit code: 0 echoed, 7 refused (not running), 1 any other failure."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.sendall(b"x")
            return 0 if conn.recv(1) == b"x" else 1
    except ConnectionRefusedError:
        return 7
    except OSError as err:
        print(f"echo check: {err}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Command line of the lab's client and service."""
    parser = argparse.ArgumentParser(prog="hotstandby.lab.prober")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("port", type=int)
    p = sub.add_parser("probe")
    p.add_argument("address")
    p.add_argument("port", type=int)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--timeout", type=float, default=0.05)
    c = sub.add_parser("check")
    c.add_argument("address")
    c.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.cmd == "check":
        return check(args.address, args.port)
    if args.cmd == "serve":
        serve(args.port)
    else:
        probe(args.address, args.port, args.interval, args.timeout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
