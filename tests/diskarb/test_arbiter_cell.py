"""The arbitration cell codec: round trips, and every kind of bad cell refused with its reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby.agent.arbiter_cell import Cell, CellCodec, CellError
from hotstandby.config.disk_layout import SLOT_SIZE

SECRET = b"s" * 32
CODEC = CellCodec("prod", SECRET)
U64 = st.integers(0, 2**64 - 1)
NAME = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40)


@given(NAME, NAME, U64, U64, U64, U64)
def test_round_trip(writer: str, target: str, seq: int, epoch: int, req: int, rel: int) -> None:
    cell = Cell(writer, target, seq, epoch, req, rel)
    raw = CODEC.encode(cell)
    assert len(raw) == SLOT_SIZE
    assert CODEC.decode(raw) == cell


def test_a_never_written_cell_is_empty() -> None:
    assert CODEC.decode(bytes(SLOT_SIZE)) is None


def _reason(raw: bytes, codec: CellCodec = CODEC) -> str:
    with pytest.raises(CellError) as info:
        codec.decode(raw)
    return info.value.reason


RAW = CODEC.encode(Cell("alpha", "beta", 7, 3, 99, 0))


def test_another_secret_is_a_bad_mac() -> None:
    assert _reason(RAW, CellCodec("prod", b"t" * 32)) == "bad_mac"


def test_another_cluster_is_refused_before_the_mac() -> None:
    assert _reason(RAW, CellCodec("test", SECRET)) == "wrong_cluster"


@pytest.mark.parametrize("at", range(0, 60))
def test_any_flipped_byte_of_the_message_is_refused(at: int) -> None:
    garbled = bytearray(RAW)
    garbled[at] ^= 0x01
    assert _reason(bytes(garbled)) in {
        "bad_magic",
        "bad_version",
        "wrong_cluster",
        "garbled",
        "bad_mac",
    }


def test_bytes_after_the_message_are_refused() -> None:
    garbled = bytearray(RAW)
    garbled[SLOT_SIZE - 1] = 1
    assert _reason(bytes(garbled)) == "garbled"


def test_heartbeat_or_random_bytes_are_not_cells() -> None:
    assert _reason(b"HS\x01" + bytes(SLOT_SIZE - 3)) == "bad_magic"
    assert _reason(b"\xff" * SLOT_SIZE) == "bad_magic"


def test_a_forged_field_with_the_old_mac_is_refused() -> None:
    forged = CODEC.encode(Cell("alpha", "beta", 7, 3, 100, 0))
    body = len(b"HSARB") + 1 + 4 + len(b"\x05alpha\x04beta") + 32  # the mac starts here
    mixed = forged[:body] + RAW[body : body + 16] + forged[body + 16 :]
    assert mixed != RAW
    assert _reason(mixed) == "bad_mac"


def test_names_that_do_not_fit_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="cannot be stored"):
        CODEC.encode(Cell("x" * 256, "beta", 1, 1))
    with pytest.raises(ValueError, match="cannot be stored"):
        CODEC.encode(Cell("", "beta", 1, 1))
