"""Network namespaces: create, delete, run commands inside, and look at their addresses."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hotstandby.lab._cmd import DEFAULT_TIMEOUT, LabError, run


def ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs argv inside namespace ns (ip execs it, so the pid is the program's)."""
    return ["ip", "netns", "exec", ns, *argv]


def create_namespace(ns: str) -> None:
    """Create a named network namespace with its loopback up."""
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def delete_namespace(ns: str) -> None:
    """Delete a named network namespace; a missing one is not an error."""
    if ns in list_namespaces():
        run(["ip", "netns", "delete", ns])


def list_namespaces() -> list[str]:
    """Names of all named network namespaces on this machine."""
    out = run(["ip", "-j", "netns", "list"]).stdout.strip()
    # iproute2 prints nothing at all (not "[]") when there are no namespaces.
    if not out:
        return []
    return [str(entry["name"]) for entry in json.loads(out)]


def namespace_pids(ns: str) -> list[int]:
    """Pids of every process whose network namespace is ns."""
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(tok) for tok in out.split()]


def set_sysctls(ns: str, values: Mapping[str, str]) -> None:
    """Set sysctls inside ns in one call (net.* sysctls are per namespace)."""
    if values:
        run(ns_argv(ns, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())]))


def link_addresses(ns: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """`ip -j addr` of namespace ns, parsed."""
    out = run(["ip", "-n", ns, "-j", "addr", "show"], timeout=timeout).stdout
    data: list[dict[str, Any]] = json.loads(out or "[]")
    return data


def _has_address(
    links: list[dict[str, Any]], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> bool:
    for link in links:
        for info in link.get("addr_info", []):
            local = info.get("local")
            if local is not None and ipaddress.ip_address(local) == address:
                return True
    return False


def namespaces_with_address(
    namespaces: Iterable[str], address: str, *, timeout: float = 2.0
) -> list[str]:
    """Which of namespaces have address configured on any interface, in input order.

    Meant to be called many times a second by a split-brain checker: one `ip -j addr` per
    namespace, all started at once and then collected, so the cost is one process start
    time rather than one per namespace.
    """
    wanted = ipaddress.ip_address(address)
    names = list(namespaces)
    procs = [
        subprocess.Popen(
            ["ip", "-n", ns, "-j", "addr", "show"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ns in names
    ]
    deadline = time.monotonic() + timeout
    found: list[str] = []
    errors: list[str] = []
    for ns, proc in zip(names, procs, strict=True):
        try:
            out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors.append(f"{ns}: timed out")
            continue
        if proc.returncode != 0:
            errors.append(f"{ns}: {err.strip()}")
            continue
        if _has_address(json.loads(out or "[]"), wanted):
            found.append(ns)
    if errors:
        # A namespace we could not read may hold the address: never answer "nobody" then.
        raise LabError("cannot read addresses: " + "; ".join(errors))
    return found
