"""Alarm channels (command, webhook, email, syslog) and the dispatcher that feeds them.

The core raises alarms (RaiseAlarm); the agent records each in its history, and the
dispatcher hands it to every configured channel that wants it, without ever making the
loop wait. See `config` for the [[alarm]] keys and each channel's module for its own.
"""

from __future__ import annotations

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError, Filter
from hotstandby.agent.alarms.config import (
    AlarmConfigError,
    ChannelSpec,
    channel_kind,
    parse_channels,
    validate,
)
from hotstandby.agent.alarms.dispatcher import Dispatcher, Record

__all__ = [
    "Alarm",
    "AlarmConfigError",
    "Channel",
    "ChannelSpec",
    "DeliveryError",
    "Dispatcher",
    "Filter",
    "build_dispatcher",
    "parse_channels",
    "validate",
]


def build_dispatcher(
    specs: list[ChannelSpec], cluster: str, node: str, record: Record
) -> Dispatcher:
    """A dispatcher for the configured channels of `node`."""
    channels = [
        (spec, channel_kind(spec.kind).build(spec.params, cluster, node, spec.timeout))
        for spec in specs
    ]
    return Dispatcher(channels, record)
