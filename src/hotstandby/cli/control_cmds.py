"""Thin clients of the agent's control API: status, switchover, standby, online, ...

They hold no logic: each sends one request and prints the answer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import sys
import time
from typing import Any

from hotstandby.agent.control import default_socket
from hotstandby.agent.replication_status import explain
from hotstandby.agent.timeline import TIMELINE
from hotstandby.agent.timeline import render as render_timeline
from hotstandby.config import ConfigError, load
from hotstandby.config.durations import DurationError, parse_duration

TIMEOUT = 12.0  # an admin request waits for the engine's reply (10 s at most)


class ControlError(Exception):
    """The agent could not be asked."""


class ConfigUnreadableError(ControlError):
    """The socket could not be found because the cluster file is bad or missing."""


def socket_path(args: argparse.Namespace) -> str:
    """The socket named on the command line, or the cluster's default one."""
    if args.socket:
        return str(args.socket)
    try:
        return default_socket(load(args.config).name)
    except ConfigError as err:
        raise ConfigUnreadableError(f"{err} (or name the agent's socket with --socket)") from err


def call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request and read one answer; ControlError when there is none."""
    with _connect(path) as sock:
        data = b""
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError as err:
            raise ControlError(f"the agent at {path} did not answer within {TIMEOUT:g}s") from err
        except OSError as err:
            raise ControlError(f"the agent at {path} hung up: {err.strerror or err}") from err
    if not data:
        raise ControlError(f"the agent at {path} closed without answering")
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ControlError(f"the agent at {path} sent something that is not an answer")
    return answer


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError) as err:
        sock.close()
        raise ControlError(
            f"no agent is listening on {path}: is `hotstandby agent` running?"
        ) from err
    except PermissionError as err:
        sock.close()
        raise ControlError(f"permission denied on {path}: the control socket is root's") from err
    return sock


def _run(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any] | int:
    """The agent's answer, or the exit code once the problem is printed."""
    try:
        answer = call(socket_path(args), request)
    except ControlError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigUnreadableError) else 3
    if not answer.get("ok") and "error" in answer:
        print(f"hotstandby: {answer['error']}", file=sys.stderr)
        return 1
    return answer


def cmd_status(args: argparse.Namespace) -> int:
    """Print the cluster as this node sees it."""
    answer = _run(args, {"op": "status"})
    if isinstance(answer, int):
        return answer
    if args.json:
        print(json.dumps(answer["status"], indent=2))
    else:
        print(render_status(answer["status"]))
    return 0


def render_status(s: dict[str, Any]) -> str:
    """The status as a readable table."""
    lines = [
        f"cluster {s['cluster']}   node {s['node']}: {s['role'].upper()}   epoch {s['epoch']}"
        + ("   (standby by operator)" if s["offline"] else ""),
        "",
        f"{'peer':<12}{'role':<13}{'epoch':>6}  {'seen':>8}  links",
    ]
    for p in s["peers"]:
        seen = "never" if p["last_heard_ago"] is None else f"{p['last_heard_ago']:.2f}s"
        links = "  ".join(f"{name}:{v['state']}{_quality(v)}" for name, v in p["links"].items())
        role = p["role"] or "?"
        if not p["confirmed"]:
            role += " (lost)"
        lines.append(f"{p['name']:<12}{role:<13}{p['epoch'] or 0:>6}  {seen:>8}  {links}")
        if p.get("config_differs"):
            lines.append(f"{'':<12}CONFIGURATION DIFFERS from this node's (see `hotstandby check`)")
    lines += ["", f"{'link':<12}{'sent':>8}{'received':>10}  dropped"]
    for name, v in s["links"].items():
        dropped = ", ".join(f"{k} {n}" for k, n in v["dropped"].items()) or "-"
        lines.append(f"{name:<12}{v['sent']:>8}{v['received']:>10}  {dropped}")
    lines += [
        "",
        f"{'resource':<16}{'kind':<9}{'state':<12}{'node':<10}{'failures':>8}  "
        "last monitor / last action",
    ]
    for r in s["resources"]:
        lines.append(
            f"{r['name']:<16}{r['kind']:<9}{r['state']:<12}{r['node'] or '-':<10}"
            f"{r['failures']:>8}  {_monitor(r['last_monitor'])} / {r['last_result'] or '-'}"
        )
    if s.get("replication"):
        lines += ["", *explain(s["replication"])]
    if s["last_takeover"]:
        lines += ["", f"last takeover: {s['last_takeover']}"]
    if s.get("alarms"):
        lines += [
            "",
            f"{'alarm channel':<16}{'kind':<10}{'sent':>6}{'failed':>8}{'pending':>9}  last error",
        ]
        for name, c in s["alarms"].items():
            error = c["last_error"] or "-"
            if c.get("dropped"):
                error += f" ({c['dropped']} dropped: queue full)"
            lines.append(
                f"{name:<16}{c['kind']:<10}{c['delivered']:>6}{c['failed']:>8}{c['pending']:>9}  "
                f"{error}"
            )
    return "\n".join(lines)


def _monitor(last: dict[str, Any] | None) -> str:
    """The last monitor's answer in a few words."""
    if last is None:
        return "never"
    text = f"{last['outcome']} {last['ago']:.1f}s ago"
    return f"{text} ({last['detail']})" if last["detail"] and last["outcome"] != "ok" else text


def _quality(link: dict[str, Any]) -> str:
    """ " (loss 2%, rtt 1.2ms)" when known."""
    parts = []
    if link.get("loss") is not None:
        parts.append(f"loss {link['loss'] * 100:.0f}%")
    if link.get("round_trip") is not None:
        parts.append(f"rtt {link['round_trip'] * 1000:.1f}ms")
    return f" ({', '.join(parts)})" if parts else ""


def _admin(args: argparse.Namespace, action: str, target: str | None) -> int:
    answer = _run(args, {"op": "admin", "action": action, "target": target})
    if isinstance(answer, int):
        return answer
    message = answer.get("message", "")
    print(message, file=sys.stdout if answer["ok"] else sys.stderr)
    return 0 if answer["ok"] else 1


def parse_since(text: str, now: float) -> float:
    """`--since`: a duration back from now ("10m", "2h") or a local date and time (ISO 8601)."""
    try:
        return now - parse_duration(text)
    except DurationError:
        pass
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(
            f"--since: expected a duration (10m) or a date and time (2026-05-01T13:00), "
            f"found {text!r}"
        ) from None


def cmd_events(args: argparse.Namespace) -> int:
    """Print the event history, or follow it (filtered by time, kind and node)."""
    request: dict[str, Any] = {"op": "events", "follow": args.follow, "limit": args.limit}
    if args.since is not None:
        try:
            request["since"] = parse_since(args.since, time.time())
        except ValueError as err:
            print(f"hotstandby: {err}", file=sys.stderr)
            return 2
    if args.takeovers:
        request["kind"] = TIMELINE
    elif args.kind is not None:
        request["kind"] = args.kind
    if args.node is not None:
        request["node"] = args.node
    show = render_timeline if args.takeovers else render_record
    if not args.follow:
        answer = _run(args, request)
        if isinstance(answer, int):
            return answer
        for record in answer["events"]:
            print(json.dumps(record) if args.json else show(record))
        if args.takeovers and not answer["events"] and not args.json:
            print("no takeover recorded")
        return 0
    try:
        path = socket_path(args)
    except ControlError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 2
    try:
        with _connect(path) as sock:
            sock.settimeout(None)
            sock.sendall(json.dumps(request).encode() + b"\n")
            for line in sock.makefile("r"):
                record = json.loads(line)
                print(json.dumps(record) if args.json else show(record), flush=True)
    except ControlError as err:
        print(f"hotstandby: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        pass
    return 0


def render_record(r: dict[str, Any]) -> str:
    """One history record as a line."""
    stamp = time.strftime("%H:%M:%S", time.localtime(r["at"])) + f".{int(r['at'] % 1 * 1000):03d}"
    rule = f"  [{r['rule']}]" if r.get("rule") else ""
    return f"{stamp} {r['kind']:<22} {r['message']}{rule}"


def cmd_why(args: argparse.Namespace) -> int:
    """Print the decisions behind the current state."""
    answer = _run(args, {"op": "why"})
    if isinstance(answer, int):
        return answer
    print(f"role: {answer['role']}")
    for line in answer.get("now", []):
        print(line)
    for record in answer["reasons"]:
        print(render_record(record))
    return 0


def register(sub: Any) -> None:
    """Add the control clients to the parser."""

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
        p.add_argument(
            "-c",
            "--config",
            default="/etc/hotstandby/cluster.toml",
            help="the cluster file (to find the agent's socket)",
        )
        p.add_argument("--socket", help="the agent's control socket")
        return p

    p = client("status", "show nodes, links and resources as this node sees them")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = client("switchover", "move the group to another node, in order, without loss")
    p.add_argument("--to", dest="target", help="the node to move to (default: the best)")
    p.set_defaults(func=lambda a: _admin(a, "switchover", a.target))

    p = client("standby", "make a node ineligible to hold the group (moves it away)")
    p.add_argument("node", nargs="?", help="the node (default: this one)")
    p.set_defaults(func=lambda a: _admin(a, "standby", a.node))

    p = client("online", "make a node eligible again")
    p.add_argument("node", nargs="?", help="the node (default: this one)")
    p.set_defaults(func=lambda a: _admin(a, "online", a.node))

    p = client("maintenance", "stop or resume managing resources, cluster-wide")
    p.add_argument("state", choices=("on", "off"))
    p.set_defaults(func=lambda a: _admin(a, f"maintenance_{a.state}", None))

    p = client("cleanup", "forget a resource's failures so this node may host it again")
    p.add_argument("resource", nargs="?", help="the resource (default: all)")
    p.set_defaults(func=lambda a: _admin(a, "cleanup", a.resource))

    p = client("force-active", "take over without the peer or the arbiter (risks split brain)")
    p.set_defaults(func=lambda a: _admin(a, "force_active", None))

    p = client("events", "the event history")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=int, default=100, help="how many past events")
    p.add_argument("--since", help="only events since: a duration back (10m) or a time (ISO)")
    p.add_argument("--kind", help="only events whose kind starts with this (alarm, role, ...)")
    p.add_argument("--node", help="only events recorded by this node")
    p.add_argument(
        "--takeovers", action="store_true", help="the timelines of past takeovers, readably"
    )
    p.set_defaults(func=cmd_events)

    p = client("why", "the reasons behind the current state")
    p.set_defaults(func=cmd_why)
