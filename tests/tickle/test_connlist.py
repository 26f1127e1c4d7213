"""The connection-list message: round trips, every refusal, chunking, the receiver's memory."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotstandby.wire.codec import (
    MAX_MESSAGE,
    BadMacError,
    BadMagicError,
    BadVersionError,
    Codec,
    MalformedError,
    OversizedError,
    TruncatedError,
    WireError,
    WrongClusterError,
)
from hotstandby.wire.connlist import (
    MAX_CHUNKS,
    Chunk,
    Connection,
    ConnListCodec,
    ConnListStore,
    connections_on,
    is_connlist,
    split,
)
from hotstandby.wire.replay import ReplayGuard, ReplayReason

SECRET = bytes(range(32))
CODEC = ConnListCodec(Codec("lab", SECRET))
FUZZ = settings(derandomize=True, max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
VIP4 = IPv4Address("192.0.2.10")
VIP6 = IPv6Address("2001:db8:1::10")


def conn4(i: int) -> Connection:
    """A client connection on the IPv4 floating address."""
    return Connection(VIP4, 5432, IPv4Address(0xC6336400 + i % 250), 30000 + i)


def conn6(i: int) -> Connection:
    """A client connection on the IPv6 floating address."""
    return Connection(VIP6, 443, IPv6Address(f"2001:db8:2::{i + 1:x}"), 40000 + i)


def chunk(conns: tuple[Connection, ...] = (), **kw: int | str) -> Chunk:
    """A chunk with sensible defaults."""
    fields: dict[str, object] = {"sender": "alpha", "boot": 7 << 32, "seq": 1, "generation": 1,
                                 "index": 0, "count": 1}  # fmt: skip
    fields.update(kw)
    return Chunk(connections=conns, **fields)  # type: ignore[arg-type]


def test_round_trip_of_both_families() -> None:
    original = chunk((conn4(1), conn6(2), conn4(3)))
    data = CODEC.encode(original)
    assert is_connlist(data)
    assert CODEC.decode(data) == original


def test_an_empty_list_round_trips_and_is_small() -> None:
    data = CODEC.encode(chunk())
    assert CODEC.decode(data) == chunk()
    assert len(data) < 50


def test_a_heartbeat_is_not_a_connection_list() -> None:
    assert not is_connlist(b"HS\x02....")
    assert not is_connlist(b"")
    with pytest.raises(BadMagicError):
        CODEC.decode(b"HS\x02" + bytes(40))


def test_forged_other_cluster_other_version_truncated_oversized_refused() -> None:
    data = CODEC.encode(chunk((conn4(1),)))
    flipped = data[:20] + bytes([data[20] ^ 1]) + data[21:]
    with pytest.raises(BadMacError):
        CODEC.decode(flipped)
    with pytest.raises(BadMacError):
        ConnListCodec(Codec("lab", bytes(32))).decode(data)
    with pytest.raises(WrongClusterError):
        ConnListCodec(Codec("other", SECRET)).decode(data)
    with pytest.raises(BadVersionError):
        CODEC.decode(data[:2] + b"\x09" + data[3:])
    with pytest.raises(TruncatedError):
        CODEC.decode(data[:-1])
    with pytest.raises(OversizedError):
        CODEC.decode(data + bytes(MAX_MESSAGE))


def test_a_sealed_but_malformed_body_is_refused() -> None:
    def sealed(body: bytes) -> bytes:
        total = 9 + len(body) + 16
        head = b"HT\x01" + CODEC.codec.tag + struct.pack(">H", total)
        return head + body + CODEC.codec.seal(head + body)

    good = b"\x05alpha" + struct.pack(">Q", 1) + b"\x01\x01\x00\x01"
    assert CODEC.decode(sealed(good + b"\x00")).connections == ()
    with pytest.raises(MalformedError):
        CODEC.decode(sealed(good + b"\x01\x05" + bytes(12)))  # family 5
    with pytest.raises(MalformedError):
        CODEC.decode(sealed(good + b"\x00\x00"))  # a byte after the body
    with pytest.raises(MalformedError):
        CODEC.decode(sealed(good[:-2] + b"\x01\x01\x00"))  # chunk 1 of 1
    with pytest.raises(MalformedError):
        CODEC.decode(sealed(b"\x00" + good[6:] + b"\x00"))  # no sender


def test_replayed_chunks_are_refused_by_the_heartbeats_guard() -> None:
    guard = ReplayGuard()
    first = CODEC.decode(CODEC.encode(chunk(seq=5)))
    assert guard.admit(first.sender, first.boot, first.seq) is None
    assert guard.admit(first.sender, first.boot, first.seq) is ReplayReason.REPLAYED
    older = CODEC.decode(CODEC.encode(chunk(seq=9, boot=6 << 32)))
    assert guard.admit(older.sender, older.boot, older.seq) is ReplayReason.OLD_BOOT


def test_encode_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="not a valid part"):
        CODEC.encode(chunk(index=1, count=1))
    with pytest.raises(ValueError, match="sender"):
        CODEC.encode(chunk(sender=""))
    with pytest.raises(ValueError, match="families"):
        CODEC.encode(chunk((Connection(VIP4, 1, IPv6Address("2001:db8::1"), 2),)))
    with pytest.raises(ValueError, match="exceeds"):
        CODEC.encode(chunk(tuple(conn4(i) for i in range(100))))


def test_a_long_list_goes_as_chunks_that_each_fit_and_reassemble() -> None:
    conns = tuple(conn4(i) for i in range(300)) + tuple(conn6(i) for i in range(100))
    messages = CODEC.encode_all("alpha", 7 << 32, 11, 3, conns)
    assert len(messages) > 5
    assert all(len(m) <= MAX_MESSAGE for m in messages)
    decoded = [CODEC.decode(m) for m in messages]
    assert [c.seq for c in decoded] == list(range(11, 11 + len(messages)))
    assert {(c.index, c.count, c.generation) for c in decoded} == {
        (i, len(messages), 3) for i in range(len(messages))
    }
    store = ConnListStore()
    # Out of order, with a duplicate: complete only once every part is in.
    results = [store.add(c) for c in [*reversed(decoded[1:]), decoded[2], decoded[0]]]
    assert results == [False] * len(decoded) + [True]
    assert store.connections("alpha") == conns


def test_split_caps_the_number_of_chunks() -> None:
    parts = split([conn4(i) for i in range(MAX_CHUNKS * 60)])
    assert len(parts) == MAX_CHUNKS
    assert split([]) == [()]


def test_the_store_keeps_the_newest_complete_generation() -> None:
    store = ConnListStore()
    old = tuple(conn4(i) for i in range(3))
    new = (conn4(9),)
    assert store.add(chunk(old, generation=1))
    # A newer generation half arrived does not replace the complete older one.
    assert not store.add(chunk(new, generation=2, index=0, count=2))
    assert store.connections("alpha") == old
    assert store.add(chunk((), generation=2, index=1, count=2))
    assert store.connections("alpha") == new
    # Late parts of older generations, and refreshes of the current one, change nothing.
    assert not store.add(chunk(old, generation=1))
    assert not store.add(chunk((), generation=2, index=1, count=2))
    assert store.connections("alpha") == new
    # A new boot of the sender starts over at any generation.
    assert store.add(chunk(old, boot=8 << 32, generation=1))
    assert store.connections("alpha") == old
    assert store.summary() == {"alpha": 3}
    assert store.senders() == ["alpha"]
    assert store.connections("beta") == ()


def test_an_abandoned_assembly_gives_way_to_a_newer_one() -> None:
    store = ConnListStore()
    assert not store.add(chunk((conn4(1),), generation=4, index=0, count=3))
    assert store.add(chunk((conn4(2),), generation=5))
    assert not store.add(chunk((conn4(1),), generation=4, index=1, count=3))
    assert store.connections("alpha") == (conn4(2),)


def test_forget_drops_only_the_tickled_addresses() -> None:
    store = ConnListStore()
    store.add(chunk((conn4(1), conn6(1))))
    store.forget("alpha", [VIP4])
    store.forget("nobody", [VIP4])
    assert store.connections("alpha") == (conn6(1),)
    assert connections_on((conn4(1), conn6(1)), [VIP6]) == (conn6(1),)


addresses4 = st.integers(0, 2**32 - 1).map(IPv4Address)
addresses6 = st.integers(0, 2**128 - 1).map(IPv6Address)
ports = st.integers(0, 65535)
connections = st.one_of(
    st.builds(Connection, addresses4, ports, addresses4, ports),
    st.builds(Connection, addresses6, ports, addresses6, ports),
)


@FUZZ
@given(
    conns=st.lists(connections, max_size=20),
    sender=st.text(min_size=1, max_size=30),
    boot=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    generation=st.integers(0, 2**64 - 1),
)
def test_any_list_round_trips(
    conns: list[Connection], sender: str, boot: int, seq: int, generation: int
) -> None:
    original = Chunk(sender, boot, seq, generation, 0, 1, tuple(conns))
    try:
        data = CODEC.encode(original)
    except ValueError:
        return  # a name of lone surrogates, or too long to fit
    assert CODEC.decode(data) == original


@FUZZ
@given(st.binary(max_size=1100))
def test_any_bytes_decode_or_raise_a_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        CODEC.decode(b"HT" + data)


@FUZZ
@given(data=st.data())
def test_any_change_to_a_message_is_refused(data: st.DataObject) -> None:
    message = CODEC.encode(chunk((conn4(1), conn6(2))))
    position = data.draw(st.integers(0, len(message) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = message[:position] + bytes([message[position] ^ flip]) + message[position + 1 :]
    with pytest.raises(WireError):
        CODEC.decode(changed)
