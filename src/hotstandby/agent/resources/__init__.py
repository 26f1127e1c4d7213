"""Resource adapters: one per configured resource, built from the cluster description.

Every kind registers a `Kind` here: how to validate its parameters for a node (run by the
agent at start and by `hotstandby check`, so bad parameters never wait for a takeover),
how to build its adapter, and what this machine's own state risks for it (a volume in
/etc/fstab, a managed unit enabled at boot), which `check` prints as warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hotstandby.agent.ports import ResourceAdapter, StepReport, ignore_steps
from hotstandby.agent.resources import ocf, postgres, service
from hotstandby.agent.resources.ip import IpResource, parse_params
from hotstandby.agent.resources.params import ParamError
from hotstandby.agent.resources.volume import VolumeResource, find_host_risks
from hotstandby.agent.resources.volume import parse_params as parse_volume_params
from hotstandby.core.cluster import Cluster, Resource, ResourceKind

__all__ = [
    "IpResource",
    "Kind",
    "ParamError",
    "VolumeResource",
    "build_resources",
    "host_risks",
    "validate",
]


def _no_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    return []


@dataclass(frozen=True)
class Kind:
    """What hotstandby knows of one resource kind."""

    # The validated parameters of the resource on a node; ParamError when they are bad.
    parse: Callable[[Resource, str], object]
    # The adapter for the resource on a node (parameters already valid); it tells the
    # operator of the steps of a long action through the StepReport.
    build: Callable[[Resource, str, StepReport], ResourceAdapter]
    # Risks found in this machine's own state, as (params key or None, message); run by
    # `check` for the node it runs on. Must be quick and must change nothing.
    host_risks: Callable[[Resource, str], list[tuple[str | None, str]]] = _no_risks
    # Kinds whose parameters refer to the rest of the cluster (alias points its name at a
    # node's own address or at the ip resources' addresses): the Kind bound to a cluster,
    # which the registry uses in place of this one.
    bind: Callable[[Cluster], Kind] | None = None

    def bound(self, cluster: Cluster) -> Kind:
        """This kind as it applies to resources of `cluster`."""
        return self if self.bind is None else self.bind(cluster)


def _parse_ip(resource: Resource, node: str) -> object:
    return parse_params(resource.name, resource.params, node)


def _build_ip(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
    return IpResource(resource.name, parse_params(resource.name, resource.params, node))


def _build_service(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
    return service.ServiceResource(resource.name, service.parse_params(resource, node), node)


def _build_ocf(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
    return ocf.OcfResource(resource, ocf.parse_params(resource, node), node)


def _parse_volume(resource: Resource, node: str) -> object:
    return parse_volume_params(resource.name, resource.params, node, resource.stop_timeout)


def _build_volume(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
    params = parse_volume_params(resource.name, resource.params, node, resource.stop_timeout)
    return VolumeResource(
        resource.name,
        params,
        report,
        start_timeout=resource.start_timeout,
        stop_timeout=resource.stop_timeout,
    )


def _volume_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    try:
        params = parse_volume_params(resource.name, resource.params, node, resource.stop_timeout)
    except ParamError:
        return []  # reported as an error by validate already
    return find_host_risks(params)


def _alias_kind(cluster: Cluster | None) -> Kind:
    # dnspython (about 6 MiB) loads only for a cluster that has an alias resource.
    from hotstandby.agent.resources import alias  # noqa: PLC0415

    def build(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
        return alias.build(resource, node, cluster)

    return Kind(
        parse=lambda resource, node: alias.parse_params(resource, node, cluster),
        build=build,
        host_risks=alias.host_risks,
    )


def _alias_parse(resource: Resource, node: str) -> object:
    return _alias_kind(None).parse(resource, node)


def _alias_build(resource: Resource, node: str, report: StepReport) -> ResourceAdapter:
    return _alias_kind(None).build(resource, node, report)


def _alias_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    return _alias_kind(None).host_risks(resource, node)


def _postgres_kind(cluster: Cluster | None) -> Kind:
    # Bound to the cluster: check looks for the volume that must hold the data directory.
    nodes = cluster.node_names if cluster is not None else None
    return Kind(
        parse=lambda resource, node: postgres.parse_params(resource, node, nodes),
        build=postgres.build,
        host_risks=lambda resource, node: postgres.host_risks(resource, node, cluster),
    )


KINDS: dict[ResourceKind, Kind] = {
    ResourceKind.IP: Kind(parse=_parse_ip, build=_build_ip),
    ResourceKind.SERVICE: Kind(
        parse=service.parse_params, build=_build_service, host_risks=service.host_risks
    ),
    ResourceKind.OCF: Kind(parse=ocf.parse_params, build=_build_ocf, host_risks=ocf.host_risks),
    ResourceKind.VOLUME: Kind(parse=_parse_volume, build=_build_volume, host_risks=_volume_risks),
    # Without a cluster only explicit addresses read; the registry always binds it first.
    ResourceKind.ALIAS: Kind(
        parse=_alias_parse, build=_alias_build, host_risks=_alias_risks, bind=_alias_kind
    ),
    ResourceKind.POSTGRES: Kind(
        parse=postgres.parse_params, build=postgres.build, bind=_postgres_kind
    ),
}


def _kind(resource: Resource, cluster: Cluster) -> Kind:
    kind = KINDS.get(resource.kind)
    if kind is None:
        raise ParamError(resource.name, None, f"kind {resource.kind.value!r} is not supported yet")
    return kind.bound(cluster)


def validate(cluster: Cluster) -> list[ParamError]:
    """Every parameter error of every resource, checked for every node (empty when all good)."""
    errors: list[ParamError] = []
    for resource in cluster.resources:
        try:
            kind = _kind(resource, cluster)
        except ParamError as error:
            errors.append(error)
            continue
        seen: set[str] = set()
        for node in cluster.node_names:
            try:
                kind.parse(resource, node)
            except ParamError as error:
                # The same mistake on every node is one error, not one per node.
                if str(error) not in seen:
                    seen.add(str(error))
                    errors.append(error)
    return errors


def host_risks(cluster: Cluster, node: str) -> list[tuple[Resource, str | None, str]]:
    """What this machine's state risks for the resources when it runs as `node`."""
    found: list[tuple[Resource, str | None, str]] = []
    for resource in cluster.resources:
        kind = KINDS.get(resource.kind)
        if kind is not None:
            kind = kind.bound(cluster)
            found.extend(
                (resource, key, message) for key, message in kind.host_risks(resource, node)
            )
    return found


def build_resources(
    cluster: Cluster, node: str, report: StepReport = ignore_steps
) -> dict[str, ResourceAdapter]:
    """Adapters for every resource of cluster as run on node; ValueError names what is wrong."""
    if node not in cluster.node_names:
        raise ValueError(f"no node {node!r} in cluster {cluster.name!r}")
    return {r.name: _kind(r, cluster).build(r, node, report) for r in cluster.resources}
