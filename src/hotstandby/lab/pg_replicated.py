"""PostgreSQL replicated in the lab (each node its own copy), and faults under a write workload.

Shared by the lab tests (tests/postgres/test_replicated_failover.py) and the benchmark
(bench/postgres_replicated.py). The cluster: the floating IP, then the postgres resource in
mode = "replicated" with a [replication] table, fenced through the lab. Only alpha's data
directory is made (initdb); beta's is left empty, and the cluster makes beta's copy itself (a
base backup) once beta's agent is the standby. Replicas stream over the private link.

The faults (each under hotstandby.lab.pg_workload's client, which writes through the floating
IP from the client namespace with an ordinary connection string):

- `takeover_trial`: the primary loses power (`Lab.power_loss`) or is frozen (SIGSTOP of every
  process in its namespace: the agent and its servers); the replica is promoted. Then, with
  `rejoin`, the old primary's node comes back (powered on, or resumed; its agent restarted
  when the fence killed it) and must rejoin as a replica, any data the new primary lacks
  saved aside (the alarm data_diverged names it). `lag_cut` cuts the replication link that
  long before the fault: in asynchronous mode the replica then lacks the last commits, which
  the verifier must count as lost.
- `cut_trial`: only PostgreSQL's TCP between the nodes is dropped (nftables in both node
  namespaces; heartbeats pass): no takeover; with on_replica_lost = "degrade" commits stall
  for about degrade_after and go on without the replica, which is reported ineligible; once
  healed it catches up and is promotable again.
- `switchover_trial`: switchovers back and forth; each old primary rejoins as a replica
  without a rewind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hotstandby.cli.control_cmds import ControlError, call
from hotstandby.lab import power
from hotstandby.lab._cmd import LabError, run
from hotstandby.lab.cluster import ClusterSpec, LabCluster, LabTimeoutError, fence_arbitration
from hotstandby.lab.netns import ns_argv
from hotstandby.lab.pg_common import (
    BINDIR,
    PORT,
    RESOURCE,
    Workload,
    initdb,
    other,
    postgres_dir,
    skip_reason,
    steps,
)
from hotstandby.lab.pg_workload import Outage, Verdict, outage
from hotstandby.lab.topology import CLIENT, FLOATING_IPV4, Lab

__all__ = [
    "Cut",
    "Move",
    "Rejoin",
    "ReplCluster",
    "ReplOptions",
    "Switchovers",
    "Takeover",
    "bring_up",
    "cut_replication",
    "cut_trial",
    "heal_replication",
    "repl_cluster",
    "skip_reason",
    "switchover_trial",
    "takeover_trial",
]

NODES = ("alpha", "beta")
LAN = "192.0.2.0/24"
PRIVATE = "198.51.100.0/24"
#: The nftables table of the replication cut, in each node's namespace.
CUT_TABLE = "hotstandby_pgcut"
#: A client with no outcome this long after a takeover is not coming free by itself.
STUCK_AFTER = 20.0
#: Commits acknowledged this soon after a cut were on their way before it.
CUT_SETTLE = 0.5
#: The lab's fence (a power-off through the lab) takes well under a second: a shorter bound
#: than the default 10 s keeps a takeover's evidence time (about 4.1 s with it) under a
#: degrade_after of 5 s, which `check` demands.
TIMERS = {"fence_timeout": "3s"}
#: Server settings of the lab. A short wal_sender_timeout: a replica behind a cut link
#: stops counting as streaming after it, not after the default minute; likewise a replica
#: gives up on a silent primary after wal_receiver_timeout and reconnects.
SETTINGS = {
    "wal_keep_size": "256MB",
    "shared_buffers": "32MB",
    "wal_sender_timeout": "2s",
    "wal_receiver_timeout": "2s",
}


@dataclass(frozen=True)
class ReplOptions:
    """The [replication] rules of the lab cluster."""

    synchronous: bool = True
    on_replica_lost: str = "degrade"
    degrade_after: str = "5s"
    max_lag: int = 16 << 20
    follow_interval: str = "2s"
    settings: Mapping[str, str] = field(default_factory=lambda: dict(SETTINGS))


def _toml_table(values: Mapping[str, str]) -> str:
    return "{ " + ", ".join(f'{k} = "{v}"' for k, v in values.items()) + " }"


def config(lab: Lab, opts: ReplOptions) -> str:
    """The [replication] table and the postgres resource of the cluster file."""
    per_node = {
        key: _toml_table({n: str(lab.workdir / n / sub) for n in NODES})
        for key, sub in (("pgdata", "pg"), ("socket_dir", "sock"))
    }
    addresses = _toml_table({n: str(lab.node(n).priv_ipv4) for n in NODES})
    return f"""
[replication]
resource = "{RESOURCE}"
synchronous = {"true" if opts.synchronous else "false"}
on_replica_lost = "{opts.on_replica_lost}"
degrade_after = "{opts.degrade_after}"
max_lag = {opts.max_lag}
follow_interval = "{opts.follow_interval}"

[[resource]]
name = "{RESOURCE}"
kind = "postgres"
start_timeout = "60s"
stop_timeout = "30s"
monitor_interval = "1s"
monitor_timeout = "4s"
[resource.params]
mode = "replicated"
bindir = "{BINDIR}"
pgdata = {per_node["pgdata"]}
socket_dir = {per_node["socket_dir"]}
port = {PORT}
replication_address = {addresses}
follow_timeout = "120s"
settings = {_toml_table(opts.settings)}
"""


@dataclass
class ReplCluster:
    """The lab and the replicated cluster on it (agents not started)."""

    lab: Lab
    cluster: LabCluster
    opts: ReplOptions


@contextmanager
def repl_cluster(prefix: str, opts: ReplOptions | None = None) -> Iterator[ReplCluster]:
    """A two-node lab (alpha, beta) with replicated PostgreSQL: alpha's copy made, beta's empty."""
    opts = opts or ReplOptions()
    with Lab(prefix, nodes=NODES, disk_size=0) as lab:
        # The postgres user walks through the lab's directory to its sockets and data.
        lab.workdir.chmod(0o755)
        for node in NODES:
            postgres_dir(lab.workdir / node, 0o755)
            postgres_dir(lab.workdir / node / "pg")
            postgres_dir(lab.workdir / node / "sock", 0o755)
        # Clients on the LAN; replicas, and pg_rewind's connection to its source, on the
        # private link.
        initdb(
            lab.workdir / NODES[0] / "pg",
            [
                f"host all all {LAN} trust",
                f"host all all {PRIVATE} trust",
                f"host replication all {PRIVATE} trust",
            ],
        )
        spec = ClusterSpec(
            arbitration=fence_arbitration(lab), timers=dict(TIMERS), extra=config(lab, opts)
        )
        cluster = LabCluster(lab, spec)
        cluster.write()
        # A file the agents would refuse fails here, with check's words, not after a wait.
        checked = run([sys.executable, "-m", "hotstandby", "check", str(cluster.config)],
                      check=False, timeout=60)  # fmt: skip
        if checked.returncode != 0:
            raise LabError(f"the cluster file does not pass check: {checked.stderr.strip()}")
        yield ReplCluster(lab, cluster, opts)
        # The Lab ends the agents and then every process left in its namespaces (the servers).


# ---- the replication link ----------------------------------------------------------------


def cut_replication(lab: Lab) -> None:
    """Drop PostgreSQL's TCP on the private link, in both nodes (heartbeats still pass)."""
    rules = f"""table inet {CUT_TABLE} {{
  chain input {{
    type filter hook input priority -10; policy accept;
    iifname "priv0" tcp dport {PORT} counter drop
    iifname "priv0" tcp sport {PORT} counter drop
  }}
}}
"""
    for node in NODES:
        run(ns_argv(lab.node(node).ns, ["nft", "-f", "-"]), stdin=rules)


def heal_replication(lab: Lab) -> None:
    """Undo cut_replication (nothing to do where it was not cut)."""
    for node in NODES:
        ns = lab.node(node).ns
        listed = run(ns_argv(ns, ["nft", "list", "tables"])).stdout
        if f"inet {CUT_TABLE}" in listed:
            run(ns_argv(ns, ["nft", "delete", "table", "inet", CUT_TABLE]))


# ---- looking at the replication ----------------------------------------------------------


def view(rc: ReplCluster, node: str) -> dict[str, Any] | None:
    """node's view of the replicated data (status' "replication"), None if it does not answer."""
    s = rc.cluster.status(node)
    if s is None:
        return None
    found: dict[str, Any] | None = s.get("replication")
    return found


def why(rc: ReplCluster, node: str) -> list[str]:
    """`hotstandby why`'s account of the replicated data on node."""
    try:
        answer = call(rc.cluster.socket(node), {"op": "why"})
    except (ControlError, OSError, ValueError):
        return []
    return [str(line) for line in answer.get("now", [])]


def promotable(rc: ReplCluster, primary: str, replica: str) -> bool:
    """Whether `primary` runs as primary and lists `replica` as promotable (caught up)."""
    v = view(rc, primary)
    return v is not None and bool(v["primary"]) and replica in v["promotable"]


def wait_promotable(rc: ReplCluster, primary: str, replica: str, timeout: float = 60.0) -> float:
    """Wait until `primary` lists `replica` as promotable; how long it took."""
    began = time.monotonic()
    rc.cluster.wait_for(
        f"{primary} to list {replica}'s copy as promotable",
        lambda: promotable(rc, primary, replica),
        timeout,
    )
    return time.monotonic() - began


def bring_up(rc: ReplCluster, timeout: float = 90.0) -> str:
    """Start both agents; the primary, once the other node's copy is promotable."""
    active = rc.cluster.up(timeout)
    standby = other(active)

    def ready() -> bool:
        v = view(rc, standby)
        follow = None if v is None else v.get("following")
        if follow is not None and follow.get("detail") == "not replicated":
            # The agent found no replicated adapter behind the resource: nothing would come.
            raise LabError(f"{standby}'s agent does not drive {RESOURCE} as replicated data")
        return promotable(rc, active, standby)

    rc.cluster.wait_for(f"{active} to list {standby}'s copy as promotable", ready, timeout)
    return active


def events(rc: ReplCluster, node: str, kind: str, since: float) -> list[dict[str, Any]]:
    """node's events of `kind` (a prefix) recorded since wall-clock time `since`."""
    return [
        e
        for e in rc.cluster.events(node)
        if str(e["kind"]).startswith(kind) and float(e.get("at", 0.0)) >= since
    ]


def follow_record(rc: ReplCluster, node: str, since: float) -> tuple[str, ...]:
    """How node's copy came to follow since `since`: its follow steps and replica events."""
    out = [
        str(e["message"])
        for e in rc.cluster.events(node)
        if float(e.get("at", 0.0)) >= since
        and (
            e["kind"] == "replica"
            or (e["kind"] == "resource.step" and str(e["message"]).startswith(f"{RESOURCE}: "))
        )
    ]
    return tuple(out)


def _between(records: list[dict[str, Any]], start: float, end: float | None) -> Outage:
    """The client's outage around `start`, counting only what came before `end`."""
    return outage([r for r in records if end is None or float(r["t"]) < end], start)


# ---- the old primary comes back ----------------------------------------------------------


def _reboot(lab: Lab, node: str) -> None:
    """What a real node's reboot forgets and a lab namespace keeps: addresses the agent added
    (the floating IP) and the dead processes' TCP connections. Done while still cut off."""
    ns = lab.node(node).ns
    shown = run(ns_argv(ns, ["ip", "-o", "addr", "show", "dev", "lan0"])).stdout
    if f" {FLOATING_IPV4}/" in shown:
        run(ns_argv(ns, ["ip", "addr", "del", f"{FLOATING_IPV4}/24", "dev", "lan0"]))
    run(ns_argv(ns, ["ss", "-K", "-t", "-a"]))


@dataclass(frozen=True)
class Rejoin:
    """The old primary's return as a replica of the new one."""

    took: float  # from its return until the new primary listed its copy as promotable
    how: tuple[str, ...]  # its follow steps and replica events
    diverged: tuple[str, ...]  # its data_diverged alarms
    saved: tuple[str, ...]  # where its diverged data was kept (the replica events say)


def rejoin(rc: ReplCluster, old: str, new: str, restart: bool, timeout: float = 120.0) -> Rejoin:
    """Bring `old` back (power on and start its agent when `restart`); wait for its copy."""
    lab, cluster = rc.lab, rc.cluster
    since = time.time()
    began = time.monotonic()
    if restart:
        _reboot(lab, old)
        lab.power_on(old)
        cluster.start(old)
    wait_promotable(rc, new, old, timeout)
    took = time.monotonic() - began
    replica_events = events(rc, old, "replica", since)
    alarms = events(rc, old, "alarm.data_diverged", since)
    saved = tuple(str(e["diverged"]) for e in replica_events if e.get("diverged"))
    return Rejoin(
        took=took,
        how=follow_record(rc, old, since),
        diverged=tuple(str(e["message"]) for e in alarms),
        saved=saved,
    )


# ---- a takeover under writes -------------------------------------------------------------


@dataclass(frozen=True)
class Takeover:
    """One unplanned loss of the primary under the write workload."""

    fault: str  # "power" or "freeze"
    old: str
    new: str
    verdict: Verdict
    outage: Outage
    takeover: float  # from the fault until the new node reported itself active
    lag_cut: float  # the replication link was cut this long before the fault
    steps: tuple[str, ...]  # the new primary's steps of the postgres resource
    rejoin: Rejoin | None
    # The client was still blocked STUCK_AFTER seconds after the takeover (its request had been
    # acknowledged by the old primary's kernel, so it sent nothing the new holder could
    # answer with a reset) and was freed by closing its socket, as an application's own
    # timeout would; outage.freed is then that moment, not the takeover's doing.
    stuck: bool = False


def _unstick(rc: ReplCluster, load: Workload, since: float) -> bool:
    """Wait for the client's first outcome after the takeover (at `since`); free a client
    still blocked then."""

    def heard() -> bool:
        return any(float(r["t"]) > since for r in load.poll())

    try:
        load.wait("the client's first outcome after the takeover", heard, STUCK_AFTER)
    except LabTimeoutError:
        # The socket destroyed in the client's namespace: what a client-side timeout does.
        argv = ["ss", "-K", "-t", "dst", FLOATING_IPV4, "dport", "=", str(PORT)]
        rc.lab.run(CLIENT, argv)
        return True
    return False


def _freeze_node(lab: Lab, node: str) -> list[int]:
    """SIGSTOP every process in node's namespace (its agent and its servers)."""
    ns = lab.node(node).ns
    return power.freeze_tree(lambda: power.node_pids(ns))


def _resume(pids: list[int]) -> None:
    for pid in pids:
        # Those the fence killed are gone: only survivors are continued.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@contextmanager
def _under_writes(rc: ReplCluster, warmup: int) -> Iterator[tuple[str, str, Workload]]:
    """The agents up and the workload writing through the floating address: `warmup`
    commits acknowledged and the replica promotable. Yields (primary, replica, workload);
    the workload is closed on the way out, however the trial ends."""
    primary = bring_up(rc)
    replica = other(primary)
    load = Workload(rc.lab, rc.cluster)
    try:
        load.prepare()
        load.start()
        load.wait_acked(warmup)
        wait_promotable(rc, primary, replica)
        yield primary, replica, load
    finally:
        load.close()


def takeover_trial(
    rc: ReplCluster,
    *,
    fault: str = "power",
    warmup: int = 200,
    after: int = 200,
    lag_cut: float = 0.0,
    back: bool = True,
) -> Takeover:
    """Start the agents, run the workload, lose the primary mid-way, verify, bring it back."""
    if fault not in ("power", "freeze"):
        raise ValueError(f"fault must be 'power' or 'freeze', not {fault!r}")
    lab, cluster = rc.lab, rc.cluster
    with _under_writes(rc, warmup) as (active, standby, load):
        if lag_cut > 0:
            cut_replication(lab)
            # The fault's own timing: the replica falls this far behind.
            time.sleep(lag_cut)
        frozen: list[int] = []
        began = time.monotonic()
        if fault == "power":
            lab.power_loss(active)
            left = power.node_pids(lab.node(active).ns)
            if left:
                raise LabError(f"processes of {active} outlived its power loss: {left}")
        else:
            # The standby learns the primary's client connections about a heartbeat interval
            # after they open (a second at most): a client connected just before is not among
            # them yet, and a frozen primary's client is freed only by the tickles sent for
            # what the standby knew.
            def known() -> bool:
                status = cluster.status(standby) or {}
                return bool(status.get("connections", {}).get("known", {}).get(active))

            cluster.wait_for(f"{standby} to know {active}'s client connections", known, 10)
            began = time.monotonic()
            frozen = _freeze_node(lab, active)
        if cluster.wait_active(60, other_than=active) != standby:
            raise LabError("the standby did not take over")
        took = time.monotonic() - began
        heal_replication(lab)
        stuck = _unstick(rc, load, began + took)
        load.wait_acked(after, after=began)
        records = load.stop()
        verdict = load.verify()
        fell = outage(records, began)
        new_steps = steps(cluster, standby)
        back_again: Rejoin | None = None
        if back:
            if fault == "freeze":
                _resume(frozen)
            agent = cluster.agents[active]
            # A fenced node is off: powered on, its agent starts afresh.
            back_again = rejoin(rc, active, standby, restart=not agent.alive())
        return Takeover(
            fault, active, standby, verdict, fell, took, lag_cut, new_steps, back_again, stuck
        )


# ---- the replication link cut ------------------------------------------------------------


@dataclass(frozen=True)
class Cut:
    """The replication link cut under writes, then healed."""

    primary: str
    replica: str
    verdict: Verdict
    stall: Outage  # the client's commits around the cut
    degraded: float | None  # from the cut until the primary went on without the replica
    acked_during: int  # commits acknowledged while the link was cut (0 with "wait")
    ineligible: tuple[str, ...]  # replica_ineligible alarms (both nodes) during the cut
    degrade: tuple[str, ...]  # the primary's records of the replicas commits wait for
    why_not: str  # the replica's own view: why its copy may not be promoted
    why: tuple[str, ...]  # `hotstandby why` on the replica, during the cut
    roles: Mapping[str, str | None]  # both nodes' roles just before the heal
    takeovers: int  # role changes to taking over, on either node, during the trial
    caught_up: float  # from the heal until the replica was promotable again (0: it stayed so)
    resumed: float  # from the heal until the next acknowledged commit


def cut_trial(
    rc: ReplCluster, *, warmup: int = 200, during: int = 100, after: int = 100, hold: float = 10.0
) -> Cut:
    """Cut the replication link under writes, see the cluster ride it out, heal, verify.

    With on_replica_lost = "wait" (synchronous) commits block for as long as the cut lasts:
    it is healed after `hold` seconds.
    """
    lab, cluster = rc.lab, rc.cluster
    waits = rc.opts.synchronous and rc.opts.on_replica_lost == "wait"
    with _under_writes(rc, warmup) as (primary, replica, load):
        # Healed however the trial ends: a cut left behind would break the next one.
        try:
            since = time.time()
            began = time.monotonic()
            cut_replication(lab)
            degraded: float | None = None
            if waits:
                # The fault's own length: nothing ends it but the heal.
                time.sleep(hold)
            else:

                def going_on() -> bool:
                    v = view(rc, primary)
                    return v is not None and replica not in v["required"] and not v["dropping"]

                load.wait("the primary to go on without its replica", going_on, 120)
                degraded = time.monotonic() - began
                load.wait_acked(during, after=began + degraded)

                def reported() -> bool:
                    v = view(rc, replica)
                    return v is not None and not v["copy_promotable"]

                load.wait("the replica to say its copy may not be promoted", reported, 30)
            # Commits acknowledged during the cut (after a moment for those already in flight).
            acked_during = load.acked(after=began + CUT_SETTLE)
            ineligible = tuple(
                str(e["message"])
                for node in NODES
                for e in events(rc, node, "alarm.replica_ineligible", since)
            )
            degrade = tuple(str(e["message"]) for e in events(rc, primary, "replication", since))
            replica_view = view(rc, replica) or {}
            said = tuple(why(rc, replica))
            roles = cluster.roles()
            healed = time.monotonic()
            heal_replication(lab)
            caught_up = wait_promotable(rc, primary, replica, 120)
            load.wait_acked(after, after=healed + caught_up)
            resumed = min(float(r["t"]) for r in load.poll() if "ok" in r and r["t"] > healed)
            records = load.stop()
            verdict = load.verify()
            takeovers = sum(
                1
                for node in NODES
                for e in events(rc, node, "role", since)
                if "taking" in str(e["message"]).split("->")[-1]
            )
            return Cut(
                primary=primary,
                replica=replica,
                verdict=verdict,
                stall=_between(records, began, None if waits else healed),
                degraded=degraded,
                acked_during=acked_during,
                ineligible=ineligible,
                degrade=degrade,
                why_not=str(replica_view.get("why_not_promotable") or ""),
                why=said,
                roles=roles,
                takeovers=takeovers,
                caught_up=caught_up,
                resumed=resumed - healed,
            )
        finally:
            heal_replication(lab)


# ---- switchovers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """One switchover."""

    old: str
    new: str
    outage: Outage
    took: float  # from the request until the new node reported itself active
    rejoined: float  # from the request until the old primary's copy was promotable again
    how: tuple[str, ...]  # the old primary's follow steps and replica events


@dataclass(frozen=True)
class Switchovers:
    """Switchovers back and forth under writes."""

    verdict: Verdict
    moves: tuple[Move, ...]


def switchover_trial(
    rc: ReplCluster, *, count: int = 2, warmup: int = 200, after: int = 100
) -> Switchovers:
    """Switch over `count` times under writes, each time once the replica is caught up."""
    cluster = rc.cluster
    with _under_writes(rc, warmup) as (first, _, load):
        primary = first  # then whichever node the last switchover made the primary
        marks: list[tuple[str, str, float, float, float, tuple[str, ...]]] = []
        for _ in range(count):
            replica = other(primary)
            wait_promotable(rc, primary, replica)
            since = time.time()
            began = time.monotonic()
            answer = cluster.admin(primary, "switchover")
            if not answer.get("ok"):
                raise LabError(f"the switchover was refused: {answer}")
            if cluster.wait_active(60, other_than=primary) != replica:
                raise LabError("the switchover did not move the group to the replica")
            took = time.monotonic() - began
            load.wait_acked(after, after=began + took)
            wait_promotable(rc, replica, primary, 120)
            rejoined = time.monotonic() - began
            marks.append(
                (primary, replica, began, took, rejoined, follow_record(rc, primary, since))
            )
            primary = replica
        records = load.stop()
        verdict = load.verify()
        moves = []
        for i, (old, new, began, took, rejoined, how) in enumerate(marks):
            end = marks[i + 1][2] if i + 1 < len(marks) else None
            moves.append(Move(old, new, _between(records, began, end), took, rejoined, how))
        return Switchovers(verdict, tuple(moves))
