"""The timing budget and the safety rules of a cluster: pure functions of a Cluster.

Built on `hotstandby.core.timing`, the formulas the engine itself decides with, so that
what `check` prints and refuses is what the engine will do. Notation as there: D dead
time, I interval, L lease, B release bound, rho clock rate drift.

- `takeover_budget`: the worst-case time from the active's death to the standby's services up.
- `violations`: rules a file must meet to run (the loader refuses a file breaking any).
- `risks`: allowed but dangerous choices, which `check` prints loudly.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from hotstandby.config.disk_layout import SLOT_SIZE, arbitration_area, heartbeat_area
from hotstandby.config.durations import format_duration as fd
from hotstandby.config.durations import parse_duration
from hotstandby.config.errors import KeyPath, Violation
from hotstandby.config.replication import replication_rules
from hotstandby.core.cluster import ArbitrationMode, Cluster, LinkKind
from hotstandby.core.timing import (
    disk_claim_wait,
    drift_margin,
    lease_ok_margin,
    lease_validity,
    release_bound,
    renew_period,
    unconfirmed_release_wait,
)

MAX_DRIFT = 0.05  # beyond 5% a clock is broken, and the margins assume a small drift
# Rounding in float arithmetic must not reject a timer set exactly to its limit.
_EPSILON = 1e-9
_LEASED = (ArbitrationMode.WITNESS, ArbitrationMode.DISK)


@dataclass(frozen=True)
class Part:
    """One term of the worst-case takeover time."""

    label: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class Budget:
    """The worst-case takeover time as a sum of parts, in the order they happen."""

    parts: tuple[Part, ...]

    @property
    def total(self) -> float:
        """The worst case: the sum of the parts."""
        return sum(p.seconds for p in self.parts)


@dataclass(frozen=True)
class Risk:
    """An allowed but dangerous choice, and what it can do."""

    key: KeyPath
    message: str


# -- the budget -------------------------------------------------------------------------


def takeover_budget(cluster: Cluster) -> Budget:
    """Worst-case time from the active's death to the standby's services up, in parts."""
    t = cluster.timers
    # The active died just after a heartbeat; the standby's clock may run slow.
    drift = drift_margin(cluster, t.dead_time)
    detection = t.dead_time + drift
    parts = [
        Part(
            "detection",
            detection,
            f"dead_time {fd(t.dead_time)} of silence on every link, + {fd(drift)} clock drift",
        )
    ]
    parts += _arbitration_parts(cluster, detection)
    count = len(cluster.resources)
    for i, res in enumerate(cluster.resources, 1):
        # Starts run one after another; a start may take its whole timeout and succeed.
        detail = f"start_timeout of the {res.kind.value} resource, {i} of {count} in order"
        parts.append(Part(f"start {res.name}", res.start_timeout, detail))
    return Budget(tuple(parts))


def _arbitration_parts(cluster: Cluster, detection: float) -> list[Part]:
    arb = cluster.arbitration
    t = cluster.timers
    if arb.mode is ArbitrationMode.NONE:
        detail = "heartbeat-only: silence is taken as death, nothing is waited for"
        return [Part("no arbitration", 0.0, detail)]
    if arb.mode is ArbitrationMode.WITNESS:
        # The witness grants the lease once the dead active's last one has run out: at
        # worst it renewed just before dying, so L (plus drift) after the death. If the
        # active had too little lease left when it died (the witness was out of its
        # reach), the standby waits instead for it to have released on its own.
        lease_end = t.lease + drift_margin(cluster, t.lease)
        wait = max(0.0, lease_end - detection, unconfirmed_release_wait(cluster))
        detail = (
            f"witness: the dead active's lease ({fd(t.lease)} + drift) outlasts detection, "
            "or its own release bound when its lease was short"
        )
        return [Part("lease expiry", wait, detail)]
    if arb.mode is ArbitrationMode.DISK:
        detail = 'disk: after posting "release or die", max(lease + drift, renew + release bound)'
        return [Part("disk claim", disk_claim_wait(cluster), detail)]
    # Fence: the standby always waits fence_delay (it cannot tell a death from a cut),
    # then tries each method in order, the last one succeeding just within its timeout.
    methods = len(arb.fence)
    # A method may set its own timeout; the others take fence_timeout.
    total = sum(
        parse_duration(m["timeout"]) if isinstance(m.get("timeout"), str) else t.fence_timeout
        for m in arb.fence
    )
    return [
        Part("fence delay", arb.fence_delay, "fence: head start for the active in a cut"),
        Part(
            "fencing",
            total,
            f"{methods} fence method(s) tried in order, each to its timeout "
            f"(default fence_timeout {fd(t.fence_timeout)})",
        ),
    ]


# -- the rules --------------------------------------------------------------------------


def violations(cluster: Cluster) -> tuple[Violation, ...]:
    """Every rule the cluster breaks, in file order where possible; empty when it may run."""
    return (
        *_node_rules(cluster),
        *_link_rules(cluster),
        *_duplicates("resource", (r.name for r in cluster.resources)),
        *_arbitration_rules(cluster),
        *_timer_rules(cluster),
        *replication_rules(cluster, evidence_time(cluster)),
    )


def evidence_time(cluster: Cluster) -> float:
    """The worst-case time from the active's death until a standby may start the group."""
    return sum(
        p.seconds for p in takeover_budget(cluster).parts if not p.label.startswith("start ")
    )


def _duplicates(table: str, names: Iterable[str]) -> Iterator[Violation]:
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            expected = f"a name no other [[{table}]] has"
            found = f'"{name}" again (also {table}[{first[name]}])'
            yield Violation((table, i, "name"), expected, found)
        else:
            first[name] = i


def _node_rules(cluster: Cluster) -> Iterator[Violation]:
    if len(cluster.nodes) < 2:
        expected = "at least 2 [[node]] tables (a standby needs an active to stand by for)"
        yield Violation(("node",), expected, f"{len(cluster.nodes)}")
    yield from _duplicates("node", cluster.node_names)


def _link_rules(cluster: Cluster) -> Iterator[Violation]:
    if not cluster.links:
        yield Violation(("link",), "at least one [[link]] heartbeat link", "none")
    yield from _duplicates("link", (link.name for link in cluster.links))
    nodes = cluster.node_names
    listed = ", ".join(nodes)
    for i, link in enumerate(cluster.links):
        at: KeyPath = ("link", i, "endpoints")
        for node in nodes:
            if node not in link.endpoints:
                yield Violation(at, f"an endpoint for every node ({listed})", f"none for {node}")
        for node in link.endpoints:
            if node not in nodes:
                yield Violation((*at, node), f"a node name ({listed})", f'"{node}"')
        if link.kind is LinkKind.UDP:
            yield from _one_family(at, link.endpoints)


def _one_family(at: KeyPath, endpoints: Mapping[str, str]) -> Iterator[Violation]:
    """A udp link is one network: IPv4 and IPv6 endpoints cannot reach each other."""
    versions = {node: ipaddress.ip_address(addr).version for node, addr in endpoints.items()}
    if not versions:
        return
    first_node, first = next(iter(versions.items()))
    for node, version in versions.items():
        if version != first:
            expected = f"an IPv{first} address like {first_node}'s (one link is one network)"
            yield Violation((*at, node), expected, f"an IPv{version} address")


def _timer_rules(cluster: Cluster) -> Iterator[Violation]:
    t = cluster.timers
    timers = "timers"
    if _below(t.dead_time, 3 * t.interval):
        expected = f"at least 3 x interval ({fd(3 * t.interval)}), so a lost heartbeat or two "
        expected += "does not bring a link down"
        yield Violation((timers, "dead_time"), expected, fd(t.dead_time))
    if not _below(t.interval, t.warn_time):
        expected = f"more than interval ({fd(t.interval)}): heartbeats are normally that far apart"
        yield Violation((timers, "warn_time"), expected, fd(t.warn_time))
    elif not _below(t.warn_time, t.dead_time):
        expected = f"less than dead_time ({fd(t.dead_time)}): a warning that comes with the "
        expected += "death warns of nothing"
        yield Violation((timers, "warn_time"), expected, fd(t.warn_time))
    if _below(t.initial_dead, t.dead_time):
        expected = f"at least dead_time ({fd(t.dead_time)}): a booting node must not wait for "
        expected += "its peer less than a running node does"
        yield Violation((timers, "initial_dead"), expected, fd(t.initial_dead))
    if not 0.0 <= t.max_drift <= MAX_DRIFT:
        expected = f"a fraction from 0 to {MAX_DRIFT} (0.001 is 0.1%)"
        yield Violation((timers, "max_drift"), expected, f"{t.max_drift:g}")
    elif cluster.arbitration.mode in _LEASED and _below(lease_slack(cluster), 0.0):
        yield Violation((timers, "lease"), _lease_expected(cluster), fd(t.lease))


def _below(a: float, b: float) -> bool:
    """a < b beyond float rounding: "600ms" must count as exactly 3 x "200ms"."""
    return a < b - _EPSILON


def lease_slack(cluster: Cluster) -> float:
    """Lease left at the second renewal attempt beyond what the active needs to release in time.

    The active renews every renew_period and counts each renewal valid for lease_validity
    (drift taken off). If its peer vanished at any moment, it must still hold
    lease_ok_margin (the time to notice, D plus drift plus I, and to release, B), or a
    live but cut-off active could hold resources after the standby got the lease: S1.
    Asking this at the *second* attempt lets the cluster ride out one lost renewal without
    the active dropping everything (L2). It implies L >= 2B and L > D, and renew_period
    above two intervals (since D >= 3I).
    """
    return lease_validity(cluster) - 2 * renew_period(cluster) - lease_ok_margin(cluster)


def minimum_lease(cluster: Cluster) -> float:
    """The shortest lease meeting the lease rule, the other timers as they are."""
    # The slack is linear in L (lease_ok_margin does not depend on L): two points give it.
    at_zero = lease_slack(_with_lease(cluster, 0.0))
    slope = lease_slack(_with_lease(cluster, 1.0)) - at_zero
    return -at_zero / slope


def _with_lease(cluster: Cluster, lease: float) -> Cluster:
    return replace(cluster, timers=replace(cluster.timers, lease=lease))


def _lease_expected(cluster: Cluster) -> str:
    margin = lease_ok_margin(cluster)
    return (
        f"at least {fd(minimum_lease(cluster))}: after one lost renewal (every lease/4) the "
        f"active must still hold {fd(margin)} of lease (dead_time + drift + 3 intervals + "
        f"release bound {fd(release_bound(cluster))}) to release in time if its peer vanished"
    )


def _arbitration_rules(cluster: Cluster) -> Iterator[Violation]:
    arb = cluster.arbitration
    if arb.mode is ArbitrationMode.WITNESS and arb.witness is None:
        yield Violation(
            ("arbitration", "witness"), 'the witness "host:port" (witness mode)', "none"
        )
    if arb.mode is ArbitrationMode.DISK and arb.device is None:
        expected = "the shared disk's device path (disk mode)"
        yield Violation(("arbitration", "device"), expected, "none")
    if arb.mode is ArbitrationMode.FENCE and not arb.fence:
        expected = "at least one [[arbitration.fence]] table with an agent (fence mode)"
        yield Violation(("arbitration", "fence"), expected, "none")
    if arb.mode is ArbitrationMode.DISK and arb.device is not None:
        yield from _arbitration_overlaps(cluster, arb.device)


def _arbitration_overlaps(cluster: Cluster, device: str) -> Iterator[Violation]:
    # Compared by path: two paths to one storage (a SAN's multipath names) are not seen.
    count = len(cluster.nodes)
    start, end = arbitration_area(count)
    for i, link in enumerate(cluster.links):
        if link.kind is not LinkKind.DISK or device not in link.endpoints.values():
            continue
        first, last = heartbeat_area(link.offset, count)
        if first < end and start < last:
            expected = (
                f"a heartbeat area ({count} slots of {SLOT_SIZE} bytes) clear of the "
                f"arbitration area on {device} (bytes {start} to {end}): an offset of at "
                f"most {start - count * SLOT_SIZE}, or from {end}"
            )
            yield Violation(("link", i, "offset"), expected, str(link.offset))


# -- the risks --------------------------------------------------------------------------


def risks(cluster: Cluster) -> tuple[Risk, ...]:
    """Allowed but dangerous choices in the cluster, each with what it can do."""
    found: list[Risk] = []
    arb = cluster.arbitration
    if arb.mode is ArbitrationMode.NONE:
        found.append(Risk(("arbitration", "mode"), _HEARTBEAT_ONLY))
    if arb.mode in _LEASED and arb.watchdog_timeout == 0:
        message = (
            f"{arb.mode.value} arbitration without a hardware watchdog: a frozen or crashed "
            "agent cannot give its resources up and nothing resets the machine, so it keeps "
            "them while the peer takes over. Set watchdog_timeout and watchdog_device."
        )
        found.append(Risk(("arbitration", "watchdog_timeout"), message))
    if arb.mode is ArbitrationMode.FENCE:
        t = cluster.timers
        # Both nodes notice a cut within I + drift of each other; a shorter delay gives
        # the active no head start, and the nodes may fence each other.
        skew = t.interval + drift_margin(cluster, t.dead_time)
        if arb.fence_delay < skew:
            message = (
                f"fence_delay {fd(arb.fence_delay)} is shorter than the {fd(skew)} by which "
                "the nodes may notice a cut apart: both may fence each other"
            )
            found.append(Risk(("arbitration", "fence_delay"), message))
    if len(cluster.links) == 1:
        message = (
            "a single heartbeat link: when it fails, a live peer looks dead. Add a second "
            "link of another kind (serial, disk)."
        )
        found.append(Risk(("link",), message))
    kinds = Counter(link.kind for link in cluster.links)
    if len(cluster.links) > 1 and len(kinds) == 1:
        kind = next(iter(kinds)).value
        message = (
            f"every link is {kind}: one fault of that kind (a switch, a driver, a cable) "
            "cuts them all at once. Add a link of another kind."
        )
        found.append(Risk(("link",), message))
    return tuple(found)


_HEARTBEAT_ONLY = (
    'heartbeat-only cluster (arbitration mode "none"): nothing proves that the peer holds '
    "nothing, so a cut between the nodes makes both active: both take every resource, "
    "two machines answer on the floating IP, a shared volume is mounted twice, two "
    "databases take writes (split brain). Use disk, witness or fence arbitration."
)
