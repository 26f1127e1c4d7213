"""Loss from sequence gaps, round trip from echoes, per (link, peer)."""

from __future__ import annotations

import pytest

from hotstandby.agent.link_quality import ECHOES, WINDOW, LinkQuality


def test_unknown_link_or_peer_gives_none() -> None:
    q = LinkQuality()
    assert q.loss("net", "beta") is None
    assert q.round_trip("net", "beta") is None
    q.received("net", "beta", boot=1, seq=10, echo=None, at=0.0)
    assert q.loss("serial", "beta") is None
    assert q.loss("net", "gamma") is None
    assert q.round_trip("net", "beta") is None  # heard, but no echo yet


def test_no_gaps_no_loss() -> None:
    q = LinkQuality()
    for seq in range(100, 150):
        q.received("net", "beta", 1, seq, None, 0.0)
    assert q.loss("net", "beta") == 0.0


def test_loss_while_the_first_window_fills() -> None:
    q = LinkQuality()
    for seq in range(0, 100, 2):  # every other one lost
        q.received("net", "beta", 1, seq, None, 0.0)
    assert q.loss("net", "beta") == pytest.approx(1 - 50 / 99)


def test_loss_of_the_last_complete_window() -> None:
    q = LinkQuality()
    # First window: one in four lost.
    for seq in range(WINDOW):
        if seq % 4 != 3:
            q.received("net", "beta", 1, seq, None, 0.0)
    # The window closes on the first seq at or past its end.
    q.received("net", "beta", 1, WINDOW, None, 0.0)
    first = q.loss("net", "beta")
    assert first == pytest.approx(1 - (WINDOW * 3 // 4 + 1) / (WINDOW + 1))
    # The next window fills without loss: the figure stays until it completes.
    for seq in range(WINDOW + 1, 2 * WINDOW):
        q.received("net", "beta", 1, seq, None, 0.0)
    assert q.loss("net", "beta") == first
    q.received("net", "beta", 1, 2 * WINDOW, None, 0.0)  # WINDOW numbers since the last
    assert q.loss("net", "beta") == 0.0


def test_a_long_silence_counts_as_loss() -> None:
    q = LinkQuality()
    q.received("net", "beta", 1, 0, None, 0.0)
    q.received("net", "beta", 1, 3 * WINDOW, None, 0.0)
    assert q.loss("net", "beta") == pytest.approx(1 - 2 / (3 * WINDOW + 1))


def test_a_new_boot_starts_afresh() -> None:
    q = LinkQuality()
    for seq in range(0, 60, 3):
        q.received("net", "beta", 1, seq, None, 0.0)
    assert q.loss("net", "beta") > 0.5  # type: ignore[operator]
    q.received("net", "beta", 2, 5_000_000, None, 0.0)
    assert q.loss("net", "beta") == 0.0
    q.received("net", "beta", 2, 5_000_001, None, 0.0)
    assert q.loss("net", "beta") == 0.0


def test_links_and_peers_are_counted_apart() -> None:
    q = LinkQuality()
    for seq in range(10):
        q.received("net", "beta", 1, seq, None, 0.0)
        if seq % 2 == 0:
            q.received("serial", "beta", 1, seq, None, 0.0)
        q.received("net", "gamma", 7, seq * 5, None, 0.0)
    assert q.loss("net", "beta") == 0.0
    assert q.loss("serial", "beta") == pytest.approx(1 - 5 / 9)
    assert q.loss("net", "gamma") == pytest.approx(1 - 10 / 46)


def test_round_trip_is_the_smallest_recent_echo() -> None:
    q = LinkQuality()
    q.sent(1, 10.0)
    q.sent(2, 10.1)
    q.received("net", "beta", 1, 100, echo=1, at=10.030)  # 30 ms
    q.received("net", "beta", 1, 101, echo=2, at=10.112)  # 12 ms
    q.received("net", "beta", 1, 102, echo=2, at=10.190)  # the same echo, held longer
    assert q.round_trip("net", "beta") == pytest.approx(0.012)
    assert q.round_trip("serial", "beta") is None
    q.received("net", "beta", 1, 103, echo=99, at=11.0)  # never sent by us: ignored
    assert q.round_trip("net", "beta") == pytest.approx(0.012)


def test_only_recent_echoes_count() -> None:
    q = LinkQuality()
    q.sent(0, 0.0)
    q.received("net", "beta", 1, 0, echo=0, at=0.001)  # 1 ms, long ago
    for seq in range(1, ECHOES + 1):
        q.sent(seq, float(seq))
        q.received("net", "beta", 1, seq, echo=seq, at=seq + 0.005)
    assert q.round_trip("net", "beta") == pytest.approx(0.005)


def test_send_times_are_pruned_oldest_first() -> None:
    q = LinkQuality()
    for seq in range(10 * ECHOES):
        q.sent(seq, float(seq))
    q.received("net", "beta", 1, 0, echo=0, at=1000.0)  # forgotten: no echo time
    assert q.round_trip("net", "beta") is None
    last = 10 * ECHOES - 1
    q.received("net", "beta", 1, 1, echo=last, at=last + 0.002)
    assert q.round_trip("net", "beta") == pytest.approx(0.002)


def test_a_polled_link_counts_one_overwritten_beat_as_sampling_not_loss() -> None:
    q = LinkQuality(polled=frozenset({"disk"}))
    # Every third read finds the slot rewritten twice since the last read: one overwritten.
    seqs = [s for s in range(WINDOW + 1) if s % 3 != 2]
    for seq in seqs:
        q.received("disk", "beta", 1, seq, echo=None, at=0.0)
        q.received("net", "beta", 1, seq, echo=None, at=0.0)
    assert q.loss("disk", "beta") == 0.0
    assert q.loss("net", "beta") == pytest.approx(1 / 3, abs=0.01)


def test_a_polled_link_loses_what_is_missing_two_in_a_row() -> None:
    q = LinkQuality(polled=frozenset({"disk"}))
    # A stall: every fourth read comes after three writes (two beats never read).
    seqs = [s for s in range(WINDOW + 1) if s % 4 in (0, 3)]
    for seq in seqs:
        q.received("disk", "beta", 1, seq, echo=None, at=0.0)
    assert q.loss("disk", "beta") == pytest.approx(1 / 4, abs=0.02)
