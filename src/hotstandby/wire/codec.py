"""The heartbeat on the wire: a compact, versioned, authenticated binary message.

Layout (all integers big-endian; "varint" is unsigned LEB128, canonical, < 2**64;
"str" is a u8 byte length then UTF-8, at most `MAX_STRING` bytes; "ostr" is an
optional str whose u8 prefix is 0 for None and length + 1 otherwise):

    header  magic "HS" (2) | version u8 | cluster tag (4) | total length u16
    body    sender str | boot u64 | seq varint | epoch varint | role u8 | flags u8
            | digest: u8 n (0..8) + n raw bytes
            | heard: varint count + count * (node str, seq varint)
            | handover_to ostr
            | intents: varint count + count * (id str, action u8, target ostr)
            | promotable: varint count + count * node str
    mac     the first 16 bytes of HMAC-SHA256(secret, header + body)

The cluster tag is the first 4 bytes of SHA-256 of the cluster name: it tells a
neighbouring cluster's heartbeat from a forgery without sending the name. The total
length separates a message cut short on the line ("truncated") from one under another
secret ("bad_mac"), which an operator fixes in different places.

The MAC is truncated to 16 bytes: RFC 2104 (section 5) allows keeping at least half
of the output, and 128 bits is far beyond what an attacker could forge online, while
the 16 bytes saved matter on a 9600 baud serial line carrying 5 heartbeats a second.

Digest rule: `Heartbeat.digest` is a hex string; the wire carries its first 16 hex
characters (8 bytes), and a decoded heartbeat has that prefix in lowercase. So
`decode(encode(b)).digest == wire_digest(b.digest)`; compare the received digest
with `wire_digest(own_digest)`, never with the full digest. The empty string (no
digest) round-trips as itself.

Decoding either returns a Heartbeat or raises a `WireError` subclass, whatever the
bytes; a decoded message re-encodes to exactly the same bytes (the encoding is
canonical), which the fuzz tests check.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import struct
from collections.abc import Mapping
from types import MappingProxyType

from hotstandby.core.messages import AdminAction, Heartbeat, Intent, Role

MAGIC = b"HS"
# 2: the replica_ok flag and the promotable list (replicated data).
VERSION = 2
TAG_SIZE = 4
MAC_SIZE = 16
HEADER_SIZE = len(MAGIC) + 1 + TAG_SIZE + 2
MAX_MESSAGE = 1024  # fits a serial frame and a 4 KiB disk slot; a 2-node beat is ~80
MAX_STRING = 254  # an ostr's prefix needs length + 1 to fit a byte
MIN_SECRET = 32  # bytes; matches keys.MIN_SECRET_BYTES
DIGEST_BYTES = 8
U64_LIMIT = 1 << 64

# Stable codes: appending a value never renumbers old ones, and a code is never reused.
# Enum order is deliberately not used: reordering an enum must not change the wire.
ROLE_CODES: Mapping[Role, int] = MappingProxyType(
    {
        Role.STARTING: 1,
        Role.STANDBY: 2,
        Role.ARBITRATING: 3,
        Role.TAKING_OVER: 4,
        Role.ACTIVE: 5,
        Role.RELEASING: 6,
        Role.MAINTENANCE: 7,
        Role.FENCED: 8,
    }
)
ACTION_CODES: Mapping[AdminAction, int] = MappingProxyType(
    {
        AdminAction.SWITCHOVER: 1,
        AdminAction.STANDBY: 2,
        AdminAction.ONLINE: 3,
        AdminAction.MAINTENANCE_ON: 4,
        AdminAction.MAINTENANCE_OFF: 5,
        AdminAction.SHUTDOWN: 6,
        AdminAction.CLEANUP: 7,
        AdminAction.FORCE_ACTIVE: 8,
    }
)
_ROLES_BY_CODE = {code: role for role, code in ROLE_CODES.items()}
_ACTIONS_BY_CODE = {code: action for action, code in ACTION_CODES.items()}

# Flag bits; the rest are reserved and must be zero (a new flag means a new version).
FLAG_HOLDS = 0x01
FLAG_LEASE_OK = 0x02
FLAG_OFFLINE = 0x04
FLAG_FAILED = 0x08
FLAG_MAINTENANCE = 0x10
FLAG_LEAVING = 0x20
FLAG_REPLICA_OK = 0x40
_FLAGS_KNOWN = 0x7F


class WireError(Exception):
    """A received message was dropped; `reason` is a short code to count it under."""

    reason = "malformed"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class BadMagicError(WireError):
    """Not a hotstandby heartbeat at all."""

    reason = "bad_magic"


class BadVersionError(WireError):
    """A heartbeat of another wire version."""

    reason = "bad_version"


class WrongClusterError(WireError):
    """A heartbeat of another cluster (the cluster tag differs)."""

    reason = "wrong_cluster"


class TruncatedError(WireError):
    """Shorter than its header says: cut short on the way."""

    reason = "truncated"


class OversizedError(WireError):
    """Longer than any heartbeat may be."""

    reason = "oversized"


class BadMacError(WireError):
    """The MAC does not match: another secret, corruption or a forgery."""

    reason = "bad_mac"


class MalformedError(WireError):
    """Authentic framing but a body that does not parse."""

    reason = "malformed"


def cluster_tag(cluster: str) -> bytes:
    """The 4-byte tag standing for the cluster name on the wire."""
    return hashlib.sha256(cluster.encode("utf-8")).digest()[:TAG_SIZE]


def wire_digest(digest: str) -> str:
    """The part of a configuration digest that a heartbeat carries (and decodes to)."""
    return digest[: DIGEST_BYTES * 2].lower()


# ---------------------------------------------------------------- encoding


def varint(value: int, what: str) -> bytes:
    """`value` as an unsigned LEB128 varint (ValueError naming `what` when out of range)."""
    if not 0 <= value < U64_LIMIT:
        raise ValueError(f"{what} out of range 0..2**64-1: {value}")
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_ONE_BYTE = tuple(bytes([b]) for b in range(0x80))


def _str(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")  # lone surrogates raise UnicodeEncodeError, a ValueError
    if len(raw) > MAX_STRING:
        raise ValueError(f"{what} longer than {MAX_STRING} bytes of UTF-8: {value[:40]!r}...")
    return bytes([len(raw)]) + raw


def _ostr(value: str | None, what: str) -> bytes:
    if value is None:
        return b"\x00"
    raw = _str(value, what)
    return bytes([raw[0] + 1]) + raw[1:]


@functools.lru_cache(maxsize=8)
def _digest(digest: str) -> bytes:
    # Cached: a node's digest changes only with its configuration, and every beat has it.
    hexpart = wire_digest(digest)
    if len(hexpart) % 2 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"digest must be hex with an even length: {digest!r}")
    raw = bytes.fromhex(hexpart)
    return bytes([len(raw)]) + raw


def _flags(beat: Heartbeat) -> int:
    return (
        (FLAG_HOLDS if beat.holds else 0)
        | (FLAG_LEASE_OK if beat.lease_ok else 0)
        | (FLAG_OFFLINE if beat.offline else 0)
        | (FLAG_FAILED if beat.failed else 0)
        | (FLAG_MAINTENANCE if beat.maintenance else 0)
        | (FLAG_LEAVING if beat.leaving else 0)
        | (FLAG_REPLICA_OK if beat.replica_ok else 0)
    )


def _body(beat: Heartbeat) -> bytes:
    if not 0 <= beat.boot < U64_LIMIT:
        raise ValueError(f"boot id out of range 0..2**64-1: {beat.boot}")
    parts = [
        _str(beat.sender, "sender"),
        struct.pack(">Q", beat.boot),
        varint(beat.seq, "seq"),
        varint(beat.epoch, "epoch"),
        bytes([ROLE_CODES[beat.role], _flags(beat)]),
        _digest(beat.digest),
        varint(len(beat.heard), "heard count"),
    ]
    for node, seq in beat.heard:
        parts += [_str(node, "heard node"), varint(seq, "heard seq")]
    parts += [_ostr(beat.handover_to, "handover_to"), varint(len(beat.intents), "intents")]
    for intent in beat.intents:
        parts += [
            _str(intent.id, "intent id"),
            bytes([ACTION_CODES[intent.action]]),
            _ostr(intent.target, "intent target"),
        ]
    parts.append(varint(len(beat.promotable), "promotable count"))
    parts += [_str(node, "promotable node") for node in beat.promotable]
    return b"".join(parts)


# ---------------------------------------------------------------- decoding


class Reader:
    """Reads an authenticated body; any short read or bad value is MalformedError."""

    def __init__(self, data: bytes, max_string: int = MAX_STRING) -> None:
        self.data = data
        self.pos = 0
        self.max_string = max_string

    def take(self, n: int) -> bytes:
        """The next n bytes."""
        end = self.pos + n
        if end > len(self.data):
            raise MalformedError("body ends early")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        """One unsigned byte."""
        pos = self.pos
        if pos >= len(self.data):
            raise MalformedError("body ends early")
        self.pos = pos + 1
        return self.data[pos]

    def u32(self) -> int:
        """A big-endian unsigned 32-bit integer."""
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def u64(self) -> int:
        """A big-endian unsigned 64-bit integer."""
        value: int = struct.unpack(">Q", self.take(8))[0]
        return value

    def varint(self) -> int:
        """An unsigned LEB128 integer below 2**64, canonically encoded."""
        # Indexes the bytes itself rather than calling u8() per byte: heartbeats carry
        # sequence numbers seven bytes long, and every beat is read.
        data, pos, end = self.data, self.pos, len(self.data)
        value = 0
        for shift in range(0, 70, 7):
            if pos >= end:
                raise MalformedError("body ends early")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                self.pos = pos
                # Canonical only: a zero last byte (overlong) would give two encodings
                # of one value, and decode(x) must re-encode to x.
                if byte == 0 and shift:
                    raise MalformedError("overlong varint")
                if value >= U64_LIMIT:
                    raise MalformedError("varint over 64 bits")
                return value
        self.pos = pos
        raise MalformedError("varint too long")

    def text(self, n: int) -> str:
        """n bytes of UTF-8, at most max_string of them."""
        if n > self.max_string:
            raise MalformedError("string too long")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError("string not UTF-8") from None

    def string(self) -> str:
        """A str: a length byte, then that much UTF-8."""
        return self.text(self.u8())

    def ostr(self) -> str | None:
        """An ostr: 0 for none, else length + 1, then the UTF-8."""
        n = self.u8()
        return None if n == 0 else self.text(n - 1)

    def end(self) -> None:
        """Fail unless every byte was read."""
        if self.pos != len(self.data):
            raise MalformedError("bytes after the body")

    def count(self, entry_size: int = 2) -> int:
        """A varint count of entries of at least `entry_size` bytes that the body can hold."""
        n = self.varint()
        # Refuse impossible counts before looping.
        if n * entry_size > len(self.data) - self.pos:
            raise MalformedError("count larger than the body")
        return n


def _parse(body: bytes) -> Heartbeat:
    r = Reader(body)
    sender = r.string()
    (boot,) = struct.unpack(">Q", r.take(8))
    seq = r.varint()
    epoch = r.varint()
    role = _ROLES_BY_CODE.get(r.u8())
    if role is None:
        raise MalformedError("unknown role code")
    flags = r.u8()
    if flags & ~_FLAGS_KNOWN:
        raise MalformedError("reserved flag bits set")
    digest_len = r.u8()
    if digest_len > DIGEST_BYTES:
        raise MalformedError("digest too long")
    digest = r.take(digest_len).hex()
    heard = tuple((r.string(), r.varint()) for _ in range(r.count()))
    handover_to = r.ostr()
    intents: list[Intent] = []
    for _ in range(r.count()):
        intent_id = r.string()
        action = _ACTIONS_BY_CODE.get(r.u8())
        if action is None:
            raise MalformedError("unknown intent action code")
        intents.append(Intent(intent_id, action, r.ostr()))
    promotable = tuple(r.string() for _ in range(r.count(entry_size=1)))
    r.end()
    return Heartbeat(
        sender=sender,
        boot=boot,
        seq=seq,
        epoch=epoch,
        role=role,
        holds=bool(flags & FLAG_HOLDS),
        heard=heard,
        lease_ok=bool(flags & FLAG_LEASE_OK),
        offline=bool(flags & FLAG_OFFLINE),
        failed=bool(flags & FLAG_FAILED),
        maintenance=bool(flags & FLAG_MAINTENANCE),
        leaving=bool(flags & FLAG_LEAVING),
        handover_to=handover_to,
        intents=tuple(intents),
        digest=digest,
        replica_ok=bool(flags & FLAG_REPLICA_OK),
        promotable=promotable,
    )


def check_frame(
    data: bytes, magic: bytes, version: int, tag: bytes, header_size: int, max_size: int
) -> None:
    """The checks of a signed frame before its MAC: a WireError subclass when one fails.

    Frames of hotstandby's protocols start magic | version | cluster tag | ... and end
    their header with a u16 total length, the MAC last (`MAC_SIZE` bytes). The checks go in
    the order that gives the most useful reason: a stray packet is bad_magic, an upgrade
    is bad_version, a neighbour is wrong_cluster.
    """
    if data[: len(magic)] != magic[: len(data)]:
        raise BadMagicError()
    if len(data) <= len(magic):
        raise TruncatedError("in header")
    if data[len(magic)] != version:
        raise BadVersionError(f"version {data[len(magic)]}, expected {version}")
    found = data[len(magic) + 1 : len(magic) + 1 + len(tag)]
    if found != tag[: len(found)]:
        raise WrongClusterError()
    if len(data) > max_size:
        raise OversizedError(f"{len(data)} bytes")
    if len(data) < header_size:
        raise TruncatedError("in header")
    (total,) = struct.unpack_from(">H", data, header_size - 2)
    if total < header_size + MAC_SIZE:
        raise MalformedError("declared length below the minimum")
    if total > max_size:
        raise OversizedError(f"declares {total} bytes")
    if len(data) < total:
        raise TruncatedError(f"{len(data)} of {total} bytes")
    if len(data) > total:
        raise MalformedError("bytes after the message")


# ---------------------------------------------------------------- the codec


class Codec:
    """Encodes and decodes heartbeats of one cluster under one shared secret."""

    def __init__(self, cluster: str, secret: bytes) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"secret shorter than {MIN_SECRET} bytes")
        self.cluster = cluster
        self.tag = cluster_tag(cluster)
        # Keyed once; each message works on a copy (saves the key schedule per beat).
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def seal(self, header_and_body: bytes) -> bytes:
        """The MAC of a signed message under this cluster's secret (other messages use it too)."""
        mac = self._mac.copy()
        mac.update(header_and_body)
        return mac.digest()[:MAC_SIZE]

    def encode(self, beat: Heartbeat) -> bytes:
        """The authenticated wire bytes of `beat`; ValueError if it cannot be encoded."""
        body = _body(beat)
        total = HEADER_SIZE + len(body) + MAC_SIZE
        if total > MAX_MESSAGE:
            raise ValueError(f"heartbeat of {total} bytes exceeds {MAX_MESSAGE}")
        head = MAGIC + bytes([VERSION]) + self.tag + struct.pack(">H", total)
        return head + body + self.seal(head + body)

    def decode(self, data: bytes) -> Heartbeat:
        """The heartbeat in `data`, or a WireError subclass saying why it was dropped."""
        data = bytes(data)
        check_frame(data, MAGIC, VERSION, self.tag, HEADER_SIZE, MAX_MESSAGE)
        signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if not hmac.compare_digest(mac, self.seal(signed)):
            raise BadMacError()
        return _parse(signed[HEADER_SIZE:])


def encode(beat: Heartbeat, *, cluster: str, secret: bytes) -> bytes:
    """Encode one heartbeat (prefer a long-lived Codec on a hot path)."""
    return Codec(cluster, secret).encode(beat)


def decode(data: bytes, *, cluster: str, secret: bytes) -> Heartbeat:
    """Decode one heartbeat (prefer a long-lived Codec on a hot path)."""
    return Codec(cluster, secret).decode(data)
