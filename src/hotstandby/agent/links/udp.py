"""Heartbeats over UDP: unicast to each peer's address on one network, bound to ours."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterable
from typing import Any, Protocol, cast

from hotstandby.agent.ports import Deliver, LinkStats

# DSCP CS6 ("network control", 48) in the upper six bits of the TOS / traffic class byte:
# queued ahead of bulk traffic by any QoS-aware switch, and on Linux IPv4 it also raises
# the socket's priority band in the default pfifo_fast / prio qdiscs.
CS6 = 48 << 2

SockAddr = tuple[Any, ...]


class _Buffered(Protocol):
    # asyncio's selector datagram transport has this; typeshed's DatagramTransport does not.
    def get_write_buffer_size(self) -> int: ...


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
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Protocol | None = None

    @property
    def address(self) -> SockAddr:
        """The socket's bound address (its port too, useful when configured as 0)."""
        if self._transport is None:
            raise RuntimeError(f"link {self.name} is not started")
        sockname: SockAddr = self._transport.get_extra_info("sockname")
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
        except BaseException:
            sock.close()
            raise
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self, deliver)
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        self._transport, self._protocol = transport, protocol

    def send(self, message: bytes) -> None:
        """Send one datagram to every peer; failures are counted, never raised."""
        transport, protocol = self._transport, self._protocol
        if transport is None or protocol is None or transport.is_closing():
            for _ in self.peers:
                self.stats.fail_send("not_open")
            return
        for peer in self.peers:
            if cast(_Buffered, transport).get_write_buffer_size() > 0:
                # The kernel refused an earlier datagram (EAGAIN) and asyncio queued it;
                # queueing more would only deliver stale heartbeats later.
                self.stats.fail_send("buffer_full")
                continue
            protocol.send_error = None
            # An immediate OSError comes back synchronously through error_received.
            transport.sendto(message, peer)
            if protocol.send_error is None:
                self.stats.sent += 1

    async def close(self) -> None:
        """Close the socket."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            # Let connection_lost run so the fd is really closed when close() returns.
            await asyncio.sleep(0)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink, deliver: Deliver) -> None:
        self.link = link
        self.deliver = deliver
        self.send_error: Exception | None = None

    def datagram_received(self, data: bytes, addr: SockAddr) -> None:
        if not self.link.is_peer(addr[0]):
            self.link.stats.drop("unknown_source")
            return
        self.deliver(self.link.name, data)

    def error_received(self, exc: Exception) -> None:
        # Without IP_RECVERR the kernel reports nothing asynchronous on an unconnected
        # UDP socket, so every error here belongs to a sendto.
        code = exc.errno if isinstance(exc, OSError) else None
        self.send_error = exc
        self.link.stats.fail_send(errno.errorcode.get(code or 0, type(exc).__name__))
