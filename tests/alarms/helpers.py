"""Alarms and channel specs for the alarm tests, and a wait that polls with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from hotstandby.agent.alarms import Alarm, ChannelSpec
from hotstandby.agent.alarms.config import parse_channel
from hotstandby.core.messages import Severity


def alarm(
    kind: str = "takeover", severity: Severity = Severity.CRITICAL, n: int = 0, message: str = ""
) -> Alarm:
    """An alarm as the agent would pass it on."""
    return Alarm(
        cluster="lab",
        node="beta",
        kind=kind,
        severity=severity,
        message=message or f"beta takes over (epoch {n + 2})",
        rule="takeover.fenced",
        detail="fence of alpha confirmed by the agent",
        epoch=n + 2,
        at=1_700_000_000.25 + n,
    )


def spec(kind: str = "syslog", **raw: Any) -> ChannelSpec:
    """A channel spec from [[alarm]] keys, with quick retries unless told otherwise."""
    table = {"kind": kind, "backoff": "1ms", "max_backoff": "4ms", "timeout": "2s", **raw}
    return parse_channel(0, str(raw.get("name", kind)), MappingProxyType(table))


def with_params(s: ChannelSpec, params: object) -> ChannelSpec:
    """The spec with other channel parameters."""
    return replace(s, params=params)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll `predicate` (every millisecond) until it holds; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll `predicate` from a thread that may block; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
