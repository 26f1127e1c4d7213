"""`hotstandby check FILE [--json]`: validate a configuration and print its timing budget.

Exit status 0 when the file may run (warnings allowed), 2 when it must not; the errors go
to stderr as `FILE:LINE: key.path: expected X, found Y`, one per line.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import textwrap
from typing import Any, TextIO

from hotstandby.agent.alarms import validate as validate_alarms
from hotstandby.agent.fence import FenceConfigError, parse_methods
from hotstandby.agent.http.token import TokenError, load_token
from hotstandby.agent.resources import KINDS, host_risks, validate
from hotstandby.config.budget import (
    Budget,
    Risk,
    evidence_time,
    lease_slack,
    minimum_lease,
    risks,
    takeover_budget,
)
from hotstandby.config.durations import format_duration
from hotstandby.config.errors import ConfigError, KeyPath, format_key
from hotstandby.config.loader import load_bytes, read_file
from hotstandby.config.positions import line_of
from hotstandby.core.cluster import ArbitrationMode, Cluster, OnReplicaLost

EXIT_OK = 0
EXIT_BAD_FILE = 2
_LEASED = (ArbitrationMode.WITNESS, ArbitrationMode.DISK)


def register(sub: Any) -> None:
    """Add the subcommand to the parser."""
    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="validate a configuration file and print its timing budget",
        description="Validate a cluster configuration file and print the worst-case takeover "
        "time, in parts, and every warning. Exit 0 when it may run, 2 when it must not.",
    )
    p.add_argument("file", help="the cluster's TOML configuration file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--node",
        help="also check this machine's state as this node (volumes in /etc/fstab, units "
        "enabled at boot, ...); default: the host name, when it names a node",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run `hotstandby check` with parsed arguments; the exit status."""
    return check(args.file, as_json=args.json, out=sys.stdout, err=sys.stderr, node=args.node)


def check(path: str, *, as_json: bool, out: TextIO, err: TextIO, node: str | None = None) -> int:
    """Check the file at `path`, reporting to `out` (and errors to `err`); the exit status."""
    try:
        data = read_file(path)
        cluster = load_bytes(data, path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=err)
        if as_json:
            print(json.dumps(_error_json(path, error), indent=2), file=out)
        return EXIT_BAD_FILE
    text = data.decode("utf-8")  # load_bytes accepted it, so it is UTF-8
    try:
        # The fence methods' own keys are the fencing adapter's to judge.
        parse_methods(cluster)
    except FenceConfigError as error:
        print(f"{path}:{line_of(text, ('arbitration', 'fence'))}: {error}", file=err)
        return EXIT_BAD_FILE
    bad = _resource_errors(path, text, cluster) + _alarm_errors(path, text, cluster)
    if bad:
        for line in bad:
            print(line, file=err)
        return EXIT_BAD_FILE
    found = list(risks(cluster)) + _resource_risks(cluster, node) + _http_risks(cluster, node)
    found += _witness_risks(cluster)
    warnings = [(line_of(text, r.key), r) for r in found]
    report = takeover_budget(cluster)
    if as_json:
        print(json.dumps(_report_json(path, cluster, report, warnings), indent=2), file=out)
    else:
        out.write(_report_text(path, cluster, report, warnings))
    return EXIT_OK


def _resource_key(cluster: Cluster, name: str, key: str | None) -> KeyPath:
    index = cluster.resource_names.index(name)
    return ("resource", index, "params", key) if key else ("resource", index)


def _resource_errors(path: str, text: str, cluster: Cluster) -> list[str]:
    """Each resource parameter error as `FILE:LINE: message`; unsupported kinds are risks."""
    lines = []
    for error in validate(cluster):
        kind = cluster.resources[cluster.resource_names.index(error.resource)].kind
        if kind not in KINDS:
            continue
        key = _resource_key(cluster, error.resource, error.key)
        lines.append(f"{path}:{line_of(text, key)}: {error}")
    return lines


def _alarm_errors(path: str, text: str, cluster: Cluster) -> list[str]:
    """Each [[alarm]] table's error as `FILE:LINE: message`."""
    lines = []
    for error in validate_alarms(cluster):
        key: KeyPath = ("alarm", error.index, error.key) if error.key else ("alarm", error.index)
        lines.append(f"{path}:{line_of(text, key)}: {error}")
    return lines


def _resource_risks(cluster: Cluster, node: str | None) -> list[Risk]:
    """Kinds without an adapter yet, and what this machine's state risks as `node`."""
    found = [
        Risk(
            _resource_key(cluster, r.name, None),
            f"resource {r.name!r}: kind {r.kind.value!r} has no adapter in this version; "
            "the agent refuses to start with it",
        )
        for r in cluster.resources
        if r.kind not in KINDS
    ]
    here = node or socket.gethostname()
    if here in cluster.node_names:
        for resource, key, message in host_risks(cluster, here):
            where = _resource_key(cluster, resource.name, key)
            found.append(Risk(where, f"on {here}: resource {resource.name!r}: {message}"))
    return found


def _http_risks(cluster: Cluster, node: str | None) -> list[Risk]:
    """A token file this node's agent could not use: it would serve no HTTP interface."""
    http = cluster.http
    here = node or socket.gethostname()
    if http is None or http.token_file is None or here not in http.listen:
        return []
    try:
        load_token(http.token_file)
    except TokenError as error:
        message = f"on {here}: {error}; the agent runs without its HTTP interface"
        return [Risk(("http", "token_file"), message)]
    return []


def _witness_risks(cluster: Cluster) -> list[Risk]:
    """A witness at one of the nodes' own addresses: it goes down with that node."""
    witness = cluster.arbitration.witness
    if cluster.arbitration.mode is not ArbitrationMode.WITNESS or witness is None:
        return []
    host = witness.rpartition(":")[0].strip("[]").lower()
    for n in cluster.nodes:
        own = [n.address] + [link.endpoints.get(n.name) for link in cluster.links]
        if host in {a.lower() for a in own if a}:
            message = (
                f"the witness {witness} is at an address of node {n.name}: a witness on a node "
                "is no witness (when that node fails, the other cannot get the lease). Run "
                "`hotstandby witness` on a third machine."
            )
            return [Risk(("arbitration", "witness"), message)]
    return []


def _arbitration_text(cluster: Cluster) -> str:
    """The mode, and where the witness is."""
    arb = cluster.arbitration
    if arb.mode is ArbitrationMode.WITNESS and arb.witness is not None:
        return f"{arb.mode.value} at {arb.witness} (UDP; `hotstandby witness` there)"
    return arb.mode.value


def _error_json(path: str, error: ConfigError) -> dict[str, Any]:
    problems = [
        {
            "line": p.line,
            "key": format_key(p.key),
            "expected": p.expected,
            "found": p.found,
            "message": str(p),
        }
        for p in error.problems
    ]
    return {"file": path, "ok": False, "errors": problems}


def _report_json(
    path: str, cluster: Cluster, report: Budget, warnings: list[tuple[int, Risk]]
) -> dict[str, Any]:
    return {
        "file": path,
        "ok": True,
        "cluster": {
            "name": cluster.name,
            "digest": cluster.digest,
            "nodes": list(cluster.node_names),
            "links": [{"name": link.name, "kind": link.kind.value} for link in cluster.links],
            "resources": [{"name": r.name, "kind": r.kind.value} for r in cluster.resources],
            "arbitration": cluster.arbitration.mode.value,
            "http": _http_json(cluster),
        },
        "budget": {
            "total_seconds": report.total,
            "parts": [
                {"label": p.label, "seconds": p.seconds, "detail": p.detail} for p in report.parts
            ],
        },
        "warnings": [
            {"line": line, "key": format_key(r.key), "message": r.message} for line, r in warnings
        ],
    }


def _http_json(cluster: Cluster) -> dict[str, Any] | None:
    http = cluster.http
    if http is None:
        return None
    return {"listen": dict(http.listen), "token_file": http.token_file, "metrics": http.metrics}


def _http_text(cluster: Cluster) -> str:
    """The HTTP interface in one line: where each node serves, actions, metrics."""
    http = cluster.http
    if http is None:
        return "off (no [http] table)"
    where = ", ".join(f"{node} http://{addr}/" for node, addr in http.listen.items())
    actions = (
        f"actions with the token in {http.token_file}"
        if http.token_file
        else "read-only (no token_file)"
    )
    metrics = "/metrics on" if http.metrics else "/metrics off"
    health = "; /health/ on" if http.health else ""
    return f"{where}; {actions}; {metrics}{health}"


def _replication_text(cluster: Cluster) -> str:
    """The replicated data's rules in one line."""
    rules = cluster.replication
    if rules is None:
        return "none (no [replication] table)"
    if not rules.synchronous:
        lag = "any lag" if rules.max_lag < 0 else f"at most {rules.max_lag} bytes behind"
        return f"{rules.resource}, asynchronous: a replica is promoted {lag}"
    lost = (
        "commits wait for it"
        if rules.on_replica_lost is OnReplicaLost.WAIT
        else f"commits go on without it after {format_duration(rules.degrade_after)}"
    )
    evidence = format_duration(evidence_time(cluster))
    return (
        f"{rules.resource}, synchronous; a lost replica: {lost} "
        f"(a takeover has its evidence within {evidence})"
    )


def _report_text(
    path: str, cluster: Cluster, report: Budget, warnings: list[tuple[int, Risk]]
) -> str:
    t = cluster.timers
    links = ", ".join(f"{link.name} ({link.kind.value})" for link in cluster.links)
    timers = f"interval {format_duration(t.interval)}, dead_time {format_duration(t.dead_time)}"
    if cluster.arbitration.mode in _LEASED:
        # How much room the lease rule leaves, so a tuner sees how far it may go down.
        timers += f", lease {format_duration(t.lease)}"
        timers += f" (rule minimum {format_duration(minimum_lease(cluster))},"
        timers += f" slack {format_duration(lease_slack(cluster))})"
    lines = [
        f"{path}: OK, cluster {cluster.name!r}, sha256 {cluster.digest}",
        f"  nodes: {', '.join(cluster.node_names)}",
        f"  links: {links}",
        f"  arbitration: {_arbitration_text(cluster)}",
        f"  timers: {timers}",
        f"  http: {_http_text(cluster)}",
        f"  replication: {_replication_text(cluster)}",
        "",
        "Worst-case takeover, from the active's death to the standby's services up:",
    ]
    width = max(len(p.label) for p in report.parts)
    for part in report.parts:
        lines.append(f"  {part.seconds:10.3f}s  {part.label:<{width}}  {part.detail}")
    lines.append(f"  {'-' * 11}")
    lines.append(f"  {report.total:10.3f}s  total")
    lines.append("")
    if not warnings:
        lines.append("No warnings.")
    else:
        lines.append(f"{len(warnings)} WARNING{'S' if len(warnings) > 1 else ''}:")
        for line, risk in warnings:
            lines.append(f"  WARNING: {path}:{line}: {format_key(risk.key)}:")
            lines.extend(f"      {chunk}" for chunk in textwrap.wrap(risk.message, 84))
    return "\n".join(lines) + "\n"
