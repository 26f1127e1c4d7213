"""The overlap checker's verdicts on timelines made by hand, and its looks at this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hotstandby.lab.overlap import (
    Overlap,
    Sample,
    find_overlaps,
    holds_address,
    runs_command,
)


def at(t: float, **holders: str) -> Sample:
    """A sample at t: resource=comma-separated nodes."""
    return Sample(
        t, {r: frozenset(n for n in nodes.split(",") if n) for r, nodes in holders.items()}
    )


def test_a_clean_handover_has_no_overlap() -> None:
    timeline = [
        at(0.0, ip="alpha", volume="alpha"),
        at(1.0, ip="", volume="alpha"),
        at(1.1, ip="", volume=""),
        at(1.2, ip="beta", volume="beta"),
    ]
    assert find_overlaps(timeline) == []


def test_two_holders_of_one_resource_are_an_overlap_with_its_length() -> None:
    timeline = [
        at(0.0, ip="alpha", volume="alpha"),
        at(2.0, ip="alpha,beta", volume="alpha"),
        at(2.5, ip="alpha,beta", volume="alpha,beta"),
        at(3.0, ip="beta", volume="alpha,beta"),
        at(3.25, ip="beta", volume="beta"),
    ]
    assert find_overlaps(timeline) == [
        Overlap("ip", frozenset({"alpha", "beta"}), 2.0, 1.0),
        Overlap("volume", frozenset({"alpha", "beta"}), 2.5, 0.75),
    ]


def test_an_overlap_still_open_at_the_end_and_a_single_sample_count() -> None:
    timeline = [
        at(0.0, service="alpha,beta"),
        at(0.015, service="beta"),
        at(5.0, service="alpha,beta"),
        at(6.0, service="alpha,beta"),
    ]
    found = find_overlaps(timeline)
    assert [(o.start, o.duration) for o in found] == [(0.0, 0.015), (5.0, 1.0)]
    assert "service held by alpha, beta from t=5.000s for 1000 ms" in found[1].describe()


def test_an_empty_timeline_has_no_overlap() -> None:
    assert find_overlaps([]) == []


def test_this_namespace_holds_its_loopback_address_and_not_a_documentation_one() -> None:
    assert holds_address(os.getpid(), "127.0.0.1")
    assert not holds_address(os.getpid(), "203.0.113.77")


def test_a_child_is_found_by_its_command_line() -> None:
    marker = "hfs-overlap-marker"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        # Until the child has exec'd, its command line is this interpreter's.
        deadline = time.monotonic() + 10
        while not runs_command([child.pid], marker):
            assert time.monotonic() < deadline, "the child's command line never showed"
            time.sleep(0.01)
        assert not runs_command([child.pid], "hfs-something-else")
    finally:
        child.kill()
        child.wait(10)
    assert not runs_command([child.pid], marker)


@pytest.mark.parametrize("address", ["not-an-address", "2001:db8::1"])
def test_only_ipv4_addresses_are_looked_up(address: str) -> None:
    with pytest.raises(ValueError):
        holds_address(os.getpid(), address)
