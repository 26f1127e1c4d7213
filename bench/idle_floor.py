"""The floor under an idle agent's CPU: a bare asyncio loop moving the same datagrams.

Two processes on loopback, each sending one 80-byte datagram on each of N sockets every
interval and receiving the other's, with nothing else to do: no authentication, no
decisions. What they cost is what any asyncio heartbeat daemon pays on this machine for the
same traffic; an idle hotstandby agent's figure (`bench/failover.py`) is this floor plus
its own work. Run: python bench/idle_floor.py [--interval 0.1] [--links 3] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time

BASE_PORT = 47100  # loopback only; one port per (process, link)


class _Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1


async def _serve(side: int, interval: float, links: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    counter = _Count()
    ends = []
    for i in range(links):
        transport, _ = await loop.create_datagram_endpoint(
            lambda: counter, local_addr=("127.0.0.1", BASE_PORT + 2 * i + side)
        )
        ends.append((transport, ("127.0.0.1", BASE_PORT + 2 * i + 1 - side)))

    def send() -> None:
        for transport, peer in ends:
            transport.sendto(b"x" * 80, peer)
        loop.call_later(interval, send)

    await asyncio.sleep(1.0)  # both sides up before anything is counted
    before = resource.getrusage(resource.RUSAGE_SELF)
    send()
    await asyncio.sleep(seconds)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{100 * cpu / seconds:.3f} {counter.received}", flush=True)


def run_floor(interval: float, links: int, seconds: float) -> list[tuple[float, int]]:
    """Both sides for `seconds` (after a 1 s start): each one's CPU (% of a core) and count."""
    argv0 = [sys.executable, os.path.abspath(__file__), "--interval", str(interval)]
    argv0 += ["--links", str(links), "--seconds", str(seconds), "--side"]
    sides = [
        subprocess.Popen([*argv0, str(side)], stdout=subprocess.PIPE, text=True) for side in (0, 1)
    ]
    outs = [p.communicate(timeout=seconds + 30)[0].split() for p in sides]
    return [(float(cpu), int(got)) for cpu, got in outs]


def main(argv: list[str] | None = None) -> int:
    """Run both sides and print what each cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--links", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--side", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side is not None:
        asyncio.run(_serve(args.side, args.interval, args.links, args.seconds))
        return 0
    began = time.monotonic()
    outs = run_floor(args.interval, args.links, args.seconds)
    rate = args.links / args.interval
    print(
        f"bare asyncio, {args.links} links, a datagram each way every {args.interval * 1000:g} ms "
        f"({rate:g} sent and {rate:g} received per second per process), "
        f"{time.monotonic() - began:.0f} s run on {socket.gethostname()}:"
    )
    for side, (cpu, got) in zip(("a", "b"), outs, strict=True):
        print(f"  process {side}: {cpu:.2f}% of one core, {got} datagrams received")
    return 0


if __name__ == "__main__":
    sys.exit(main())
