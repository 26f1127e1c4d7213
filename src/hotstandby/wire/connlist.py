"""The active node's TCP connections on the floating addresses, sent to its peers.

A standby that takes over after the active node froze (its kernel alive, its processes
stopped) must set free the clients waiting on that node's connections: their requests were
acknowledged, so they send nothing more and would wait forever. The active node sends the
list of its connections on the floating addresses; the node taking over sends each client
a "tickle" ACK (agent/tickle.py).

Layout (big-endian; "varint" and "str" as in codec.py):

    header  magic "HT" (2) | version u8 | cluster tag (4) | total length u16
    body    sender str | boot u64 | seq varint | generation varint
            | chunk index u8 | chunk count u8
            | entries: varint count + count * (family u8 (4 or 6) | local address (4 or 16)
              | local port u16 | remote address (4 or 16) | remote port u16)
    mac     the first 16 bytes of HMAC-SHA256(secret, header + body), as heartbeats

Its own magic lets the receiver tell it from a heartbeat with one comparison. Boot and seq
give it the heartbeats' replay protection; a list larger than one datagram goes as numbered
chunks of one generation, and a receiver keeps, per sender, the newest complete generation.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from hotstandby.wire.codec import (
    HEADER_SIZE,
    MAC_SIZE,
    MAX_MESSAGE,
    U64_LIMIT,
    BadMacError,
    Codec,
    MalformedError,
    Reader,
    check_frame,
    varint,
)

MAGIC = b"HT"
VERSION = 1
MAX_CHUNKS = 255  # a u8: about 13,000 IPv4 connections; split() leaves out the rest
_ENTRY = {4: 1 + 4 + 2 + 4 + 2, 6: 1 + 16 + 2 + 16 + 2}
# Header, MAC and the body's fixed part with a 254-byte sender name, 10-byte varints.
_OVERHEAD = HEADER_SIZE + MAC_SIZE + 1 + 254 + 8 + 10 + 10 + 2 + 3

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Connection:
    """One established TCP connection, seen from the server: (local, remote) endpoints."""

    local: IPAddress
    local_port: int
    remote: IPAddress
    remote_port: int

    def __str__(self) -> str:
        return f"{self.local}:{self.local_port} <- {self.remote}:{self.remote_port}"


@dataclass(frozen=True)
class Chunk:
    """One decoded message: part `index` of `count` of generation `generation` of a list."""

    sender: str
    boot: int
    seq: int
    generation: int
    index: int
    count: int
    connections: tuple[Connection, ...]


def is_connlist(data: bytes) -> bool:
    """Whether a datagram claims to be a connection list (not a heartbeat): one comparison."""
    return data[:2] == MAGIC


def _entry(conn: Connection) -> bytes:
    if conn.local.version != conn.remote.version:
        raise ValueError(f"connection mixes address families: {conn}")
    if not (0 <= conn.local_port < 65536 and 0 <= conn.remote_port < 65536):
        raise ValueError(f"port out of range: {conn}")
    return (
        bytes([conn.local.version])
        + conn.local.packed
        + struct.pack(">H", conn.local_port)
        + conn.remote.packed
        + struct.pack(">H", conn.remote_port)
    )


def split(connections: Sequence[Connection]) -> list[tuple[Connection, ...]]:
    """The connections cut into chunks that each fit one message (at least one chunk, at
    most MAX_CHUNKS: a list longer than that loses its tail, tickles are a best effort)."""
    budget = MAX_MESSAGE - _OVERHEAD
    chunks: list[tuple[Connection, ...]] = []
    current: list[Connection] = []
    used = 0
    for conn in connections:
        size = _ENTRY[conn.local.version]
        if used + size > budget:
            chunks.append(tuple(current))
            current, used = [], 0
        current.append(conn)
        used += size
    chunks.append(tuple(current))
    return chunks[:MAX_CHUNKS]


class ConnListCodec:
    """Encodes and decodes connection lists under the heartbeats' cluster tag and secret."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def encode(self, chunk: Chunk) -> bytes:
        """The authenticated bytes of one chunk; ValueError when it cannot be encoded."""
        if not 0 <= chunk.index < chunk.count <= MAX_CHUNKS:
            raise ValueError(f"chunk {chunk.index} of {chunk.count} is not a valid part")
        raw = chunk.sender.encode("utf-8")
        if not 0 < len(raw) <= 254:
            raise ValueError(f"sender name of {len(raw)} bytes")
        if not 0 <= chunk.boot < U64_LIMIT:
            raise ValueError(f"boot id out of range: {chunk.boot}")
        body = b"".join(
            [
                bytes([len(raw)]) + raw,
                struct.pack(">Q", chunk.boot),
                varint(chunk.seq, "seq"),
                varint(chunk.generation, "generation"),
                bytes([chunk.index, chunk.count]),
                varint(len(chunk.connections), "count"),
                *(_entry(c) for c in chunk.connections),
            ]
        )
        total = HEADER_SIZE + len(body) + MAC_SIZE
        if total > MAX_MESSAGE:
            raise ValueError(f"connection list of {total} bytes exceeds {MAX_MESSAGE}")
        head = MAGIC + bytes([VERSION]) + self.codec.tag + struct.pack(">H", total)
        return head + body + self.codec.seal(head + body)

    def encode_all(
        self, sender: str, boot: int, first_seq: int, generation: int, conns: Sequence[Connection]
    ) -> list[bytes]:
        """Every chunk of one generation of the list, numbered from `first_seq`."""
        parts = split(conns)
        return [
            self.encode(Chunk(sender, boot, first_seq + i, generation, i, len(parts), part))
            for i, part in enumerate(parts)
        ]

    def decode(self, data: bytes) -> Chunk:
        """The chunk in `data`, or a WireError subclass saying why it was dropped."""
        data = bytes(data)
        check_frame(data, MAGIC, VERSION, self.codec.tag, HEADER_SIZE, MAX_MESSAGE)
        signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if not hmac.compare_digest(mac, self.codec.seal(signed)):
            raise BadMacError()
        return _parse(signed[HEADER_SIZE:])


def _address(r: Reader, family: int) -> IPAddress:
    return ip_address(r.take(4 if family == 4 else 16))


def _parse(body: bytes) -> Chunk:
    r = Reader(body)
    sender = r.string()
    if not sender:
        raise MalformedError("empty sender")
    boot = r.u64()
    seq = r.varint()
    generation = r.varint()
    index, count = r.u8(), r.u8()
    if not index < count:
        raise MalformedError(f"chunk {index} of {count}")
    conns: list[Connection] = []
    for _ in range(r.count(entry_size=_ENTRY[4])):
        family = r.u8()
        if family not in (4, 6):
            raise MalformedError(f"address family {family}")
        local = _address(r, family)
        (local_port,) = struct.unpack(">H", r.take(2))
        remote = _address(r, family)
        (remote_port,) = struct.unpack(">H", r.take(2))
        conns.append(Connection(local, local_port, remote, remote_port))
    r.end()
    return Chunk(sender, boot, seq, generation, index, count, tuple(conns))


@dataclass
class _Assembly:
    boot: int
    generation: int
    parts: dict[int, tuple[Connection, ...]]
    count: int


@dataclass
class _Complete:
    boot: int
    generation: int
    connections: tuple[Connection, ...]


class ConnListStore:
    """Per sender, the newest complete generation of its list (a receiving node's memory)."""

    def __init__(self) -> None:
        self._complete: dict[str, _Complete] = {}
        self._building: dict[str, _Assembly] = {}

    def add(self, chunk: Chunk) -> bool:
        """Take one authentic, fresh chunk; True when it completed a newer generation."""
        done = self._complete.get(chunk.sender)
        if done is not None and (chunk.boot, chunk.generation) <= (done.boot, done.generation):
            return False  # a refresh of what we have, or older
        building = self._building.get(chunk.sender)
        key = (chunk.boot, chunk.generation)
        if building is None or (building.boot, building.generation) < key:
            building = _Assembly(chunk.boot, chunk.generation, {}, chunk.count)
            self._building[chunk.sender] = building
        elif (building.boot, building.generation) > key or building.count != chunk.count:
            return False  # a late part of an older generation, or an inconsistent one
        building.parts[chunk.index] = chunk.connections
        if len(building.parts) < building.count:
            return False
        conns = tuple(c for i in range(building.count) for c in building.parts[i])
        self._complete[chunk.sender] = _Complete(chunk.boot, chunk.generation, conns)
        del self._building[chunk.sender]
        return True

    def connections(self, sender: str) -> tuple[Connection, ...]:
        """The newest complete list of `sender` (empty when none)."""
        done = self._complete.get(sender)
        return () if done is None else done.connections

    def senders(self) -> list[str]:
        """The senders with a complete list."""
        return sorted(self._complete)

    def forget(self, sender: str, addresses: Iterable[IPAddress]) -> None:
        """Drop `sender`'s connections on `addresses` (tickled: it holds them no more)."""
        done = self._complete.get(sender)
        if done is not None:
            gone = frozenset(addresses)
            done.connections = tuple(c for c in done.connections if c.local not in gone)

    def summary(self) -> dict[str, int]:
        """Connections known per sender, for status."""
        return {name: len(done.connections) for name, done in sorted(self._complete.items())}


def connections_on(
    conns: Iterable[Connection], addresses: Iterable[IPAddress]
) -> tuple[Connection, ...]:
    """The connections whose local address is one of `addresses`."""
    wanted = frozenset(addresses)
    return tuple(c for c in conns if c.local in wanted)
