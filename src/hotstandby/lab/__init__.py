"""The lab: a small network of nodes on this one machine, built from real kernel objects.

Network namespaces for the nodes and a client, a bridged LAN and a private link made of veth
pairs, a socat pty pair as the serial cable, loop devices as the shared disk, and the faults
the tests, benchmarks and the demo inject into them. Needs root.
"""

from hotstandby.lab._cmd import (
    LabCommandError,
    LabError,
    LabUnsupportedError,
    missing_programs,
    skip_reason,
)
from hotstandby.lab.netns import namespaces_with_address
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.state import cleanup_leftovers
from hotstandby.lab.topology import (
    CLIENT,
    FLOATING_IPV4,
    FLOATING_IPV6,
    SWITCH,
    Endpoint,
    Lab,
    Link,
    Node,
)

__all__ = [
    "CLIENT",
    "FLOATING_IPV4",
    "FLOATING_IPV6",
    "SWITCH",
    "Endpoint",
    "Lab",
    "LabCommandError",
    "LabError",
    "LabProcess",
    "LabUnsupportedError",
    "Link",
    "Node",
    "cleanup_leftovers",
    "missing_programs",
    "namespaces_with_address",
    "skip_reason",
]
