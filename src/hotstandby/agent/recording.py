"""What the agent keeps and tells beyond its engine: the persistent history, the takeover
timelines and the alarm channels, attached to an Agent as observers of its records."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from hotstandby.agent.alarms import Alarm, ChannelSpec, Dispatcher, build_dispatcher
from hotstandby.agent.history import EventLog, Rotation
from hotstandby.agent.loop import Agent, Record
from hotstandby.agent.timeline import TimelineRecorder
from hotstandby.core.messages import Severity

log = logging.getLogger("hotstandby.agent")


def record_of(data: dict[str, object]) -> Record:
    """A history record read back from the file."""
    rest = {k: v for k, v in data.items() if k not in ("at", "kind", "message", "rule")}
    return Record(
        float(data["at"]),  # type: ignore[arg-type]
        str(data.get("kind", "")),
        str(data.get("message", "")),
        str(data.get("rule", "")),
        rest,
    )


def alarm_of(agent: Agent, record: Record) -> Alarm | None:
    """The alarm a history record of kind alarm.* stands for (None for other records)."""
    if not record.kind.startswith("alarm."):
        return None
    try:
        severity = Severity(str(record.data.get("severity", "info")))
    except ValueError:
        severity = Severity.INFO
    epoch = record.data.get("epoch")
    return Alarm(
        cluster=agent.cluster.name,
        node=agent.node,
        kind=record.kind.removeprefix("alarm."),
        severity=severity,
        message=record.message,
        rule=record.rule,
        detail=str(record.data.get("detail", "")),
        epoch=epoch if isinstance(epoch, int) else agent.engine.epoch,
        at=record.at,
    )


def attach(
    agent: Agent,
    directory: Path,
    channels: list[ChannelSpec],
    rotation: Rotation | None = None,
) -> Callable[[], Awaitable[None]]:
    """Reload the history, then record to the file, time takeovers and send alarms.

    Call from the running event loop before `agent.run()`; returns the coroutine
    function that flushes and stops it all, to await after the agent stopped.
    """
    events = EventLog(directory, rotation or Rotation())
    loaded = events.load(agent.history.maxlen or 0)
    agent.history.extend(record_of(r) for r in loaded)
    events.start()
    node = agent.node

    def persist(record: Record) -> None:
        events.append({"node": node, **record.as_json()})
        if record.kind == "self_fence":
            # The process ends at once after this record (os._exit): give the writer a
            # moment to put the reason on disk, where the operator will look for it.
            events.wait_idle(0.5)

    dispatcher: Dispatcher = build_dispatcher(channels, agent.cluster.name, node, agent._record)

    def send(record: Record) -> None:
        alarm = alarm_of(agent, record)
        if alarm is not None:
            dispatcher.raise_alarm(alarm)

    timelines = TimelineRecorder(agent, agent._record)
    agent.observers += [persist, send, timelines.observe]
    agent.status_sections["alarms"] = dispatcher.status
    agent.status_sections["history"] = lambda: {
        "file": str(events.path),
        "written": events.written,
        "errors": events.errors,
        "last_error": events.last_error or None,
    }
    dispatcher.start()
    if loaded:
        log.info("event history: %d records reloaded from %s", len(loaded), events.path)

    async def close() -> None:
        await dispatcher.close()
        events.close()

    return close
