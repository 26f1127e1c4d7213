"""The history, timelines and alarms attached to real agents (fake links and resources):
kept across a restart, a timeline after a takeover, alarms to a channel, events filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hotstandby.agent.alarms import Alarm
from hotstandby.agent.control import ControlServer
from hotstandby.agent.history import Rotation
from hotstandby.agent.recording import attach
from hotstandby.agent.status import snapshot
from hotstandby.agent.timeline import TIMELINE, render
from hotstandby.cli.control_cmds import parse_since, render_status
from hotstandby.core.messages import Role

from ..agent.harness import Pair, drive
from ..alarms.helpers import spec


class Inbox:
    """An alarm channel keeping what it gets."""

    def __init__(self) -> None:
        self.alarms: list[Alarm] = []

    async def deliver(self, alarm: Alarm) -> None:
        self.alarms.append(alarm)


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first: list[str] = []

    async def run_once(p: Pair) -> None:
        close = attach(p.alpha.agent, state / "alpha", [])
        p.start()
        await p.settled()
        first.extend(r.message for r in p.alpha.agent.history)
        await close()

    drive(state, run_once, start=False)
    assert "taking_over -> active" in first

    async def run_again(p: Pair) -> None:
        close = attach(p.alpha.agent, state / "alpha", [])
        reloaded = [r.message for r in p.alpha.agent.history]
        assert reloaded[: len(first)] == first
        server = ControlServer(p.alpha.agent, str(tmp_path / "a.sock"))
        # Filters apply to the reloaded records too: kind prefix, node, time.
        answer = await server._answer({"op": "events", "kind": "role", "limit": 1000})
        assert answer["ok"] and answer["events"]
        assert all(e["kind"] == "role" and e["node"] == "alpha" for e in answer["events"])
        none = await server._answer({"op": "events", "node": "beta"})
        assert none["events"] == []
        late = await server._answer({"op": "events", "since": 4e9})
        assert late["events"] == []
        await close()

    drive(state, run_again, start=False)


def test_a_takeover_leaves_a_timeline_and_sends_its_alarm(tmp_path: Path) -> None:
    inbox = Inbox()
    status: dict[str, Any] = {}

    async def body(p: Pair) -> None:
        channels = [spec("syslog", kinds=["takeover"])]
        close = attach(p.beta.agent, tmp_path / "beta", channels)
        dispatcher_channel = inbox
        # attach built a real syslog channel; swap in the inbox to see what it is given.
        section = p.beta.agent.status_sections["alarms"]
        workers = section.__self__.workers  # type: ignore[attr-defined]
        workers[0].channel = dispatcher_channel
        p.start()
        await p.settled()
        p.alpha.cut()  # alpha falls silent, as on a power loss
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        await p.until(lambda: bool(p.beta.records(TIMELINE)), "the timeline")
        await p.until(lambda: len(inbox.alarms) == 1, "the takeover alarm delivered")
        status.update(p.beta.agent.status_sections["alarms"]())
        await close()

    drive(tmp_path / "state", body, start=False)
    [alarm] = inbox.alarms
    assert alarm.kind == "takeover" and alarm.node == "beta" and alarm.epoch >= 1
    assert alarm.rule == "takeover.heartbeat_only"
    assert status["syslog"]["delivered"] == 1 and status["syslog"]["pending"] == 0


def test_the_timeline_s_stages_are_in_order_and_add_up(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []

    async def body(p: Pair) -> None:
        close = attach(p.beta.agent, tmp_path / "beta", [], Rotation())
        p.start()
        await p.settled()
        p.alpha.cut()
        await p.until(lambda: bool(p.beta.records(TIMELINE)), "the timeline")
        records.extend(r.as_json() for r in p.beta.records(TIMELINE))
        await close()

    drive(tmp_path / "state", body, start=False)
    [record] = records
    t = record["timeline"]
    assert t["peers"] == ["alpha"] and t["rule"] == "takeover.heartbeat_only"
    stages = [s["stage"] for s in t["stages"]]
    assert stages[0].startswith("peer declared dead [standby.peer_lost")
    assert stages[1] == "takeover decided [takeover.heartbeat_only]"
    assert stages[2:] == ["vip up", "web up", "active"]
    offsets = [s["offset"] for s in t["stages"]]
    assert offsets == sorted(offsets) and offsets[-1] == t["total"]
    dead_time = 0.1  # the harness cluster's
    assert dead_time <= offsets[0] < dead_time + 0.5
    assert set(t["links"]) == {"net", "serial"}
    assert all(dead_time <= silent < dead_time + 0.5 for silent in t["links"].values())
    text = render({**record, "node": "beta"})
    assert "silence per link when the peer was declared dead" in text
    assert "vip up" in text and text.rstrip().endswith(f"total {t['total'] * 1000:.0f} ms")


def test_status_shows_the_alarm_channels(tmp_path: Path) -> None:
    shown: list[str] = []

    async def body(p: Pair) -> None:
        close = attach(p.alpha.agent, tmp_path / "alpha", [spec("syslog", socket="/nonexistent")])
        p.start()
        await p.settled()
        section = p.alpha.agent.status_sections["alarms"]
        await p.until(lambda: section()["syslog"]["failed"] >= 1, "a failed delivery")
        snap = snapshot(p.alpha.agent, p.alpha.agent.clock())
        shown.append(render_status(snap))
        assert snap["alarms"]["syslog"]["last_error"].startswith("/nonexistent")
        assert p.alpha.records("channel.failed")
        await close()

    drive(tmp_path / "state", body, start=False)
    assert "alarm channel" in shown[0] and "/nonexistent" in shown[0]


def test_since_takes_a_duration_back_or_a_time() -> None:
    assert parse_since("10m", 10_000.0) == 9_400.0
    assert parse_since("2026-05-01T13:00:00+00:00", 0.0) == 1777640400.0
    try:
        parse_since("yesterday", 0.0)
    except ValueError as err:
        assert "--since" in str(err)
    else:
        raise AssertionError("a bad --since was taken")


def test_a_self_fence_record_is_on_disk_before_the_process_ends(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        close = attach(p.alpha.agent, tmp_path / "alpha", [])
        p.start()
        await p.settled()
        p.alpha.agent._record("self_fence", "stopping at once", "release.too_slow")
        # No await in between: the record was written before _record returned.
        text = (tmp_path / "alpha" / "events.jsonl").read_text()
        assert text.splitlines()[-1].startswith('{"node": "alpha"')
        assert '"kind": "self_fence"' in text.splitlines()[-1]
        await close()

    drive(tmp_path / "state", body, start=False)


def test_status_says_when_a_peer_runs_another_configuration(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        agent = p.alpha.agent
        snap = snapshot(agent, agent.clock())
        assert snap["peers"][0]["config_differs"] is False
        assert "CONFIGURATION DIFFERS" not in render_status(snap)
        agent.engine.peers["beta"].digest_warned = True  # as on a heartbeat with another digest
        snap = snapshot(agent, agent.clock())
        assert snap["peers"][0]["config_differs"] is True
        assert "CONFIGURATION DIFFERS" in render_status(snap)

    drive(tmp_path / "state", body)
