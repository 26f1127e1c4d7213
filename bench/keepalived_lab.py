"""keepalived in the lab: one VRRPv3 instance per node, unicast over the LAN, ended by pid.

Used by bench/failover.py to run the same faults against keepalived that it runs against
hotstandby. Each node gets its own configuration file, pid files and track file in the lab's
work directory, and runs `keepalived --vrrp --dont-fork --log-console` inside its namespace,
so that the lab tracks the parent by pid and removes everything with the lab.

Also here: `netfilter`, a small nftables table of the benchmark's own in a node's namespace
(kept apart from the lab's `hotstandby_lab` table, which the lab rewrites at will), used to
count VRRP adverts and to drop only VRRP or only one UDP port on the LAN.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotstandby.lab import FLOATING_IPV4, Lab, LabProcess
from hotstandby.lab._cmd import run
from hotstandby.lab.netns import namespaces_with_address, ns_argv
from hotstandby.lab.power import process_tree
from hotstandby.lab.procs import await_gone, await_stopped

#: The VRRP router id of the lab's one virtual router.
VRID = 51
#: nftables table the benchmark owns in a node's namespace.
NFT_TABLE = "hsbench"
#: How often to look at the kernel or at a log while waiting.
POLL = 0.01

_STATE_RE = re.compile(r"\(VI_1\) Entering (MASTER|BACKUP|FAULT) STATE")


def keepalived_missing() -> str | None:
    """Why keepalived cannot run here, or None when it can."""
    if shutil.which("keepalived") is None:
        return "keepalived is not installed (Debian package keepalived): its columns are skipped"
    return None


def keepalived_version() -> str:
    """The first line of `keepalived --version` (it prints to stderr)."""
    done = subprocess.run(
        ["keepalived", "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else "keepalived (unknown version)"


@dataclass(frozen=True)
class KeepalivedProfile:
    """A keepalived timing profile: VRRPv3 advertisement interval in seconds."""

    name: str
    advert_int: float
    realtime: bool = False


DEFAULTS = KeepalivedProfile("keepalived default", 1.0)
# VRRPv3 counts the interval in centiseconds; 0.1 s is what the issue calls its minimum in
# practice (10 ms is legal but keepalived then spends its time on adverts).
TUNED = KeepalivedProfile("keepalived tuned", 0.1, realtime=True)


class LabKeepalived:
    """keepalived on every node of a two-node lab: first node priority 200, second 100."""

    def __init__(
        self, lab: Lab, profile: KeepalivedProfile, check_pids: dict[str, int] | None = None
    ) -> None:
        self.lab = lab
        self.profile = profile
        # node -> pid of the service its once-a-second check script watches (kill -0 PID,
        # the classic `killall -0 haproxy` shape); no check script when absent.
        self.check_pids = dict(check_pids or {})
        self.dir = lab.workdir / "keepalived"
        self.dir.mkdir(exist_ok=True)
        self.procs: dict[str, LabProcess] = {}
        self.priority = {n: 200 - 100 * i for i, n in enumerate(lab.node_names)}

    # ------------------------------------------------------------ files

    def path(self, node: str, what: str) -> Path:
        """A per-node file: conf, pid, vrrp.pid, chk.pid, track."""
        return self.dir / f"{node}.{what}"

    def render(self, node: str) -> str:
        """keepalived.conf for node."""
        lab = self.lab
        me = lab.node(node)
        peers = [lab.node(n).lan_ipv4 for n in lab.node_names if n != node]
        first = node == lab.node_names[0]
        script = ""
        track_script = ""
        if node in self.check_pids:
            script = (
                "vrrp_script chk_service {\n"
                f'    script "/usr/bin/kill -0 {self.check_pids[node]}"\n'
                "    interval 1\n    fall 2\n    rise 2\n}\n"
            )
            track_script = "    track_script {\n        chk_service\n    }\n"
        # Tuned: real-time scheduling, as hotstandby's agent asks for itself; keepalived's
        # own log recommends it (max_auto_priority) for short advert intervals.
        extra_global = "    max_auto_priority\n" if self.profile.realtime else ""
        # The track file's number (times weight 1) is added to the priority: writing -150
        # lowers the master below its peer, which is how the benchmark asks for a switchover.
        return (
            "global_defs {\n"
            f"    router_id {node}\n"
            "    vrrp_version 3\n"
            "    script_user root\n"
            "    enable_script_security\n"
            f"{extra_global}"
            "}\n"
            f"{script}"
            "track_file prio {\n"
            f'    file "{self.path(node, "track")}"\n'
            "    weight 1\n"
            "}\n"
            "vrrp_instance VI_1 {\n"
            f"    state {'MASTER' if first else 'BACKUP'}\n"
            f"    interface {me.lan_if}\n"
            f"    virtual_router_id {VRID}\n"
            f"    priority {self.priority[node]}\n"
            f"    advert_int {self.profile.advert_int:g}\n"
            f"    unicast_src_ip {me.lan_ipv4}\n"
            "    unicast_peer {\n" + "".join(f"        {p}\n" for p in peers) + "    }\n"
            "    virtual_ipaddress {\n"
            f"        {FLOATING_IPV4}/24 dev {me.lan_if}\n"
            "    }\n"
            "    track_file {\n        prio\n    }\n"
            f"{track_script}"
            "}\n"
        )

    def write(self) -> None:
        """Every node's configuration and track file."""
        for node in self.lab.node_names:
            self.path(node, "conf").write_text(self.render(node))
            self.path(node, "track").write_text("0\n")

    # ------------------------------------------------------------ processes

    def start(self, node: str) -> LabProcess:
        """Start node's keepalived (VRRP only, in the foreground, logging to its log file)."""
        argv = ["keepalived", "--vrrp", "--dont-fork", "--log-console", "--no-syslog"]
        argv += ["-f", str(self.path(node, "conf")), "-p", str(self.path(node, "pid"))]
        argv += ["-r", str(self.path(node, "vrrp.pid")), "-c", str(self.path(node, "chk.pid"))]
        proc = self.lab.spawn(node, argv)
        self.procs[node] = proc
        return proc

    def pids(self, node: str) -> list[int]:
        """The keepalived parent of node and its descendants (the VRRP child, scripts)."""
        proc = self.procs.get(node)
        if proc is None or not proc.alive():
            return []
        return process_tree([proc.pid])

    def vrrp_pid(self, node: str) -> int | None:
        """The VRRP child's pid, once it runs."""
        kids = [p for p in self.pids(node) if p != self.procs[node].pid]
        return kids[0] if kids else None

    def state(self, node: str) -> str | None:
        """The last VRRP state node's keepalived logged (MASTER, BACKUP, FAULT)."""
        proc = self.procs.get(node)
        if proc is None:
            return None
        found = _STATE_RE.findall(proc.output())
        return found[-1] if found else None

    def up(self, timeout: float = 30.0) -> str:
        """Start the first node until it is master, then the second until it hears adverts.

        The first node starts in MASTER state; the second is a settled backup once adverts
        from the master have arrived after its start (counted by an nftables counter).
        """
        first, second = self.lab.node_names[:2]
        count_vrrp(self.lab, second)
        self.start(first)
        self.wait(f"{first} MASTER", lambda: self.state(first) == "MASTER", timeout)
        self.wait(
            f"{FLOATING_IPV4} on {first}",
            lambda: self.lab.holders(FLOATING_IPV4) == [first],
            timeout,
        )
        self.start(second)
        self.wait(f"{second} BACKUP", lambda: self.state(second) == "BACKUP", timeout)
        seen = vrrp_count(self.lab, second)
        self.wait(
            f"adverts at {second}",
            lambda: vrrp_count(self.lab, second) >= seen + 2,
            timeout,
        )
        return first

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll check until true; raise with both logs if it never is."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                logs = {n: p.output()[-1500:] for n, p in self.procs.items()}
                raise TimeoutError(f"keepalived: {what} not within {timeout:g}s; logs: {logs}")
            time.sleep(POLL)

    def lower_priority(self, node: str, by: int = 150) -> None:
        """Lower node's priority through its track file (keepalived watches it by inotify)."""
        path = self.path(node, "track")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{-by}\n")
        # A rename, so keepalived never reads a half-written number.
        os.replace(tmp, path)

    def stop(self, node: str) -> None:
        """SIGTERM to the parent: keepalived's graceful stop (priority 0 advert, VIP removed)."""
        self.lab.kill(self.procs[node], signal.SIGTERM)

    def kill9(self, node: str) -> None:
        """SIGKILL the whole daemon (parent and VRRP child) with no chance to clean up.

        Both are stopped first: a parent that outlives its child respawns it, and a child
        that outlives its parent is told so (PR_SET_PDEATHSIG) and shuts down gracefully.
        """
        pids = self.pids(node)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        await_stopped(pids)
        for pid in reversed(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.lab.kill(self.procs[node])  # reaps the parent, our child
        await_gone(pids)

    def close(self) -> None:
        """End every keepalived by pid (SIGTERM, so it removes its address), then SIGKILL."""
        for node, proc in self.procs.items():
            if not proc.alive():
                continue
            pids = self.pids(node)
            self.lab.kill(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    if not await_gone([pid], 2.0):
                        os.kill(pid, signal.SIGKILL)
            if proc.alive():
                self.lab.kill(proc)


# ---------------------------------------------------------------- the benchmark's nftables


def _nft(lab: Lab, node: str, lines: list[str]) -> None:
    run(ns_argv(lab.node(node).ns, ["nft", "-f", "-"]), stdin="\n".join(lines) + "\n")


def _chain(lab: Lab, node: str) -> list[str]:
    ifname = lab.node(node).lan_if
    # Priority -600: before the lab's own chains (-500), so its cuts do not hide our count.
    return [
        f"table netdev {NFT_TABLE} {{",
        f'  chain in_lan {{ type filter hook ingress device "{ifname}" priority -600; }}',
        "}",
    ]


def count_vrrp(lab: Lab, node: str) -> None:
    """Count VRRP packets (IP protocol 112) arriving at node's LAN interface."""
    _nft(
        lab,
        node,
        [
            *_chain(lab, node),
            f'add rule netdev {NFT_TABLE} in_lan ip protocol vrrp counter comment "vrrp"',
        ],
    )


def vrrp_count(lab: Lab, node: str) -> int:
    """How many VRRP packets arrived at node's LAN interface since count_vrrp."""
    out = run(
        ns_argv(lab.node(node).ns, ["nft", "list", "chain", "netdev", NFT_TABLE, "in_lan"])
    ).stdout
    match = re.search(r"ip protocol vrrp counter packets (\d+)", out)
    return int(match.group(1)) if match else 0


def drop_on_lan(lab: Lab, node: str, match: str) -> None:
    """Drop only packets matching `match` (an nft expression) arriving at node's LAN end.

    Everything else on the LAN (the client's TCP, ARP) still flows: only the heartbeat or
    advert path is cut.
    """
    _nft(
        lab, node, [*_chain(lab, node), f"add rule netdev {NFT_TABLE} in_lan {match} counter drop"]
    )


def holds(lab: Lab, node: str, address: str = FLOATING_IPV4) -> bool:
    """Whether node has address configured (one `ip` call, cheaper than lab.holders)."""
    return bool(namespaces_with_address([lab.node(node).ns], address))
