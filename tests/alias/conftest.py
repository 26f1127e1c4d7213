"""Fixtures for the floating hostname's lab tests: a fresh lab and DNS server per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from hotstandby.lab import CLIENT, Lab, skip_reason
from hotstandby.lab.dns import DnsServer, named_missing

#: Namespaces, state files and temp dirs of these tests all start with this.
PREFIX = "hal"


def lab_skip_reason() -> str | None:
    """Why these lab tests cannot run here, or None."""
    if shutil.which("nsupdate") is None:
        return "the DNS tests need nsupdate (Debian package bind9-dnsutils)"
    return skip_reason() or named_missing()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Nodes a and b and a client on one bridged LAN (no serial line, no disk)."""
    reason = lab_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab(PREFIX, serial=False, disk_size=0) as built:
        yield built


@pytest.fixture
def dns_server(lab: Lab) -> Iterator[DnsServer]:
    """named in the client's namespace, primary for example.org., updatable with its key."""
    server = DnsServer(lab, CLIENT, lab.node(CLIENT).lan_ipv4)
    server.start()
    try:
        yield server
    finally:
        # The lab ends it too (by pid) when it closes; ending it here keeps its log short.
        server.stop()
