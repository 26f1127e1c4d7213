"""The witness protocol on the wire: versioned, bounded, authenticated UDP datagrams.

Why UDP: a lease request is small, idempotent per request number and worthless once
late (the client counts its lease from its send time, and gives up within a quarter
lease), so retries on a datagram socket fit better than a connection whose
handshake and head-of-line blocking a lossy link would stall. Every request carries
a per-node request number that only grows; the witness applies each node's requests
in that order, answers a repeat of the last one with the same answer (a retry whose
answer was lost) and drops anything older, so a RELEASE can never be overtaken by an
earlier CLAIM's retry.

Layout (integers big-endian; "str" is a u8 byte length then UTF-8; "ostr" an optional
str whose u8 prefix is 0 for None, length + 1 otherwise):

    header   magic "HW" (2) | version u8 | cluster tag (4) | type u8 | total length u16
    request  node str | number u64 | kind u8 | epoch u64
    answer   node str | number u64 | outcome u8 | holder ostr | remaining_ms u32
             | last u64
    mac      the first 16 bytes of HMAC-SHA256(secret, header + body)

The cluster tag (first 4 bytes of SHA-256 of the cluster name, as in heartbeats) names
the cluster; the MAC, under the cluster's shared secret, covers it and the type byte,
so an answer can never be reflected back as a request. An answer echoes the node and
number of the request it answers; `last` is, in a STALE answer, the highest number the
witness has applied for that node (a client whose numbers went back, after its clock
was set back across a restart, starts above it).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

from hotstandby.wire.codec import (
    BadMacError,
    MalformedError,
    Reader,
    WireError,
    check_frame,
    cluster_tag,
)

MAGIC = b"HW"
VERSION = 1
TAG_SIZE = 4
MAC_SIZE = 16
HEADER_SIZE = len(MAGIC) + 1 + TAG_SIZE + 1 + 2
MAX_DATAGRAM = 512  # a request is ~40 bytes; anything near this is not ours
MAX_NODE = 64  # bytes of UTF-8 in a node name on this wire
MIN_SECRET = 32
_U64 = 1 << 64
_U32 = 1 << 32


class MessageType(IntEnum):
    """What a datagram is: a request to the witness or its answer."""

    REQUEST = 1
    ANSWER = 2


class Kind(IntEnum):
    """What a node asks (stable codes: a new kind appends, never renumbers)."""

    RENEW = 1
    CLAIM = 2
    RELEASE = 3


class Verdict(IntEnum):
    """What the witness answers."""

    RENEWED = 1
    GRANTED = 2
    DENIED = 3  # another node holds an unexpired lease
    RELEASED = 4  # a RELEASE was applied (or had nothing to free)
    WAIT = 5  # restarted recently: grants nobody new until its old leases surely ran out
    STALE = 6  # the request number is below what was already applied for this node


class WrongTypeError(WireError):
    """An answer where a request was expected, or the other way round."""

    reason = "wrong_type"


@dataclass(frozen=True)
class Request:
    """One node's request to the witness."""

    node: str
    number: int
    kind: Kind
    epoch: int


@dataclass(frozen=True)
class Answer:
    """The witness's answer to the request `number` of `node`."""

    node: str
    number: int
    verdict: Verdict
    holder: str | None = None
    remaining: float = 0.0  # seconds of the holder's lease left, as the witness counts
    last: int = 0  # STALE: the highest number applied for this node


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw or len(raw) > MAX_NODE:
        raise ValueError(f"node name must be 1..{MAX_NODE} bytes of UTF-8: {value[:40]!r}")
    return bytes([len(raw)]) + raw


def _ostr(value: str) -> bytes:
    raw = _str(value)
    return bytes([raw[0] + 1]) + raw[1:]


def _u64(value: int, what: str) -> bytes:
    if not 0 <= value < _U64:
        raise ValueError(f"{what} out of range 0..2**64-1: {value}")
    return struct.pack(">Q", value)


class _Reader(Reader):
    """The heartbeat codec's reader, with names that may not be empty."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data, MAX_NODE)

    def text(self, n: int) -> str:
        """n bytes of UTF-8: at least one, at most MAX_NODE."""
        if n == 0:
            raise MalformedError("bad string length")
        return super().text(n)


class WitnessCodec:
    """Encodes and checks witness datagrams of one cluster under its shared secret."""

    def __init__(self, cluster: str, secret: bytes) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"secret shorter than {MIN_SECRET} bytes")
        self.cluster = cluster
        self.tag = cluster_tag(cluster)
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def _seal(self, data: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()[:MAC_SIZE]

    def _wrap(self, kind: MessageType, body: bytes) -> bytes:
        total = HEADER_SIZE + len(body) + MAC_SIZE
        if total > MAX_DATAGRAM:
            raise ValueError(f"datagram of {total} bytes exceeds {MAX_DATAGRAM}")
        head = MAGIC + bytes([VERSION]) + self.tag + bytes([kind]) + struct.pack(">H", total)
        return head + body + self._seal(head + body)

    def encode_request(self, request: Request) -> bytes:
        """The authenticated datagram of `request`; ValueError if it cannot be encoded."""
        body = (
            _str(request.node)
            + _u64(request.number, "request number")
            + bytes([Kind(request.kind)])
            + _u64(request.epoch, "epoch")
        )
        return self._wrap(MessageType.REQUEST, body)

    def encode_answer(self, answer: Answer) -> bytes:
        """The authenticated datagram of `answer`."""
        holder = b"\x00" if answer.holder is None else _ostr(answer.holder)
        millis = min(max(0, round(answer.remaining * 1000)), _U32 - 1)
        body = (
            _str(answer.node)
            + _u64(answer.number, "request number")
            + bytes([Verdict(answer.verdict)])
            + holder
            + struct.pack(">I", millis)
            + _u64(answer.last, "last number")
        )
        return self._wrap(MessageType.ANSWER, body)

    def _open(self, data: bytes, expected: MessageType) -> bytes:
        """The authenticated body of a datagram of type `expected`, or a WireError."""
        data = bytes(data)
        check_frame(data, MAGIC, VERSION, self.tag, HEADER_SIZE, MAX_DATAGRAM)
        signed, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
        if not hmac.compare_digest(mac, self._seal(signed)):
            raise BadMacError()
        # Checked only once authentic: a forged type byte is a bad MAC, not a wrong type.
        if data[HEADER_SIZE - 3] != expected:
            raise WrongTypeError(f"type {data[HEADER_SIZE - 3]}, expected {int(expected)}")
        return signed[HEADER_SIZE:]

    def decode_request(self, data: bytes) -> Request:
        """The request in `data`, or a WireError saying why it is dropped."""
        r = _Reader(self._open(data, MessageType.REQUEST))
        node, number, code, epoch = r.string(), r.u64(), r.u8(), r.u64()
        r.end()
        try:
            kind = Kind(code)
        except ValueError:
            raise MalformedError(f"unknown request kind {code}") from None
        return Request(node, number, kind, epoch)

    def decode_answer(self, data: bytes) -> Answer:
        """The answer in `data`, or a WireError saying why it is dropped."""
        r = _Reader(self._open(data, MessageType.ANSWER))
        node, number, code = r.string(), r.u64(), r.u8()
        holder, millis, last = r.ostr(), r.u32(), r.u64()
        r.end()
        try:
            verdict = Verdict(code)
        except ValueError:
            raise MalformedError(f"unknown answer code {code}") from None
        return Answer(node, number, verdict, holder, millis / 1000, last)
