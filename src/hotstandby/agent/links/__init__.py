"""The heartbeat link adapters (udp, serial, disk) and the factory that builds them."""

from __future__ import annotations

from hotstandby.agent.links.disk import SLOT_SIZE, DiskIO, DiskLink
from hotstandby.agent.links.serial import SerialLink
from hotstandby.agent.links.udp import CS6, UdpLink
from hotstandby.agent.ports import HeartbeatLink
from hotstandby.core.cluster import Cluster, Link, LinkKind

__all__ = [
    "CS6",
    "SLOT_SIZE",
    "DiskIO",
    "DiskLink",
    "SerialLink",
    "UdpLink",
    "build_link",
    "build_links",
]


def build_link(cluster: Cluster, link: Link, node: str) -> HeartbeatLink:
    """The adapter for one configured link, as seen from `node`."""
    own = link.endpoints[node]
    peers = [n for n in cluster.node_names if n != node and n in link.endpoints]
    timers = cluster.timers
    if link.kind is LinkKind.UDP:
        return UdpLink(link.name, own, [link.endpoints[n] for n in peers], link.port)
    if link.kind is LinkKind.SERIAL:
        return SerialLink(link.name, own, link.baud, interval=timers.interval)
    order = cluster.node_names
    # An I/O slower than the warn time brings news too late to count as on time.
    return DiskLink(
        link.name,
        own,
        link.offset,
        order.index(node),
        {n: order.index(n) for n in peers},
        interval=timers.interval,
        io_timeout=timers.warn_time,
    )


def build_links(cluster: Cluster, node: str) -> list[HeartbeatLink]:
    """The adapters for every configured link that has an endpoint on `node`."""
    return [build_link(cluster, link, node) for link in cluster.links if node in link.endpoints]
