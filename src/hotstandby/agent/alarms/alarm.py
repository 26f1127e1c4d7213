"""One alarm as the channels deliver it, and what every channel has in common."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hotstandby.core.messages import AlarmKind, Severity

SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

T = TypeVar("T")

# The channels' blocking work (HTTP, SMTP, a syslog send) runs in threads of its own: a
# hung server whose attempts time out and are retried must never take the threads the
# agent needs for its state file, as it could in asyncio's default executor.
_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alarm")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a channel's blocking call in the alarm threads."""
    return await asyncio.get_running_loop().run_in_executor(_THREADS, fn, *args)


@dataclass(frozen=True)
class Alarm:
    """What the core raised, with where and when: the payload of every channel."""

    cluster: str
    node: str
    kind: str  # an AlarmKind value
    severity: Severity
    message: str
    rule: str
    detail: str
    epoch: int
    at: float  # wall clock, seconds since the epoch

    def as_json(self) -> dict[str, Any]:
        """The payload as plain JSON data (webhook body, command stdin, email body)."""
        stamp = datetime.datetime.fromtimestamp(self.at, datetime.UTC)
        return {
            "cluster": self.cluster,
            "node": self.node,
            "kind": self.kind,
            "severity": self.severity.value,
            "message": self.message,
            "rule": self.rule,
            "detail": self.detail,
            "epoch": self.epoch,
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "timestamp": self.at,
        }

    def environment(self) -> Mapping[str, str]:
        """The payload as HOTSTANDBY_ALARM_* environment variables (command channel)."""
        return {
            f"HOTSTANDBY_ALARM_{key.upper()}": str(value) for key, value in self.as_json().items()
        }

    def summary(self) -> str:
        """One line: node, severity, kind and message."""
        return f"{self.node}: {self.severity.value.upper()} {self.kind}: {self.message}"


class DeliveryError(Exception):
    """A channel could not deliver an alarm; the message says why, for status and history."""


class Channel(Protocol):
    """Delivers one alarm, or raises DeliveryError; the dispatcher bounds it with a timeout."""

    async def deliver(self, alarm: Alarm) -> None:
        """Deliver the alarm once (no retries: the dispatcher retries)."""


@dataclass(frozen=True)
class Filter:
    """Which alarms a channel wants: a minimum severity and, optionally, some kinds only."""

    min_severity: Severity = Severity.INFO
    kinds: frozenset[str] = frozenset()  # AlarmKind values; empty: every kind

    def wants(self, alarm: Alarm) -> bool:
        """Whether the channel should deliver this alarm."""
        if SEVERITY_ORDER[alarm.severity] < SEVERITY_ORDER[self.min_severity]:
            return False
        return not self.kinds or alarm.kind in self.kinds


ALARM_KINDS = frozenset(k.value for k in AlarmKind)
