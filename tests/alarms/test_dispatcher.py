"""The dispatcher: filters, retries with backoff, per-attempt timeouts, dropping the oldest
of a full queue, failures in the history (rate-limited) and in the status counters."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from hotstandby.agent.alarms import Alarm, DeliveryError, Dispatcher
from hotstandby.agent.alarms.dispatcher import HISTORY_EVERY, backoff
from hotstandby.core.messages import Severity

from .helpers import alarm, spec, until


class FakeChannel:
    """Answers each delivery from a script: None (delivered), an exception, or "hang"."""

    def __init__(self, script: list[Any] | None = None) -> None:
        self.script = list(script or [])
        self.attempts: list[Alarm] = []
        self.delivered: list[Alarm] = []
        self.gate: asyncio.Event | None = None  # when set: every delivery waits for it

    async def deliver(self, a: Alarm) -> None:
        self.attempts.append(a)
        if self.gate is not None:
            await self.gate.wait()
        step = self.script.pop(0) if self.script else None
        if step == "hang":
            await asyncio.Event().wait()
        if isinstance(step, BaseException):
            raise step
        self.delivered.append(a)


class History:
    """Records what the dispatcher puts in the history."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kind: str, message: str, rule: str = "", **data: Any) -> None:
        self.records.append((kind, message, data))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.records]


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(body: Any) -> None:
    asyncio.run(asyncio.wait_for(body(), 10))


def test_backoff_doubles_is_capped_and_jittered() -> None:
    s = spec(backoff="1s", max_backoff="5s")
    rng = random.Random(7)
    waits = [backoff(s, attempt, rng) for attempt in range(1, 6)]
    bases = [1, 2, 4, 5, 5]
    assert all(b * 0.5 <= w <= b for w, b in zip(waits, bases, strict=True))
    assert len({round(w / b, 6) for w, b in zip(waits, bases, strict=True)}) > 1  # jitter


def test_a_failing_channel_is_retried_until_it_delivers() -> None:
    async def body() -> None:
        history = History()
        channel = FakeChannel([DeliveryError("HTTP 500"), DeliveryError("HTTP 502"), None])
        d = Dispatcher([(spec(retries=3), channel)], history)
        d.start()
        d.raise_alarm(alarm())
        await until(lambda: bool(channel.delivered), "the delivery")
        status = d.status()["syslog"]
        assert (status["delivered"], status["failed"], status["pending"]) == (1, 2, 0)
        assert status["last_error"] == "HTTP 502"
        assert len(channel.attempts) == 3
        # The first failure of the run is in the history, the rest rate-limited; then back.
        assert history.kinds() == ["channel.failed", "channel.recovered"]
        assert "HTTP 500" in history.records[0][1]
        await d.close()

    run(body)


def test_an_alarm_is_given_up_after_the_last_retry_and_the_next_goes_on() -> None:
    async def body() -> None:
        history = History()
        failures = [DeliveryError("refused")] * 3
        channel = FakeChannel([*failures, None])
        d = Dispatcher([(spec(retries=2), channel)], history, clock=Clock())
        d.start()
        d.raise_alarm(alarm(n=0))
        d.raise_alarm(alarm(n=1))
        await until(lambda: bool(channel.delivered), "the second alarm delivered")
        assert [a.epoch for a in channel.delivered] == [3]
        s = d.status()["syslog"]
        assert (s["failed"], s["given_up"], s["delivered"]) == (3, 1, 1)
        await d.close()

    run(body)


def test_each_attempt_is_bounded_by_the_timeout() -> None:
    async def body() -> None:
        history = History()
        channel = FakeChannel(["hang", None])
        d = Dispatcher([(spec(timeout="50ms", retries=1), channel)], history)
        d.start()
        d.raise_alarm(alarm())
        await until(lambda: bool(channel.delivered), "the retry after the timeout")
        assert d.status()["syslog"]["last_error"] == "no answer within 0.05s"
        await d.close()

    run(body)


def test_a_full_queue_drops_its_oldest_alarm_and_counts_it() -> None:
    async def body() -> None:
        history = History()
        channel = FakeChannel()
        channel.gate = asyncio.Event()
        d = Dispatcher([(spec(queue=2), channel)], history)
        d.start()
        d.raise_alarm(alarm(n=0))
        await until(lambda: len(channel.attempts) == 1, "the first alarm taken")
        for n in (1, 2, 3):
            d.raise_alarm(alarm(n=n))  # never waits, however stuck the channel is
        s = d.status()["syslog"]
        assert (s["pending"], s["dropped"]) == (3, 1)  # one in delivery, two queued
        assert history.kinds() == ["channel.failed"] and "queue full" in history.records[0][1]
        channel.gate.set()
        await until(lambda: len(channel.delivered) == 3, "the queue drained")
        assert [a.epoch for a in channel.delivered] == [2, 4, 5]  # alarm 1 was the oldest
        await d.close()

    run(body)


def test_channels_get_only_what_their_filters_want_and_do_not_wait_for_each_other() -> None:
    async def body() -> None:
        loud, quiet, fences = FakeChannel(), FakeChannel(), FakeChannel()
        loud.gate = asyncio.Event()  # stuck: must not hold up the others
        d = Dispatcher(
            [
                (spec(name="loud"), loud),
                (spec(name="quiet", min_severity="critical"), quiet),
                (spec(name="fences", kinds=["fence", "fence_failed"]), fences),
            ],
            History(),
        )
        d.start()
        d.raise_alarm(alarm("link_down", Severity.WARNING))
        d.raise_alarm(alarm("takeover", Severity.CRITICAL))
        d.raise_alarm(alarm("fence", Severity.WARNING))
        await until(lambda: len(quiet.delivered) == 1 and len(fences.delivered) == 1, "deliveries")
        assert [a.kind for a in quiet.delivered] == ["takeover"]
        assert [a.kind for a in fences.delivered] == ["fence"]
        assert d.status()["loud"]["pending"] == 3 and not loud.delivered
        loud.gate.set()
        await until(lambda: len(loud.delivered) == 3, "the stuck channel catching up")
        await d.close()

    run(body)


def test_failures_reach_the_history_at_most_once_a_minute_per_channel() -> None:
    async def body() -> None:
        history = History()
        clock = Clock()
        channel = FakeChannel([DeliveryError("down")] * 6)
        d = Dispatcher([(spec(retries=2), channel)], history, clock=clock)
        d.start()
        d.raise_alarm(alarm(n=0))
        await until(lambda: d.status()["syslog"]["given_up"] == 1, "the first given up")
        assert history.kinds() == ["channel.failed"]
        clock.now += HISTORY_EVERY
        d.raise_alarm(alarm(n=1))
        await until(lambda: d.status()["syslog"]["given_up"] == 2, "the second given up")
        assert history.kinds() == ["channel.failed", "channel.failed"]
        assert d.status()["syslog"]["failed"] == 6
        await d.close()

    run(body)


def test_a_channel_bug_is_a_failure_not_the_end_of_its_task() -> None:
    async def body() -> None:
        channel = FakeChannel([RuntimeError("oops"), None])
        d = Dispatcher([(spec(retries=1), channel)], History())
        d.start()
        d.raise_alarm(alarm())
        await until(lambda: bool(channel.delivered), "the retry")
        assert d.status()["syslog"]["last_error"] == "RuntimeError: oops"
        await d.close()

    run(body)


@pytest.mark.parametrize("pending", [0, 2])
def test_close_gives_queued_alarms_a_moment_then_stops(pending: int) -> None:
    async def body() -> None:
        channel = FakeChannel()
        d = Dispatcher([(spec(), channel)], History())
        d.start()
        for n in range(pending):
            d.raise_alarm(alarm(n=n))
        await d.close(grace=2.0)
        assert len(channel.delivered) == pending
        assert not d.tasks

    run(body)
