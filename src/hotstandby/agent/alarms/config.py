"""The [[alarm]] tables: the keys every channel shares, and each channel kind's own.

Every channel has `kind` (command, webhook, email, syslog) and may have:
  name          shown in `status` and the history (default: the kind, numbered if repeated)
  min_severity  info | warning | critical: quieter alarms are not sent (default info)
  kinds         a list of alarm kinds to send (default: all), e.g. ["takeover", "fence"]
  timeout       per delivery attempt (default 10s, at most 5m)
  retries       further attempts after a failure (default 5, 0 to 100)
  backoff       the first wait before a retry, doubled each time, with jitter (default 1s)
  max_backoff   the longest wait between attempts (default 5m)
  queue         alarms waiting per channel; beyond, the oldest is dropped (default 100)
Each channel kind's own keys are listed in its module. Errors name the alarm and the key,
and `hotstandby check` points at the line holding it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from hotstandby.agent.alarms.alarm import ALARM_KINDS, Channel, Filter
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.core.cluster import Cluster
from hotstandby.core.messages import Severity

COMMON_KEYS = frozenset(
    {"kind", "name", "min_severity", "kinds", "timeout", "retries", "backoff", "max_backoff",
     "queue"}
)  # fmt: skip


@dataclass(frozen=True)
class ChannelKind:
    """How to read one channel kind's own keys and build its channel."""

    keys: frozenset[str]
    parse: Callable[[ParamReader], object]
    # (params, cluster name, node, per-attempt timeout) -> channel
    build: Callable[[Any, str, str, float], Channel]


# Channel kind -> the module implementing it (KEYS, parse, build). A module is imported
# only when a channel of its kind is configured: the agent locks its memory, and smtplib
# or urllib.request with their dependencies would otherwise be resident for nothing.
MODULES: dict[str, str] = {
    "command": "command",
    "webhook": "webhook",
    "email": "smtp",
    "syslog": "syslog",
}


@cache
def channel_kind(kind: str) -> ChannelKind:
    """How to read and build channels of `kind` (one of MODULES)."""
    module = importlib.import_module(f"hotstandby.agent.alarms.{MODULES[kind]}")
    return ChannelKind(module.KEYS, module.parse, module.build)


@dataclass(frozen=True)
class ChannelSpec:
    """One configured channel: what it sends, how it retries, and its own parameters."""

    index: int  # position among the [[alarm]] tables, for error lines
    name: str
    kind: str
    filter: Filter
    timeout: float
    retries: int
    backoff: float
    max_backoff: float
    queue: int
    params: object


class AlarmConfigError(ParamError):
    """A bad [[alarm]] table; `index` says which one, `key` which key."""

    def __init__(self, index: int, error: ParamError) -> None:
        ValueError.__init__(self, str(error))
        self.resource = error.resource
        self.key = error.key
        self.index = index


def _names(raw: tuple[Mapping[str, Any], ...]) -> list[str]:
    """Each channel's name: its `name`, or its kind, numbered when a kind repeats."""
    names: list[str] = []
    for i, table in enumerate(raw):
        name = table.get("name")
        if not isinstance(name, str) or not name:
            kind = table.get("kind")
            base = kind if isinstance(kind, str) and kind else "alarm"
            same = [t for t in raw[:i] if t.get("kind") == kind and not t.get("name")]
            name = base if not same else f"{base}.{len(same) + 1}"
        names.append(name)
    return names


def parse_channel(index: int, name: str, raw: Mapping[str, Any]) -> ChannelSpec:
    """One [[alarm]] table, validated; AlarmConfigError names the alarm and the key."""
    try:
        kind = raw.get("kind")
        if kind not in MODULES:
            choices = " | ".join(f'"{k}"' for k in MODULES)
            reader = ParamReader(name, "?", {}, frozenset(), noun="alarm")
            if kind is None:
                raise reader.missing("kind", choices)
            raise reader.error("kind", choices, kind)
        channel = channel_kind(kind)
        r = ParamReader(name, kind, raw, COMMON_KEYS | channel.keys, noun="alarm")
        r.string("name", name)
        severity = r.string("min_severity", "info")
        if severity not in {s.value for s in Severity}:
            raise r.error("min_severity", '"info", "warning" or "critical"', severity)
        kinds = r.string_list("kinds")
        for k in kinds:
            if k not in ALARM_KINDS:
                raise r.error("kinds", f"alarm kinds ({', '.join(sorted(ALARM_KINDS))})", k)
        backoff = r.seconds("backoff", 1.0, 3600.0)
        spec = ChannelSpec(
            index=index,
            name=name,
            kind=kind,
            filter=Filter(Severity(severity), frozenset(kinds)),
            timeout=r.seconds("timeout", 10.0, 300.0),
            retries=r.integer("retries", 5, 0, 100),
            backoff=backoff,
            max_backoff=max(backoff, r.seconds("max_backoff", 300.0, 86400.0)),
            queue=r.integer("queue", 100, 1, 100_000),
            params=channel.parse(r),
        )
    except AlarmConfigError:
        raise
    except ParamError as error:
        raise AlarmConfigError(index, error) from None
    return spec


def parse_channels(cluster: Cluster) -> list[ChannelSpec]:
    """Every configured channel; the first AlarmConfigError found."""
    names = _names(cluster.alarms)
    return [parse_channel(i, names[i], raw) for i, raw in enumerate(cluster.alarms)]


def validate(cluster: Cluster) -> list[AlarmConfigError]:
    """Every [[alarm]] table's error (empty when all are good)."""
    names = _names(cluster.alarms)
    errors: list[AlarmConfigError] = []
    for i, raw in enumerate(cluster.alarms):
        try:
            parse_channel(i, names[i], raw)
        except AlarmConfigError as error:
            errors.append(error)
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            errors.append(
                AlarmConfigError(
                    i, ParamError(name, "name", "is used by another alarm", noun="alarm")
                )
            )
        seen.add(name)
    return errors
