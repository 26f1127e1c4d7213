"""Serial framing: frames survive noise, partial reads and garbage; corrupt ones never pass."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.wire.framing import (
    DEFAULT_MAX_PAYLOAD,
    HEADER_SIZE,
    OVERHEAD,
    SYNC,
    Deframer,
    encode_frame,
)

FUZZ = settings(derandomize=True, max_examples=300, deadline=None)
payloads = st.binary(min_size=1, max_size=120)


def check_accounting(deframer: Deframer, fed: int, returned: list[bytes]) -> None:
    """Every byte fed is in a returned frame, discarded, or still pending."""
    framed = sum(len(p) + OVERHEAD for p in returned)
    assert framed + deframer.stats.discarded_bytes + deframer.pending == fed


def test_frame_layout() -> None:
    frame = encode_frame(b"hello")
    assert frame[:2] == SYNC
    assert struct.unpack(">H", frame[2:4]) == (5,)
    assert frame[HEADER_SIZE:-4] == b"hello"
    assert struct.unpack(">I", frame[-4:]) == (zlib.crc32(frame[2:-4]),)
    assert len(frame) == 5 + OVERHEAD


def test_round_trip_byte_by_byte() -> None:
    deframer = Deframer()
    stream = encode_frame(b"one") + encode_frame(SYNC * 3) + encode_frame(b"three")
    out: list[bytes] = []
    for byte in stream:
        out += deframer.feed(bytes([byte]))
    assert out == [b"one", SYNC * 3, b"three"]
    assert deframer.stats.frames == 3
    assert deframer.stats.discarded_bytes == 0
    assert deframer.pending == 0


def test_garbage_bad_crc_bad_header_oversized_are_counted() -> None:
    deframer = Deframer(max_payload=16)
    good = encode_frame(b"ok")
    bad_crc = bytearray(encode_frame(b"corrupt"))
    bad_crc[HEADER_SIZE] ^= 0xFF
    bad_header = bytearray(encode_frame(b"hdr"))
    bad_header[3] ^= 0x01
    big = encode_frame(bytes(17), max_payload=17)
    zero_len = SYNC + b"\0\0" + bytes([zlib.crc32(SYNC + b"\0\0") & 0xFF]) + bytes(4)
    stream = b"noise" + bytes(bad_crc) + bytes(bad_header) + big + zero_len + good
    out = deframer.feed(stream)
    assert out == [b"ok"]
    assert deframer.stats.bad_crc >= 1
    assert deframer.stats.bad_header >= 2
    assert deframer.stats.oversized == 1
    check_accounting(deframer, len(stream), out)


def test_partial_sync_is_kept_and_reset_discards() -> None:
    deframer = Deframer()
    assert deframer.feed(b"xx" + SYNC[:1]) == []
    assert deframer.pending == 1
    assert deframer.feed(SYNC[1:] + b"\x00") == []
    assert deframer.pending == 3
    deframer.reset()
    assert deframer.pending == 0
    assert deframer.stats.discarded_bytes == 5
    assert deframer.feed(encode_frame(b"after")) == [b"after"]


def test_limits() -> None:
    with pytest.raises(ValueError):
        encode_frame(b"")
    with pytest.raises(ValueError):
        encode_frame(bytes(DEFAULT_MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        Deframer(max_payload=0)
    with pytest.raises(ValueError):
        Deframer(max_payload=0x10000)


@FUZZ
@given(
    st.lists(payloads, min_size=1, max_size=6),
    st.binary(max_size=300),
    st.lists(st.integers(1, 64), max_size=20),
)
def test_intact_frames_after_noise_are_all_recovered(
    frames: list[bytes], noise: bytes, chunks: list[int]
) -> None:
    # Noise first, then intact frames, fed in arbitrary read sizes. A false start in
    # the noise may hold frames back until enough bytes refute it; the line keeps
    # carrying beats, stood in for here by a stretch of idle bytes.
    deframer = Deframer(max_payload=256)
    stream = noise + b"".join(encode_frame(f, 256) for f in frames) + bytes(256 + OVERHEAD)
    out: list[bytes] = []
    pos = 0
    for size in [*chunks, len(stream)]:
        out += deframer.feed(stream[pos : pos + size])
        pos += size
    # A noise stretch could only add a frame by forging a CRC-32 and a header check.
    assert out[-len(frames) :] == frames
    assert len(out) == len(frames)
    check_accounting(deframer, len(stream), out)


@FUZZ
@given(st.lists(payloads, min_size=1, max_size=8, unique=True), st.data())
def test_noise_at_random_positions_never_yields_a_corrupt_payload(
    frames: list[bytes], data: st.DataObject
) -> None:
    # Noise is inserted at random offsets, also inside frames. Frames left whole are
    # recovered in order; frames hit by noise are dropped; nothing else comes out.
    encoded = [encode_frame(f, 256) for f in frames]
    stream = bytearray(b"".join(encoded))
    starts = [sum(len(e) for e in encoded[:i]) for i in range(len(encoded))]
    hits = sorted(
        (data.draw(st.integers(0, len(stream))), data.draw(st.binary(min_size=1)))
        for _ in range(data.draw(st.integers(0, 4)))
    )
    noisy = bytearray()
    prev = 0
    for offset, noise in hits:
        noisy += stream[prev:offset] + noise
        prev = offset
    noisy += stream[prev:] + bytes(256 + OVERHEAD)
    # A frame is intact when no noise lands strictly inside it.
    intact = [
        f
        for f, start, e in zip(frames, starts, encoded, strict=True)
        if not any(start < off < start + len(e) for off, _ in hits)
    ]
    deframer = Deframer(max_payload=256)
    out = deframer.feed(bytes(noisy))
    assert all(p in frames for p in out)
    assert [p for p in out if p in intact] == intact
    check_accounting(deframer, len(noisy), out)


@FUZZ
@given(st.lists(payloads, min_size=1, max_size=4), st.data())
def test_bit_flips_never_yield_a_corrupt_payload(frames: list[bytes], data: st.DataObject) -> None:
    stream = bytearray(b"".join(encode_frame(f) for f in frames))
    for _ in range(data.draw(st.integers(1, 3))):
        bit = data.draw(st.integers(0, len(stream) * 8 - 1))
        stream[bit // 8] ^= 1 << (bit % 8)
    out = Deframer().feed(bytes(stream) + bytes(DEFAULT_MAX_PAYLOAD + OVERHEAD))
    assert all(p in frames for p in out)


@FUZZ
@given(st.binary(max_size=2000))
def test_pure_noise_yields_nothing_and_stays_bounded(noise: bytes) -> None:
    deframer = Deframer(max_payload=64)
    assert deframer.feed(noise) == []
    assert deframer.pending <= 64 + OVERHEAD
    check_accounting(deframer, len(noise), [])
