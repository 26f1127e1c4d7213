"""The witness wire format: round trips, and every kind of bad input dropped with its reason."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby.wire.codec import WireError
from hotstandby.witness.lease import LeaseTable, Ledger
from hotstandby.witness.protocol import (
    MAX_DATAGRAM,
    Answer,
    Kind,
    Request,
    Verdict,
    WitnessCodec,
)

SECRET = b"k" * 32
codec = WitnessCodec("lab", SECRET)
REQ = Request("alpha", 1_000_000, Kind.CLAIM, 7)

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16)
u64 = st.integers(0, 2**64 - 1)


def reason(data: bytes, c: WitnessCodec = codec) -> str:
    """Why `c` drops `data` as a request."""
    with pytest.raises(WireError) as caught:
        c.decode_request(data)
    return caught.value.reason


@given(names, u64, st.sampled_from(Kind), u64)
def test_requests_round_trip(node: str, number: int, kind: Kind, epoch: int) -> None:
    req = Request(node, number, kind, epoch)
    assert codec.decode_request(codec.encode_request(req)) == req


@given(names, u64, st.sampled_from(Verdict), st.none() | names, st.integers(0, 10**6), u64)
def test_answers_round_trip(
    node: str, number: int, verdict: Verdict, holder: str | None, millis: int, last: int
) -> None:
    answer = Answer(node, number, verdict, holder, millis / 1000, last)
    assert codec.decode_answer(codec.encode_answer(answer)) == answer


def test_a_forged_request_is_a_bad_mac() -> None:
    data = bytearray(codec.encode_request(REQ))
    data[12] ^= 0x01  # inside the body: the node name
    assert reason(bytes(data)) == "bad_mac"
    assert reason(WitnessCodec("lab", b"x" * 32).encode_request(REQ)) == "bad_mac"


def test_truncated_wrong_cluster_version_magic_and_size() -> None:
    data = codec.encode_request(REQ)
    assert reason(data[:-3]) == "truncated"
    assert reason(data[:5]) == "truncated"
    assert reason(WitnessCodec("other", SECRET).encode_request(REQ)) == "wrong_cluster"
    assert reason(data[:2] + b"\x09" + data[3:]) == "bad_version"
    assert reason(b"GET / HTTP/1.0\r\n") == "bad_magic"
    assert reason(data + b"\x00" * MAX_DATAGRAM) == "oversized"
    assert reason(data + b"\x00") == "malformed"
    short = data[:8] + struct.pack(">H", 5) + data[10:]
    assert reason(short) == "malformed"


def test_an_answer_is_never_taken_for_a_request() -> None:
    answer = codec.encode_answer(Answer("alpha", 1, Verdict.GRANTED))
    assert reason(answer) == "wrong_type"
    with pytest.raises(WireError) as caught:
        codec.decode_answer(codec.encode_request(REQ))
    assert caught.value.reason == "wrong_type"


def test_names_too_long_are_refused_at_encoding() -> None:
    with pytest.raises(ValueError, match="node name"):
        codec.encode_request(Request("n" * 65, 1, Kind.RENEW, 0))


@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_a_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        codec.decode_request(data)


def test_a_replayed_request_is_answered_again_but_not_reapplied() -> None:
    ledger = Ledger(LeaseTable(span=2.0))
    ledger, first, why = ledger.apply(REQ, 0.0)
    assert first.verdict is Verdict.GRANTED and why is None
    # The same datagram a second later (a retry or a replay): the same answer,
    # and the lease still runs from the first arrival.
    again, answer, why = ledger.apply(REQ, 1.0)
    assert (answer, why) == (first, "repeated")
    assert again.table.expiry == 2.0
    older = Request("alpha", REQ.number - 1, Kind.RELEASE, 7)
    after, stale, why = again.apply(older, 1.5)
    assert why == "stale" and stale.verdict is Verdict.STALE and stale.last == REQ.number
    assert after.table.holder == "alpha"
