"""Traffic probes run inside lab namespaces: ICMP echo and counted UDP datagrams.

Run as `python -m hotstandby.lab.probe ...` under `ip netns exec`, so the lab needs no ping
binary and measures with exactly the sockets it describes. Standard library only.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import select
import socket
import struct
import sys
import time

_ICMP_ECHO_REQUEST = 8
_ICMP_ECHO_REPLY = 0
_ICMP6_ECHO_REQUEST = 128
_ICMP6_ECHO_REPLY = 129


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(address: str, timeout: float, interval: float = 0.1) -> float | None:
    """Send echo requests to address until one is answered; the round trip in s, or None."""
    ip = ipaddress.ip_address(address)
    v6 = ip.version == 6
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    ident = os.getpid() & 0xFFFF
    deadline = time.monotonic() + timeout
    sent: dict[int, float] = {}
    seq = 0
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        next_send = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_send:
                seq += 1
                kind = _ICMP6_ECHO_REQUEST if v6 else _ICMP_ECHO_REQUEST
                header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
                payload = b"hotstandby-lab"
                # The kernel fills in the ICMPv6 checksum (it needs the pseudo-header).
                csum = 0 if v6 else _checksum(header + payload)
                packet = struct.pack("!BBHHH", kind, 0, csum, ident, seq) + payload
                try:
                    sock.sendto(packet, (address, 0))
                    sent[seq] = now
                except OSError:
                    pass  # no route or neighbour yet: keep trying until the deadline
                next_send = now + interval
            wait = max(0.0, min(next_send, deadline) - time.monotonic())
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            data, peer = sock.recvfrom(2048)
            if ipaddress.ip_address(peer[0].split("%")[0]) != ip:
                continue
            # Raw IPv4 sockets deliver the IP header too; IPv6 ones do not.
            icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            kind, _, _, r_ident, r_seq = struct.unpack("!BBHHH", icmp[:8])
            reply = _ICMP6_ECHO_REPLY if v6 else _ICMP_ECHO_REPLY
            if kind == reply and r_ident == ident and r_seq in sent:
                return time.monotonic() - sent[r_seq]


def udp_send(address: str, port: int, count: int, interval: float) -> int:
    """Send count numbered datagrams to address:port; return how many the kernel accepted."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    accepted = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            try:
                sock.sendto(struct.pack("!I", i), (address, port))
                accepted += 1
            except OSError:
                pass  # e.g. no neighbour entry because the link is cut: the datagram is lost
            if interval > 0:
                time.sleep(interval)  # pacing, so a burst does not overflow a queue
    return accepted


def udp_receive(bind: str, port: int, drain: float) -> int:
    """Count datagrams until stdin says stop (or closes), then drain briefly; print the count."""
    family = socket.AF_INET6 if ipaddress.ip_address(bind).version == 6 else socket.AF_INET
    seen: set[int] = set()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((bind, port))
        print("ready", flush=True)
        stopping_at: float | None = None
        while True:
            timeout = None if stopping_at is None else max(0.0, stopping_at - time.monotonic())
            # Once told to stop, watch only the socket: stdin at EOF stays readable forever.
            watch = [sock, sys.stdin] if stopping_at is None else [sock]
            ready, _, _ = select.select(watch, [], [], timeout)
            if not ready:
                break
            if sys.stdin in ready and stopping_at is None:
                sys.stdin.readline()
                stopping_at = time.monotonic() + drain
            if sock in ready:
                data = sock.recv(64)
                if len(data) == 4:
                    seen.add(struct.unpack("!I", data)[0])
    print(len(seen), flush=True)
    return len(seen)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of the probe."""
    parser = argparse.ArgumentParser(prog="python -m hotstandby.lab.probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ping")
    p.add_argument("address")
    p.add_argument("--timeout", type=float, default=2.0)
    s = sub.add_parser("udp-send")
    s.add_argument("address")
    s.add_argument("port", type=int)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--interval", type=float, default=0.0)
    r = sub.add_parser("udp-recv")
    r.add_argument("bind")
    r.add_argument("port", type=int)
    r.add_argument("--drain", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.cmd == "ping":
        rtt = ping(args.address, args.timeout)
        if rtt is None:
            return 1
        print(f"{rtt:.6f}")
        return 0
    if args.cmd == "udp-send":
        print(udp_send(args.address, args.port, args.count, args.interval))
        return 0
    udp_receive(args.bind, args.port, args.drain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
