"""Heartbeats over UDP: unicast to each peer's address on one network, bound to ours."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterable
from typing import Any

from hotstandby.agent.ports import Deliver, LinkStats
from hotstandby.wire.codec import MAX_MESSAGE

# DSCP CS6 ("network control", 48) in the upper six bits of the TOS / traffic class byte:
# queued ahead of bulk traffic by any QoS-aware switch, and on Linux IPv4 it also raises
# the socket's priority band in the default pfifo_fast / prio qdiscs.
CS6 = 48 << 2

SockAddr = tuple[Any, ...]


# Read size: one more byte than any heartbeat, so a longer datagram still reads as too long
# (the codec drops it as oversized). asyncio's datagram transport reads 256 KiB at a time,
# which costs every datagram an mmap, an mremap and a munmap of a fresh buffer.
RECV_SIZE = MAX_MESSAGE + 1


def _resolve(address: str, port: int) -> tuple[socket.AddressFamily, SockAddr]:
    """Family and socket address of a numeric IPv4/IPv6 address (with %scope if link-local)."""
    # AI_NUMERICHOST: heartbeats must never wait for DNS; a name here is a config error.
    infos = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _host_key(family: socket.AddressFamily, host: str) -> bytes:
    """The packed address, scope id removed, for comparing sources."""
    return socket.inet_pton(family, host.split("%", 1)[0])


class UdpLink:
    """One UDP network: bound to this node's address, sending to every peer's."""

    def __init__(
        self, name: str, local: str, peers: Iterable[str], port: int, *, tos: int = CS6
    ) -> None:
        self.name = name
        self.stats = LinkStats()
        self.family, self.local = _resolve(local, port)
        self.peers: list[SockAddr] = []
        for peer in peers:
            family, sockaddr = _resolve(peer, port)
            if family != self.family:
                raise ValueError(
                    f"link {name}: peer {peer} is not in the address family of {local}"
                )
            self.peers.append(sockaddr)
        self._sources = {_host_key(self.family, p[0]) for p in self.peers}
        self.tos = tos
        # A bare non-blocking socket watched by the loop, not an asyncio transport: an
        # idle agent's CPU is mostly what each heartbeat costs to read and send.
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliver: Deliver | None = None

    @property
    def address(self) -> SockAddr:
        """The socket's bound address (its port too, useful when configured as 0)."""
        if self._sock is None:
            raise RuntimeError(f"link {self.name} is not started")
        sockname: SockAddr = self._sock.getsockname()
        return sockname

    def is_peer(self, host: str) -> bool:
        """Whether a datagram's source address is one of this link's peers."""
        try:
            return _host_key(self.family, host) in self._sources
        except OSError:
            return False

    async def start(self, deliver: Deliver) -> None:
        """Bind the socket and deliver datagrams from configured peers."""
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, self.tos)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, self.tos)
            sock.setblocking(False)
            sock.bind(self.local)
            loop = asyncio.get_running_loop()
            loop.add_reader(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self._sock, self._loop, self._deliver = sock, loop, deliver

    def _on_readable(self) -> None:
        # One datagram per call: the loop polls level-triggered, so another waiting one
        # calls again at once, and an idle pair never pays for a read that finds nothing.
        sock, deliver = self._sock, self._deliver
        if sock is None or deliver is None:
            return
        try:
            data, addr = sock.recvfrom(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            # Nothing asks for ICMP errors (no IP_RECVERR), so this is rare: count it; the
            # socket stays watched and the next datagram is read as usual.
            self.stats.drop(f"read_{errno.errorcode.get(err.errno or 0, 'OSError')}")
            return
        if not self.is_peer(addr[0]):
            self.stats.drop("unknown_source")
            return
        deliver(self.name, data)

    def send(self, message: bytes) -> None:
        """Send one datagram to every peer; failures are counted, never raised."""
        sock = self._sock
        for peer in self.peers:
            if sock is None:
                self.stats.fail_send("not_open")
                continue
            try:
                sock.sendto(message, peer)
            except BlockingIOError:
                # The socket's send buffer is full: drop rather than queue, as a queued
                # heartbeat would only arrive stale after the next one.
                self.stats.fail_send("buffer_full")
            except OSError as err:
                self.stats.fail_send(errno.errorcode.get(err.errno or 0, type(err).__name__))
            else:
                self.stats.sent += 1

    async def close(self) -> None:
        """Stop watching and close the socket (the port is free when this returns)."""
        sock, self._sock = self._sock, None
        self._deliver = None
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
