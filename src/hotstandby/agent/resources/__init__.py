"""Resource adapters: one per configured resource, built from the cluster description."""

from __future__ import annotations

from collections.abc import Callable

from hotstandby.agent.ports import ResourceAdapter
from hotstandby.agent.resources.ip import IpResource, parse_params
from hotstandby.core.cluster import Cluster, Resource, ResourceKind

__all__ = ["IpResource", "build_resources"]


def _build_ip(resource: Resource, node: str) -> ResourceAdapter:
    return IpResource(resource.name, parse_params(resource.name, resource.params, node))


_BUILDERS: dict[ResourceKind, Callable[[Resource, str], ResourceAdapter]] = {
    ResourceKind.IP: _build_ip,
}


def build_resources(cluster: Cluster, node: str) -> dict[str, ResourceAdapter]:
    """Adapters for every resource of cluster as run on node; ValueError names what is wrong."""
    if node not in cluster.node_names:
        raise ValueError(f"no node {node!r} in cluster {cluster.name!r}")
    adapters: dict[str, ResourceAdapter] = {}
    for resource in cluster.resources:
        build = _BUILDERS.get(resource.kind)
        if build is None:
            raise ValueError(
                f"resource {resource.name!r}: kind {resource.kind.value!r} is not supported yet"
            )
        adapters[resource.name] = build(resource, node)
    return adapters
