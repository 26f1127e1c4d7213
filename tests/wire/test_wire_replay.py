"""Replay protection: higher seq in the same boot, or a boot never seen; old boots stay closed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.wire.replay import ReplayGuard, ReplayReason

REPLAYED = ReplayReason.REPLAYED
OLD_BOOT = ReplayReason.OLD_BOOT


def test_first_message_then_only_higher_seq() -> None:
    guard = ReplayGuard()
    assert guard.last("b") is None
    assert guard.admit("b", 7, 10) is None
    assert guard.admit("b", 7, 10) is REPLAYED
    assert guard.admit("b", 7, 9) is REPLAYED
    assert guard.admit("b", 7, 14) is None  # gaps are loss, not an attack
    assert guard.last("b") == (7, 14)


def test_new_boot_accepted_old_boot_rejected() -> None:
    guard = ReplayGuard()
    assert guard.admit("b", 1, 500) is None
    assert guard.admit("b", 2, 0) is None  # restarted: seq starts again
    assert guard.admit("b", 1, 501) is OLD_BOOT  # a recording of the previous run
    assert guard.admit("b", 2, 1) is None
    assert guard.last("b") == (2, 1)


def test_senders_are_independent() -> None:
    guard = ReplayGuard()
    assert guard.admit("a", 1, 5) is None
    assert guard.admit("b", 1, 5) is None
    assert guard.admit("a", 1, 5) is REPLAYED


def test_check_does_not_record() -> None:
    guard = ReplayGuard()
    assert guard.check("b", 1, 1) is None
    assert guard.admit("b", 1, 1) is None
    assert guard.check("b", 1, 2) is None
    assert guard.check("b", 1, 2) is None
    assert guard.last("b") == (1, 1)
    assert guard.check("b", 1, 1) is REPLAYED


def test_every_earlier_boot_stays_closed() -> None:
    guard = ReplayGuard()
    for boot in (1, 2, 3, 4):
        assert guard.admit("b", boot, 0) is None
    for old in (1, 2, 3):
        assert guard.check("b", old, 9) is OLD_BOOT
    assert guard.check("b", 5, 0) is None


def test_one_guard_per_link_lets_copies_on_other_links_through() -> None:
    udp, serial = ReplayGuard(), ReplayGuard()
    assert udp.admit("b", 1, 1) is None
    assert serial.admit("b", 1, 1) is None


events = st.lists(
    st.tuples(st.sampled_from("ab"), st.integers(0, 5), st.integers(0, 6)), max_size=40
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(events)
def test_against_a_model(stream: list[tuple[str, int, int]]) -> None:
    # The model: boots only move forward; within a boot, seqs only move forward.
    guard = ReplayGuard()
    current: dict[str, tuple[int, int]] = {}
    for sender, boot, seq in stream:
        if sender not in current:
            want = None
        elif boot == current[sender][0]:
            want = None if seq > current[sender][1] else REPLAYED
        elif boot < current[sender][0]:
            want = OLD_BOOT
        else:
            want = None
        assert guard.admit(sender, boot, seq) is want
        if want is None:
            current[sender] = (boot, seq)
        # Never accepted twice: an accepted (sender, boot, seq) is refused afterwards.
        assert guard.check(sender, *current[sender]) is not None
