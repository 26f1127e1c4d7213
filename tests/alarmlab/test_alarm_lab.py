"""Two real agents with every alarm channel configured, pointing at receivers the test
runs: power loss of the active node, and every channel gets the new active's takeover
alarm; its `hotstandby events --takeovers` shows the timeline. The history survives an
agent restart and rotates at a small size."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hotstandby.lab import CLIENT, Lab
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration

pytestmark = pytest.mark.lab

RECEIVERS = Path(__file__).parents[1] / "alarms" / "receivers.py"
HTTP_PORT, SMTP_PORT = 8080, 8025
# Appends one line per alarm (its JSON on stdin, and the environment's kind) to a file.
COMMAND = (
    "import json, os, sys; alarm = json.load(sys.stdin); "
    "alarm['env_kind'] = os.environ['HOTSTANDBY_ALARM_KIND']; "
    "open(sys.argv[1], 'a').write(json.dumps(alarm) + '\\n')"
)


def other(node: str) -> str:
    """The other node of the pair."""
    return "beta" if node == "alpha" else "alpha"


def alarm_tables(lab: Lab, out: Path) -> str:
    """Every channel kind, each pointing at a receiver of this test."""
    client = lab.client.lan_ipv4
    argv = json.dumps([sys.executable, "-c", COMMAND, str(out / "command.jsonl")])
    return f"""
[[alarm]]
kind = "command"
argv = {argv}
timeout = "5s"

[[alarm]]
kind = "webhook"
url = "http://{client}:{HTTP_PORT}/alarm"
timeout = "3s"
backoff = "200ms"

[[alarm]]
kind = "email"
server = "{client}"
port = {SMTP_PORT}
from = "hotstandby@example.org"
to = "oncall@example.org"
timeout = "3s"
backoff = "200ms"

[[alarm]]
kind = "syslog"
socket = "{out / "syslog.sock"}"
facility = "local0"
"""


def takeovers(items: list[dict[str, Any]], node: str) -> list[dict[str, Any]]:
    """The takeover alarms of `node` beyond the first election (epoch 1)."""
    return [a for a in items if a["node"] == node and a["kind"] == "takeover" and a["epoch"] > 1]


def read_json(path: Path) -> list[dict[str, Any]]:
    """A receiver's JSON file (a list), or the command's JSON lines; [] while absent."""
    if not path.exists():
        return []
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    try:
        got: list[dict[str, Any]] = json.loads(text)
    except ValueError:
        return []  # caught mid-write
    return got


def test_power_loss_every_channel_gets_the_takeover_alarm_and_a_timeline_is_kept(
    lab: Lab,
) -> None:
    out = lab.workdir / "alarms"
    out.mkdir()
    spec = ClusterSpec(arbitration=fence_arbitration(lab), extra=alarm_tables(lab, out))
    cluster = LabCluster(lab, spec)
    cluster.write()
    receiver = lab.spawn(
        CLIENT,
        [sys.executable, str(RECEIVERS), str(out), lab.client.lan_ipv4],
        stdout=subprocess.DEVNULL,
        stderr=(out / "receivers.log").open("ab"),
    )
    cluster.wait_for("the receivers", lambda: (out / "ready").exists() or not receiver.alive(), 20)
    assert receiver.alive(), (out / "receivers.log").read_text()
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(out / "syslog.sock"))
    syslog.setblocking(False)
    datagrams: list[str] = []

    def syslog_takeover(node: str) -> bool:
        while True:
            try:
                datagrams.append(syslog.recv(4096).decode())
            except BlockingIOError:
                break
        return any(f" {node}: CRITICAL takeover: " in d and "epoch 1]" not in d for d in datagrams)

    try:
        active = cluster.up()
        standby = other(active)
        lab.power_loss(active)
        assert cluster.wait_active(30, other_than=active) == standby

        cluster.wait_for(
            "the takeover alarm on every channel",
            lambda: (
                takeovers(read_json(out / "command.jsonl"), standby)
                and takeovers([p["body"] for p in read_json(out / "http.json")], standby)
                and any(
                    f"{standby}: CRITICAL takeover" in m["subject"]
                    for m in read_json(out / "smtp.json")
                )
                and syslog_takeover(standby)
            ),
            20,
        )
        [command] = takeovers(read_json(out / "command.jsonl"), standby)
        assert command["env_kind"] == "takeover" and command["cluster"] == "lab"
        assert command["rule"] == "takeover.fenced"
        [mail] = [
            m
            for m in read_json(out / "smtp.json")
            if f"{standby}: CRITICAL takeover" in m["subject"]
        ]
        assert mail["to"] == ["oncall@example.org"]
        # The syslog line: RFC 5424, local0.crit.
        [line] = [d for d in datagrams if f" {standby}: CRITICAL takeover: " in d]
        assert line.startswith(f"<{16 * 8 + 2}>1 ")

        status = cluster.status(standby)
        assert status is not None
        for name in ("command", "webhook", "email", "syslog"):
            assert status["alarms"][name]["delivered"] >= 1, status["alarms"]

        # The timeline, as an operator reads it, and as data.
        cli = [sys.executable, "-m", "hotstandby", "events", "--socket", cluster.socket(standby)]
        text = subprocess.run(
            [*cli, "--takeovers"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        print(text)
        data = subprocess.run(
            [*cli, "--takeovers", "--json"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        [record] = [json.loads(line) for line in data.splitlines()]
        timeline = record["timeline"]
        assert timeline["peers"] == [active] and timeline["rule"] == "takeover.fenced"
        stages = [s["stage"] for s in timeline["stages"]]
        assert stages[0].startswith("peer declared dead")
        assert "fence confirmed" in stages
        assert stages.index("fence confirmed") < stages.index("takeover decided [takeover.fenced]")
        assert stages[-2:] == ["vip up", "active"]
        offsets = [s["offset"] for s in timeline["stages"]]
        assert offsets == sorted(offsets)
        assert timeline["total"] == offsets[-1]
        assert 0.5 < timeline["total"] < 15.0  # past the dead time, well within the budget
        assert set(timeline["links"]) == {"lan", "private", "serial"}
        assert "silence per link" in text and "vip up" in text and "total" in text
    finally:
        syslog.close()


def test_the_history_survives_a_restart_and_rotates(lab: Lab) -> None:
    cluster = LabCluster(lab, ClusterSpec(arbitration=fence_arbitration(lab)))
    cluster.write()
    history = ("--history-max-kib", "1", "--history-keep", "2")
    for node in lab.node_names:
        cluster.start(node, *history)
    active = cluster.wait_active(30)
    standby = other(active)
    cluster.wait_for(
        "the standby to confirm",
        lambda: (s := cluster.status(standby)) and s["role"] == "standby",
        15,
    )
    before = cluster.events(standby)
    assert before
    state = cluster.dir / f"state-{standby}" / "lab"
    cluster.wait_for("the history on disk", (state / "events.jsonl").exists, 10)
    # A planned stop of the standby's agent, then a fresh start on the same state.
    proc = cluster.agents[standby]
    lab.kill(proc, sig=signal.SIGTERM)
    proc.wait(15)
    # Restart only once the active has seen it leave: a peer back within the dead time,
    # starting and so perhaps holding, is fenced (a safe, separate race of the core).
    cluster.wait_for(
        "the active to see the standby gone",
        lambda: (s := cluster.status(active)) is not None and not s["peers"][0]["confirmed"],
        10,
    )
    restarted = time.time()
    cluster.start(standby, *history)
    cluster.wait_for(
        "the restarted standby",
        lambda: (s := cluster.status(standby)) and s["role"] == "standby",
        20,
    )
    after = cluster.events(standby)
    old = [e for e in after if e["at"] < restarted]
    assert old, "nothing from before the restart"
    # What was shown before the restart is shown after it (as much as the small files keep).
    assert {(e["at"], e["kind"]) for e in old} & {(e["at"], e["kind"]) for e in before}
    assert any(e["kind"] == "exit" for e in old)  # the planned stop's last record
    # Filters: by kind prefix and by time.
    roles = cluster.events(standby, kind="role")
    assert roles and all(e["kind"] == "role" for e in roles)
    assert all(e["at"] >= restarted for e in cluster.events(standby, since=restarted))
    # Small files: rotated, at most two old ones kept, none much beyond the limit.
    cluster.wait_for("a rotation", (state / "events.jsonl.1").exists, 10)
    files = sorted(p.name for p in state.iterdir() if p.name.startswith("events.jsonl"))
    assert set(files) <= {"events.jsonl", "events.jsonl.1", "events.jsonl.2"}
    for name in files:
        assert (state / name).stat().st_size < 1024 + 1024
