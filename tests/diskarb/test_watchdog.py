"""The watchdog petting logic against a FIFO that records every pet (never a real watchdog:
an armed /dev/watchdog or softdog resets the machine when the test ends wrongly)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotstandby.agent.watchdog import Watchdog, WatchdogError, arm_watchdog

from .conftest import Recorder


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Recorder]:
    """A FIFO standing in for /dev/watchdog, and what was written to it."""
    rec = Recorder(tmp_path / f"hda-watchdog-{os.getpid()}")
    try:
        yield rec
    finally:
        rec.close()


def _until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_steps_pet_at_most_every_tenth_of_the_timeout(fifo: Recorder) -> None:
    now = [100.0]
    dog = Watchdog(str(fifo.path), 3.0, clock=lambda: now[0])
    for _ in range(5):
        dog.pet()  # the same instant: one pet
    now[0] += 0.29
    dog.pet()
    now[0] += 0.02
    dog.pet()
    assert dog.pets == 2
    _until(lambda: fifo.bytes() == b"\0\0")


def test_the_timer_pets_every_third_of_the_timeout_and_a_planned_stop_disarms(
    fifo: Recorder,
) -> None:
    async def scenario() -> None:
        steps: list[Callable[[], None]] = []
        dog = arm_watchdog(0.3, str(fifo.path), steps)
        assert dog is not None and steps == [dog.pet]
        await asyncio.sleep(0.75)  # no loop steps at all: the timer alone
        await dog.stop(planned=True)

    asyncio.run(scenario())
    _until(lambda: fifo.bytes().endswith(b"V"))
    pets = [t for t, b in fifo.got if b == b"\0"]
    assert fifo.bytes() == b"\0" * len(pets) + b"V"
    assert len(pets) >= 3  # at start, then every 0.1 s
    gaps = [b - a for a, b in itertools.pairwise(pets)]
    assert max(gaps) < 0.2


def test_a_stop_that_was_not_planned_leaves_it_armed(fifo: Recorder) -> None:
    async def scenario() -> None:
        dog = arm_watchdog(0.3, str(fifo.path), [])
        assert dog is not None
        await dog.stop(planned=False)
        count = dog.pets
        await asyncio.sleep(0.25)  # the timer is gone: no more pets
        assert dog.pets == count

    asyncio.run(scenario())
    time.sleep(0.05)
    assert b"V" not in fifo.bytes()


def test_a_stalled_loop_stops_the_pets(fifo: Recorder) -> None:
    async def scenario() -> None:
        dog = arm_watchdog(0.3, str(fifo.path), [])
        assert dog is not None
        await asyncio.sleep(0.15)
        time.sleep(0.5)  # the event loop is stuck: nothing may pet meanwhile
        await asyncio.sleep(0.15)
        await dog.stop(planned=True)

    asyncio.run(scenario())
    _until(lambda: fifo.bytes().endswith(b"V"))
    pets = [t for t, b in fifo.got if b == b"\0"]
    gaps = [b - a for a, b in itertools.pairwise(pets)]
    assert max(gaps) >= 0.45  # the hardware would have fired (timeout 0.3 s)


def test_none_configured_arms_nothing() -> None:
    assert arm_watchdog(0.0, None, []) is None


def test_a_device_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-watchdog"
    with pytest.raises(WatchdogError, match=f"cannot open the watchdog {missing}"):
        Watchdog(str(missing), 5.0)


def test_a_device_without_the_timeout_ioctl_is_said_so(
    fifo: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hotstandby.watchdog"):
        dog = Watchdog(str(fifo.path), 5.0)
    assert dog.driver_timeout is None
    assert "cannot set its timeout to 5s" in caplog.text
