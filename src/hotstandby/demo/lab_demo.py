"""The demo for real: two agents in network namespaces, a client, a power cut, the takeover.

Needs root (namespaces, veth pairs, a loop device). Everything it builds is
removed when it ends, also on Ctrl-C.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import TextIO

from hotstandby.cli.control_cmds import call, render_record, render_status
from hotstandby.lab import CLIENT, FLOATING_IPV4, Lab
from hotstandby.lab.cluster import ClusterSpec, LabCluster, fence_arbitration
from hotstandby.lab.prober import outage

SERVICE_PORT = 7777


def run(out: TextIO) -> int:
    """Build the lab, start the agents, cut the active's power; 0 when the standby took over."""
    with Lab("hsdemo", nodes=("alpha", "beta")) as lab:
        cluster = LabCluster(
            lab,
            ClusterSpec(name="demo", arbitration=fence_arbitration(lab),
                        links=("lan", "private", "serial", "disk")),
        )  # fmt: skip
        cluster.write()
        say = _sayer(out)
        say(f"lab {lab.lab_id}: nodes alpha and beta in their own network namespaces, a client,")
        say("heartbeats over the LAN, a private link, a serial line (pty pair) and the shared disk")
        say(f"(a loop device); the floating IP {FLOATING_IPV4}; a fence device that powers a")
        say(f"lab node off (the lab's fence agent); cluster file {cluster.config}\n")
        for node in lab.node_names:
            lab.spawn(node, [sys.executable, "-m", "hotstandby.lab.prober", "serve",
                             str(SERVICE_PORT)])  # fmt: skip
        cluster.start_all()
        active = cluster.wait_active(30)
        standby = next(n for n in lab.node_names if n != active)
        cluster.wait_for(
            "the standby to confirm the active node",
            lambda: (s := cluster.status(standby)) is not None and s["role"] == "standby",
            10,
        )
        status = cluster.status(standby)
        assert status is not None
        say("$ hotstandby status   (on the standby)")
        say(render_status(status) + "\n")

        client = lab.spawn(
            CLIENT,
            [sys.executable, "-m", "hotstandby.lab.prober", "probe", FLOATING_IPV4,
             str(SERVICE_PORT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        pipe = client.popen.stdout
        assert pipe is not None and client.popen.stdin is not None
        lines = [pipe.readline().decode().strip()]  # "ready"
        # Let the client see the service answer for a while before the fault.
        while len(lines) < 50:
            lines.append(pipe.readline().decode().strip())

        say(f"client probes tcp://{FLOATING_IPV4}:{SERVICE_PORT} every 10 ms")
        say(f"*** cutting the power of {active} (freeze, cut every link, kill) ***")
        wall_cut = time.time()
        cut = time.monotonic()
        lab.power_loss(active)
        roles_seen = ""
        while True:
            s = cluster.status(standby)
            if s is not None:
                roles = f"{s['role']}: " + " ".join(f"{r['name']} {r['state']}"
                                                    for r in s["resources"])  # fmt: skip
                if roles != roles_seen:
                    say(f"  +{time.monotonic() - cut:6.3f}s  {standby} {roles}")
                    roles_seen = roles
                if s["role"] == "active" and all(r["state"] == "running" for r in s["resources"]):
                    break
            if time.monotonic() - cut > 60:
                say("no takeover within 60 s")
                return 1
            time.sleep(0.01)
        # A little longer, so the client's first answers after the takeover are in.
        time.sleep(0.5)
        client.popen.stdin.close()
        lines += [x.decode().strip() for x in pipe.readlines()]
        client.wait(5)

        say("\n$ hotstandby events   (on the new active, since the cut)")
        answer = call(cluster.socket(standby), {"op": "events", "limit": 200})
        for record in answer["events"]:
            if record["at"] >= wall_cut - 0.001 and not str(record["kind"]).startswith(
                "alarm.link_late"
            ):
                say("  " + render_record(record))
        status = cluster.status(standby)
        assert status is not None
        say("\n$ hotstandby status   (on the new active)")
        say(render_status(status))
        gap = outage(lines, cut)
        holders = lab.holders(FLOATING_IPV4)
        say(f"\n{standby} took over. Floating IP configured in: {', '.join(holders)} "
            f"({active} is powered off).")  # fmt: skip
        if gap is None:
            say("the client got no answer after the cut")
            return 1
        say(f"the client went {gap.seconds * 1000:.0f} ms without an answer "
            f"(last before the cut to first after the takeover)")  # fmt: skip
        return 0


def _sayer(out: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    return say
