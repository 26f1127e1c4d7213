"""Tickle ACKs: free the clients of a frozen active node when its floating address moves.

A client whose request the old active node's kernel acknowledged sends nothing more and
waits for the answer; if that node froze (processes stopped, kernel alive) and was then
fenced, no FIN ever comes and the client waits for a kernel timeout, often forever. So the
active node reads its established connections on the floating addresses
(`established`, from /proc/self/net/tcp and tcp6 of its own network namespace, walked
again only when the namespace's TCP counters moved: `ConnectionReader`) and sends
them to its peers (wire/connlist.py). After the node taking over has added the address, it
sends each remembered client a TCP ACK with a wrong sequence number from the floating
address and server port (`send_round`): the client answers with a challenge ACK (RFC 5961)
or an out-of-window ACK, which reaches the new holder, whose kernel knows no such connection
and answers with a RST: the client's call fails at once and it reconnects.

The kernel answers out-of-window ACKs at most once per tcp_invalid_ratelimit (500 ms by
default) per connection, so the three rounds are spaced more than that apart: a first ACK
lost (a client's neighbour cache still pointing at the old node) is made up by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hotstandby.agent.resources.announce import internet_checksum
from hotstandby.wire.connlist import Connection, IPAddress

log = logging.getLogger(__name__)

PROC_TCP = {4: "/proc/self/net/tcp", 6: "/proc/self/net/tcp6"}
PROC_SOCKSTAT = {4: "/proc/self/net/sockstat", 6: "/proc/self/net/sockstat6"}
PROC_SNMP = "/proc/self/net/snmp"
SNMP_READ_SIZE = 16384  # /proc/net/snmp is about 1.3 KiB
READ_SIZE = 65536  # below malloc's mmap threshold: no fresh (locked) pages every second
ESTABLISHED = "01"
# The server's side of a connection whose client has closed its half and may still wait
# for the answer: as stuck as an established one when the server freezes. The kernel's
# CurrEstab counter (TcpCounters) counts both states on recent kernels, as the walk does.
CLOSE_WAIT = "08"
OPEN_STATES = frozenset({ESTABLISHED, CLOSE_WAIT})
ROUNDS = 3
ROUND_INTERVAL = 0.6  # over the kernel's default tcp_invalid_ratelimit of 500 ms
WINDOW = 1024
ACK = 0x10


# ---- reading the connections -----------------------------------------------------------------


def proc_hex(address: IPAddress) -> str:
    """How /proc/net/tcp{,6} writes `address`: each 32-bit word in host byte order, in hex."""
    raw = address.packed
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return "".join(f"{w:08X}" for w in words)


def _from_hex(text: str) -> IPAddress:
    words = [int(text[i : i + 8], 16) for i in range(0, len(text), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


def parse_proc_tcp(text: str, wanted: Iterable[IPAddress]) -> list[Connection]:
    """The open (ESTABLISHED or CLOSE_WAIT) connections in a /proc/net/tcp{,6} text whose
    local address is wanted."""
    hexes = {proc_hex(a) for a in wanted}
    if not hexes:
        return []
    found: list[Connection] = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 4)
        if len(fields) < 4 or fields[3] not in OPEN_STATES:
            continue
        local, _, lport = fields[1].partition(":")
        if local not in hexes:
            continue
        remote, _, rport = fields[2].partition(":")
        try:
            found.append(Connection(_from_hex(local), int(lport, 16),
                                    _from_hex(remote), int(rport, 16)))  # fmt: skip
        except ValueError:
            continue  # a line the kernel would never write: nothing to tickle
    return found


def _proc_text(path: str) -> str:
    """A /proc/net file's whole text."""
    # Read to the end: a seq_file read may return less than asked for before the end (a
    # page at a time), so a short read does not mean the last one. Each read() of
    # /proc/net/tcp walks the kernel's established hash table, so the buffer is large.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = []
        while chunk := os.read(fd, READ_SIZE):
            parts.append(chunk)
    finally:
        os.close(fd)
    return b"".join(parts).decode("ascii", errors="replace")


def tcp_in_use(family: int) -> int | None:
    """TCP sockets (listening too) in this namespace from /proc's sockstat; None if unknown."""
    label = "TCP:" if family == 4 else "TCP6:"
    try:
        text = _proc_text(PROC_SOCKSTAT[family])
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == label and len(fields) >= 3 and fields[1] == "inuse":
            return int(fields[2]) if fields[2].isdigit() else None
    return None


@dataclass(frozen=True)
class TcpCounters:
    """This namespace's TCP counters that move whenever its set of open connections may.

    A connection opens only through an active or a passive open, each counted, and closes
    only by leaving the states CurrEstab counts (ESTABLISHED and, on recent kernels,
    CLOSE_WAIT), which lowers it: while all three stand still, the connections are the ones
    last read. (On older kernels a CLOSE_WAIT connection that ends lowers nothing: it stays
    listed until the next change, and a tickle to a client that is gone does no harm.)
    """

    active_opens: int
    passive_opens: int
    current: int  # CurrEstab


def parse_snmp_tcp(text: str) -> TcpCounters | None:
    """The TCP counters of a /proc/net/snmp text (a header line, then a value line)."""
    # Looked for directly rather than by splitting every line: the file has some twenty
    # lines, and the active node reads it on each of its heartbeats.
    head_at = ("\n" + text).find("\nTcp:")
    if head_at < 0:
        return None
    head_end = text.find("\n", head_at)
    if head_end < 0:
        return None  # a header line and no value line
    value_end = text.find("\n", head_end + 1)
    names = text[head_at:head_end].split()
    values = text[head_end + 1 : value_end if value_end >= 0 else len(text)].split()
    if len(names) != len(values) or values[:1] != ["Tcp:"] or names.count("Tcp:") != 1:
        return None
    try:
        active = int(values[names.index("ActiveOpens")])
        passive = int(values[names.index("PassiveOpens")])
        current = int(values[names.index("CurrEstab")])
    except ValueError:
        return None  # a counter missing (index) or not a number (int)
    return TcpCounters(active, passive, current)


class TcpCounterFile:
    """This namespace's TCP counters, read from a descriptor kept open for the purpose.

    Opening /proc/self/net/snmp costs several times what reading it does (a path walk
    through procfs, a new file), and the active node reads it on each of its heartbeats;
    a seq_file read at offset 0 renders it anew each time.
    """

    def __init__(self, path: str = PROC_SNMP) -> None:
        self.path = path
        self._fd: int | None = None

    def __call__(self) -> TcpCounters | None:
        """The counters now (a few microseconds: no walk); None if unreadable."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(self._fd, SNMP_READ_SIZE, 0)
        except OSError:
            self.close()  # opened again on the next call
            return None
        return parse_snmp_tcp(data.decode("ascii", errors="replace"))

    def close(self) -> None:
        """Close the descriptor (a later call opens it again)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def sort_key(conn: Connection) -> tuple[int, bytes, int, bytes, int]:
    """An order of connections of both families (addresses of two families do not compare)."""
    return (conn.local.version, conn.local.packed, conn.local_port, conn.remote.packed,
            conn.remote_port)  # fmt: skip


def _unmapped(conn: Connection) -> Connection:
    """An IPv4 connection of a dual-stack IPv6 socket (::ffff:a.b.c.d) as the IPv4 one it is."""
    if isinstance(conn.local, IPv6Address) and isinstance(conn.remote, IPv6Address):
        local, remote = conn.local.ipv4_mapped, conn.remote.ipv4_mapped
        if local is not None and remote is not None:
            return Connection(local, conn.local_port, remote, conn.remote_port)
    return conn


def established(addresses: Sequence[IPAddress]) -> tuple[Connection, ...]:
    """This network namespace's established TCP connections on `addresses`, sorted."""
    v4 = [a for a in addresses if isinstance(a, IPv4Address)]
    # A server listening on [::] without IPV6_V6ONLY accepts IPv4 clients on IPv6 sockets:
    # those connections are in tcp6, their addresses IPv4-mapped.
    v6 = [a for a in addresses if isinstance(a, IPv6Address)]
    v6 += [IPv6Address(b"\0" * 10 + b"\xff\xff" + a.packed) for a in v4]
    found: list[Connection] = []
    for family, wanted in ((4, v4), (6, v6)):
        # sockstat costs a hundredth of a walk: a namespace without TCP sockets needs none.
        if not wanted or tcp_in_use(family) == 0:
            continue
        try:
            found += parse_proc_tcp(_proc_text(PROC_TCP[family]), wanted)
        except FileNotFoundError:
            continue  # IPv6 disabled in this kernel: no tcp6 connections either
    return tuple(sorted({_unmapped(c) for c in found}, key=sort_key))


class ConnectionReader:
    """This node's open connections on the floating addresses, walked again only when the
    kernel's TCP counters moved since the last walk.

    A walk of /proc/net/tcp visits every bucket of the kernel's connection hash table,
    whose size grows with the machine's memory (a millisecond here, more on a large
    server), whether or not there are connections; the counters cost microseconds. An
    idle server with a steady connection pool is never walked.
    """

    def __init__(
        self,
        counters: Callable[[], TcpCounters | None] | None = None,
        walk: Callable[[Sequence[IPAddress]], tuple[Connection, ...]] = established,
    ) -> None:
        self._file: TcpCounterFile | None = None
        if counters is None:
            counters = self._file = TcpCounterFile()
        self._counters = counters
        self._walk = walk
        # What the last read looked for, the counters read just before it (None: never
        # read, or unknown), and what it found.
        self._wanted: tuple[IPAddress, ...] = ()
        self._seen: TcpCounters | None = None
        self._last: tuple[Connection, ...] = ()
        self.walks = 0

    def stale(self, addresses: Sequence[IPAddress]) -> bool:
        """Whether reading `addresses` now might find other connections than the last read."""
        wanted = tuple(addresses)
        if wanted != self._wanted:
            return True
        if not wanted:
            return False  # nothing looked for: nothing to find either
        return self._seen is None or self._counters() != self._seen

    async def read(self, addresses: Sequence[IPAddress]) -> tuple[Connection, ...]:
        """The open connections on `addresses`, sorted (OSError when /proc cannot be read)."""
        wanted = tuple(addresses)
        # Read before the walk: a connection opening during it moves them for the next read.
        counters = self._counters()
        if wanted == self._wanted and counters is not None and counters == self._seen:
            return self._last
        if not wanted or (counters is not None and counters.current == 0):
            found: tuple[Connection, ...] = ()
        else:
            # Blocking (a walk can take milliseconds): off the event loop.
            found = await asyncio.to_thread(self._walk, wanted)
            self.walks += 1
        self._wanted, self._seen, self._last = wanted, counters, found
        return found

    def close(self) -> None:
        """Let go of the counter file (when reading this node's own counters)."""
        if self._file is not None:
            self._file.close()


# ---- the tickle segment ----------------------------------------------------------------------


def tcp_segment(
    src: IPAddress,
    dst: IPAddress,
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = ACK,
    window: int = WINDOW,
) -> bytes:
    """A TCP header without options (a tickle: only ACK), its checksum over the pseudo-header."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0)
    if isinstance(src, IPv4Address):
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(header))
    else:
        pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(header), socket.IPPROTO_TCP)
    return header[:16] + struct.pack("!H", internet_checksum(pseudo + header)) + header[18:]


def _raw_socket(local: IPAddress) -> socket.socket:
    family = socket.AF_INET if local.version == 4 else socket.AF_INET6
    # IPPROTO_TCP without IP_HDRINCL: the kernel writes the IP header, with the bound
    # floating address as its source, for both families alike.
    sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_TCP)
    try:
        # Only sending: a raw TCP socket also gets a copy of every TCP packet received.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        sock.bind((str(local), 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def send_round(conns: Sequence[Connection]) -> tuple[int, list[str]]:
    """Send one tickle to each connection's client; (sent, errors). Never blocks."""
    sockets: dict[IPAddress, socket.socket] = {}
    sent, errors = 0, []
    try:
        for conn in conns:
            try:
                sock = sockets.get(conn.local)
                if sock is None:
                    sock = sockets[conn.local] = _raw_socket(conn.local)
                segment = tcp_segment(conn.local, conn.remote, conn.local_port, conn.remote_port)
                # Port 0: a raw IPv6 socket refuses any port other than its protocol's.
                sock.sendto(segment, (str(conn.remote), 0))
                sent += 1
            except OSError as err:
                errors.append(f"{conn}: {errno.errorcode.get(err.errno or 0, str(err))}")
    finally:
        for sock in sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
    return sent, errors


async def repeat_rounds(
    conns: Sequence[Connection], rounds: int = ROUNDS - 1, interval: float = ROUND_INTERVAL
) -> None:
    """The rounds after the first, `interval` apart (failures are logged: the first counted)."""
    for _ in range(rounds):
        await asyncio.sleep(interval)
        # Non-blocking sends of a few dozen bytes each: quick enough for the event loop.
        _, errors = send_round(conns)
        if errors:
            log.warning("tickles not sent: %s", "; ".join(errors[:5]))
