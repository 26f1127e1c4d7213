"""Runs inside a lab namespace: hosts an ip resource adapter, or watches the LAN for its frames.

    python ip_helper.py serve NODE RESOURCE_JSON
        Builds the adapter as the agent would, prints {"ready": true}, then reads one action per
        line on stdin (start, stop, monitor, probe, wait_announced) and answers each with one
        JSON line: outcome, detail and the monotonic times the call began and ended.

    python ip_helper.py sniff IFNAME ADDRESS MAX_SECONDS
        Prints "ready" once listening, records every ARP packet and neighbour solicitation or
        advertisement about ADDRESS (received or sent), and on a line on stdin (or after
        MAX_SECONDS) prints them as one JSON list and exits.

Both run as their own process because the adapter must run inside the node's namespace, as
the agent does; CLOCK_MONOTONIC is not per namespace, so their times compare with the test's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import struct
import sys
import time
from ipaddress import IPv4Address, ip_address
from typing import Any

from hotstandby.agent.resources.announce import (
    ARP_FORMAT,
    ARP_SIZE,
    ETH_P_ARP,
    ETH_P_IPV6,
    ICMPV6_NA,
    ICMPV6_NS,
    IPPROTO_ICMPV6,
    IPV6_HEADER_SIZE,
    NA_FLAG_OVERRIDE,
    format_mac,
)
from hotstandby.agent.resources.ip import IpResource, parse_params
from hotstandby.core.messages import Action

ETH_P_ALL = 0x0003


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve(node: str, spec: dict[str, Any]) -> None:
    """Answer actions from stdin until it closes."""
    adapter = IpResource(spec["name"], parse_params(spec["name"], spec["params"], node))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    while line := (await reader.readline()).decode().strip():
        began = time.monotonic()
        if line == "wait_announced":
            await adapter.wait_announced()
            reply: dict[str, Any] = {"outcome": "ok", "detail": ""}
        elif line == "start-released":
            # A takeover start after the previous holder confirmed its release.
            result = await adapter.run(Action.START, released=True)
            reply = {"outcome": result.outcome.value, "detail": result.detail}
        else:
            result = await adapter.run(Action(line))
            reply = {"outcome": result.outcome.value, "detail": result.detail}
        _emit({**reply, "began": began, "ended": time.monotonic()})


def _arp_record(data: bytes, wanted: bytes) -> dict[str, Any] | None:
    if len(data) < ARP_SIZE:
        return None
    _, _, _, _, op, sha, spa, tha, tpa = struct.unpack_from(ARP_FORMAT, data)
    if wanted not in (spa, tpa):
        return None
    return {
        "kind": "arp-request" if op == 1 else "arp-reply",
        "sha": format_mac(sha),
        "spa": str(IPv4Address(spa)),
        "tha": format_mac(tha),
        "tpa": str(IPv4Address(tpa)),
    }


def _nd_record(data: bytes, wanted: bytes) -> dict[str, Any] | None:
    if len(data) < IPV6_HEADER_SIZE + 24 or data[6] != IPPROTO_ICMPV6:
        return None
    icmp = data[IPV6_HEADER_SIZE:]
    if icmp[0] not in (ICMPV6_NS, ICMPV6_NA) or icmp[8:24] != wanted:
        return None
    (flags,) = struct.unpack_from("!I", icmp, 4)
    return {
        "kind": "na" if icmp[0] == ICMPV6_NA else "ns",
        "src": str(ip_address(data[8:24])),
        "dst": str(ip_address(data[24:40])),
        "hop_limit": data[7],
        "override": bool(flags & NA_FLAG_OVERRIDE),
        "options": icmp[24:].hex(),
    }


def _record(sock: socket.socket, wanted: bytes, records: list[dict[str, Any]]) -> None:
    """Read one frame and keep it if it is about the wanted address."""
    data, origin = sock.recvfrom(2048)
    parse = {ETH_P_ARP: _arp_record, ETH_P_IPV6: _nd_record}.get(origin[1])
    record = parse(data, wanted) if parse is not None else None
    if record is not None:
        out = origin[2] == socket.PACKET_OUTGOING
        records.append(
            {"t": time.monotonic(), "out": out, "mac": format_mac(origin[4][:6]), **record}
        )


def sniff(ifname: str, address: str, max_seconds: float) -> None:
    """Record frames about address until told to stop or max_seconds pass."""
    wanted = ip_address(address).packed
    # ETH_P_ALL: frames this host sends are copied only to packet sockets bound to every
    # protocol, and "the client sent nothing" is part of what the tests check.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    sock.bind((ifname, ETH_P_ALL))
    print("ready", flush=True)
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + max_seconds
    stdin = sys.stdin.fileno()
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([stdin, sock], [], [], remaining)
        if sock in readable:
            _record(sock, wanted, records)
        if stdin in readable:
            break
    # Frames already queued count too: "stop" may arrive together with the last of them.
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            _record(sock, wanted, records)
    print(json.dumps(records), flush=True)


def main() -> None:
    """Dispatch on the first argument."""
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], json.loads(sys.argv[3])))
    elif sys.argv[1] == "sniff":
        sniff(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")


if __name__ == "__main__":
    main()
