"""What `status`, `events` and `why` show: the snapshot data and its rendering."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hotstandby.agent.status import reasons, snapshot
from hotstandby.cli.control_cmds import render_record, render_status

from .harness import Pair, drive

STATUS: dict[str, Any] = {
    "cluster": "web",
    "node": "alpha",
    "role": "active",
    "epoch": 7,
    "offline": False,
    "lease_left": None,
    "peers": [
        {
            "name": "beta",
            "confirmed": True,
            "role": "standby",
            "epoch": 7,
            "holds": False,
            "offline": False,
            "last_heard_ago": 0.0123,
            "links": {
                "net": {"state": "up", "loss": 0.02, "round_trip": 0.0012},
                "serial": {"state": "down", "loss": None, "round_trip": None},
            },
        },
        {
            "name": "gamma",
            "confirmed": False,
            "role": None,
            "epoch": None,
            "holds": None,
            "offline": None,
            "last_heard_ago": None,
            "links": {"net": {"state": "unknown"}},
        },
    ],
    "links": {
        "net": {"sent": 120, "received": 118, "send_errors": 0, "dropped": {"bad_mac": 2}},
        "serial": {"sent": 120, "received": 0, "send_errors": 3, "dropped": {}},
    },
    "resources": [
        {
            "name": "vip",
            "kind": "ip",
            "state": "running",
            "node": "alpha",
            "pending": None,
            "failures": 0,
            "last_result": "start ok added 192.0.2.10/24",
            "last_monitor": {"ago": 1.25, "outcome": "ok", "detail": ""},
        },
        {
            "name": "db",
            "kind": "postgres",
            "state": "failed",
            "node": "alpha",
            "pending": "stop",
            "failures": 2,
            "last_result": "start failed timed out after 20s",
            "last_monitor": {"ago": 30.0, "outcome": "failed", "detail": "no answer on 5432"},
        },
        {
            "name": "cron",
            "kind": "service",
            "state": "stopped",
            "node": None,
            "pending": None,
            "failures": 0,
            "last_result": "",
            "last_monitor": None,
        },
    ],
    "last_takeover": "boot.election: every peer is here and holds nothing",
}


def test_render_status_columns() -> None:
    lines = render_status(STATUS).splitlines()
    assert lines == [
        "cluster web   node alpha: ACTIVE   epoch 7",
        "",
        "peer        role          epoch      seen  links",
        "beta        standby           7     0.01s  net:up (loss 2%, rtt 1.2ms)  serial:down",
        "gamma       ? (lost)          0     never  net:unknown",
        "",
        "link            sent  received  dropped",
        "net              120       118  bad_mac 2",
        "serial           120         0  -",
        "",
        "resource        kind     state       node      failures  last monitor / last action",
        "vip             ip       running     alpha            0  ok 1.2s ago / start ok added "
        "192.0.2.10/24",
        "db              postgres failed      alpha            2  failed 30.0s ago (no answer on "
        "5432) / start failed timed out after 20s",
        "cron            service  stopped     -                0  never / -",
        "",
        "last takeover: boot.election: every peer is here and holds nothing",
    ]


def test_render_status_of_a_node_put_in_standby_without_a_takeover() -> None:
    status = {**STATUS, "offline": True, "role": "standby", "last_takeover": None}
    text = render_status(status)
    assert (
        text.splitlines()[0]
        == "cluster web   node alpha: STANDBY   epoch 7   (standby by operator)"
    )
    assert "last takeover" not in text


def test_render_record() -> None:
    at = time.mktime((2024, 5, 1, 13, 4, 5, 0, 0, -1)) + 0.0625
    record = {"at": at, "kind": "role", "message": "standby -> active", "rule": "takeover.x"}
    assert render_record(record) == (
        "13:04:05.062 role                   standby -> active  [takeover.x]"
    )
    assert render_record({**record, "rule": ""}).endswith("standby -> active")


def test_snapshot_of_a_running_pair(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        agent = p.alpha.agent
        # Enough heartbeats for echoes to have come back on both links.
        await p.until(
            lambda: all(
                agent.quality.round_trip(link.name, "beta") is not None for link in p.alpha.links
            ),
            "round trips measured",
        )
        s = snapshot(agent, agent.clock())
        assert s["role"] == "active" and s["offline"] is False and s["lease_left"] is None
        (beta,) = s["peers"]
        assert beta["role"] == "standby" and beta["holds"] is False and beta["confirmed"]
        assert 0 <= beta["last_heard_ago"] < 1.0
        for name in ("net", "serial"):
            view = beta["links"][name]
            assert view["state"] == "up" and view["received"] > 0
            assert view["loss"] == 0.0
            assert 0 <= view["round_trip"] < 1.0
            stats = s["links"][name]
            assert stats["sent"] > 0 and stats["received"] > 0 and stats["dropped"] == {}
        assert [(r["name"], r["state"], r["node"], r["failures"]) for r in s["resources"]] == [
            ("vip", "running", "alpha", 0),
            ("web", "running", "alpha", 0),
        ]
        await p.until(
            lambda: all(v.last_monitor is not None for v in agent.engine.group.items),
            "every resource monitored",
        )
        monitored = snapshot(agent, agent.clock())["resources"][0]["last_monitor"]
        assert monitored["outcome"] == "ok" and 0 <= monitored["ago"] < 1.0
        # The standby sees the group on the node that holds it.
        seen_by_beta = snapshot(p.beta.agent, p.beta.agent.clock())["resources"]
        assert [(r["state"], r["node"]) for r in seen_by_beta] == [("stopped", "alpha")] * 2
        engine = agent.engine
        engine.lease_until = agent.clock() + 3.0
        assert 2.0 < snapshot(agent, agent.clock())["lease_left"] <= 3.0
        engine.lease_until = float("-inf")
        # The standby's view of a peer it heard, and render_status can show either.
        assert render_status(snapshot(p.beta.agent, p.beta.agent.clock())).startswith(
            "cluster unit   node beta: STANDBY"
        )

    drive(tmp_path, body)


def test_snapshot_before_any_peer_was_heard(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        p.start(p.alpha)
        await p.until(lambda: p.alpha.agent.engine.booted, "alpha booted")
        s = snapshot(p.alpha.agent, p.alpha.agent.clock())
        (beta,) = s["peers"]
        assert beta["role"] is None and beta["last_heard_ago"] is None and not beta["confirmed"]
        assert {v["state"] for v in beta["links"].values()} == {"unknown"}
        assert all(v["loss"] is None and v["round_trip"] is None for v in beta["links"].values())
        assert "gamma" not in render_status(s) and "never" in render_status(s)

    drive(tmp_path, body, start=False)


def test_reasons_are_role_changes_and_alarms_only_the_last_twenty(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        agent = p.alpha.agent
        for n in range(30):
            agent._record("alarm.link_late", f"late {n}", "link.warn_time")
            agent._record("resource", f"noise {n}")
        got = reasons(agent)
        assert len(got) == 20
        assert [r["message"] for r in got] == [f"late {n}" for n in range(10, 30)]
        await asyncio.sleep(0)

    drive(tmp_path, body, start=False)
