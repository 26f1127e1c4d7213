"""The alarm dispatcher: one task and one bounded queue per channel, so a slow or failing
channel never holds up the core or the other channels.

`raise_alarm` only appends to the queues of the channels that want the alarm; when a
queue is full its oldest alarm is dropped and counted. Each channel's task delivers in
order, every attempt bounded by the channel's timeout; a failure is retried after an
exponential backoff with jitter (so two nodes' retries do not march in step), up to the
channel's retries, then the alarm is given up. Failures go to the event history (the
first of a run, then at most once a minute per channel) and to the counters `status` shows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError
from hotstandby.agent.alarms.config import ChannelSpec

HISTORY_EVERY = 60.0  # seconds between history records of one channel's failures

Record = Callable[..., None]  # (kind, message, rule, **data): the agent's history


@dataclass
class ChannelStats:
    """What `status` shows of one channel."""

    delivered: int = 0
    failed: int = 0  # failed attempts
    given_up: int = 0  # alarms dropped after the last retry
    dropped: int = 0  # alarms dropped from a full queue
    last_error: str = ""
    last_error_at: float | None = None  # wall clock
    last_delivered_at: float | None = None


def backoff(spec: ChannelSpec, attempt: int, rng: random.Random) -> float:
    """The wait before retry number `attempt` (1, 2, ...): doubling, capped, with jitter."""
    base = min(spec.max_backoff, spec.backoff * 2.0 ** (attempt - 1))
    jitter: float = rng.uniform(0.5, 1.0)
    return base * jitter


@dataclass
class Worker:
    """One channel's queue, task and counters."""

    spec: ChannelSpec
    channel: Channel
    queue: deque[Alarm]
    stats: ChannelStats = field(default_factory=ChannelStats)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    busy: bool = False  # an alarm taken from the queue is being delivered
    failing: bool = False
    reported_at: float = float("-inf")  # monotonic: last failure put in the history


class Dispatcher:
    """Routes alarms to the channels that want them, without ever waiting for one."""

    def __init__(
        self,
        channels: list[tuple[ChannelSpec, Channel]],
        record: Record,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = [
            Worker(spec, channel, deque(maxlen=spec.queue)) for spec, channel in channels
        ]
        self.record = record
        self.rng = rng or random.Random()
        self.clock = clock
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one delivery task per channel (in the running event loop)."""
        for worker in self.workers:
            self.tasks.append(asyncio.ensure_future(self._run(worker)))

    async def close(self, grace: float = 2.0) -> None:
        """Give queued alarms up to `grace` seconds to go out, then stop the tasks."""
        deadline = self.clock() + grace
        while self.clock() < deadline and any(w.queue or w.busy for w in self.workers):
            await asyncio.sleep(0.05)
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=1.0)
        self.tasks.clear()

    def raise_alarm(self, alarm: Alarm) -> None:
        """Queue the alarm for every channel that wants it; never blocks."""
        for w in self.workers:
            if not w.spec.filter.wants(alarm):
                continue
            if len(w.queue) == w.queue.maxlen:
                w.stats.dropped += 1  # deque(maxlen) drops the oldest on append
                self._report(w, f"queue full: dropped the oldest alarm ({w.stats.dropped} so far)")
            w.queue.append(alarm)
            w.wake.set()

    async def _run(self, w: Worker) -> None:
        while True:
            if not w.queue:
                w.wake.clear()
                await w.wake.wait()
                continue
            alarm = w.queue.popleft()
            w.busy = True
            try:
                await self._deliver(w, alarm)
            finally:
                w.busy = False

    async def _deliver(self, w: Worker, alarm: Alarm) -> None:
        spec = w.spec
        for attempt in range(spec.retries + 1):
            if attempt:
                await asyncio.sleep(backoff(spec, attempt, self.rng))
            try:
                async with asyncio.timeout(spec.timeout):
                    await w.channel.deliver(alarm)
            except TimeoutError:
                self._failed(w, f"no answer within {spec.timeout:g}s")
            except DeliveryError as err:
                self._failed(w, str(err))
            except Exception as err:  # a channel bug must not end its task
                self._failed(w, f"{type(err).__name__}: {err}")
            else:
                w.stats.delivered += 1
                w.stats.last_delivered_at = time.time()
                if w.failing:
                    w.failing = False
                    w.reported_at = float("-inf")
                    self.record(
                        "channel.recovered",
                        f"alarm channel {spec.name}: delivering again",
                        f"alarm.channel.{spec.kind}",
                        channel=spec.name,
                    )
                return
        w.stats.given_up += 1
        self._report(
            w, f"gave up on {alarm.kind} after {spec.retries + 1} attempts: {w.stats.last_error}"
        )

    def _failed(self, w: Worker, error: str) -> None:
        w.stats.failed += 1
        w.stats.last_error = error
        w.stats.last_error_at = time.time()
        w.failing = True
        self._report(w, f"delivery failed: {error}")

    def _report(self, w: Worker, message: str) -> None:
        """Put a channel's trouble in the history: the first, then once a minute at most."""
        now = self.clock()
        if now - w.reported_at < HISTORY_EVERY:
            return
        w.reported_at = now
        self.record(
            "channel.failed",
            f"alarm channel {w.spec.name}: {message}",
            f"alarm.channel.{w.spec.kind}",
            severity="warning",
            channel=w.spec.name,
        )

    def status(self) -> dict[str, Any]:
        """Per channel: kind, delivered, failed, pending, dropped, given up, last error."""
        return {
            w.spec.name: {
                "kind": w.spec.kind,
                "delivered": w.stats.delivered,
                "failed": w.stats.failed,
                "pending": len(w.queue) + (1 if w.busy else 0),
                "dropped": w.stats.dropped,
                "given_up": w.stats.given_up,
                "last_error": w.stats.last_error or None,
                "last_error_at": w.stats.last_error_at,
                "last_delivered_at": w.stats.last_delivered_at,
            }
            for w in self.workers
        }
