"""The floating IP: an address added to and removed from a local interface, then announced.

Parameters of an `ip` resource ([resource.params] in the cluster file):

- `address`: the IPv4 or IPv6 address, optionally with its prefix ("192.0.2.10/24").
  Or `addresses`: a list of such addresses, moved together as one resource (all or none).
  Exactly one of the two is required.
- `prefix`: prefix length for `address`, an integer; default 24 for IPv4, 64 for IPv6.
- `interface`: the interface name ("eth0"), or a table of node name to interface name when
  the nodes name their interfaces differently. Required.
- `announce_count`: gratuitous ARPs / unsolicited neighbour adverts per start; default 3,
  0 sends none. The first goes out before start returns, the rest in the background.
- `announce_interval`: time between announcements: a duration ("200ms", the default) or
  a number of seconds.
- `check_conflict`: probe for the address on the LAN before adding it, and refuse to add it
  when another host answers; default true. Skipped on a start the core marks `released`
  (a switchover, a planned stop: every other node confirmed it holds nothing), where it
  would only add its wait to the handover.
- `conflict_timeout`: how long to wait for an answer to that probe: a duration or a number
  of seconds; default "300ms".
- `tickle`: free the clients of an old holder that froze; default true. While a node holds
  the addresses, its agent sends its established TCP connections on them to its peers over
  the UDP heartbeat links; after a takeover start that is not `released` (the old holder
  did not stop cleanly), the new holder sends each of those clients three "tickle" ACKs
  from the floating address (agent/tickle.py), so their connections fail at once with a
  reset instead of waiting for an answer that will never come.

Actions:

- start: OK at once when every address is already configured on the interface. Otherwise
  the interface must be usable (below; a probe on a dead link hears nothing, proving nothing),
  the conflict probe must stay unanswered, then the addresses are added (IPv6 with
  IFA_F_NODAD: the probe above already did the kernel's duplicate address detection, and a
  tentative address would be unusable for about a second) and announced.
- stop: removes the addresses (an absent one is fine) and first cancels any announcements
  still pending, so a node that has let go never claims the address again.
- monitor, probe: OK when every address is configured and the link is usable; STOPPED when
  none is configured (or the interface is gone); FAILED when only some are, when the kernel
  marked one a duplicate, or when the link is not usable.

A link is usable when it is administratively up (IFF_UP), has carrier (IFF_LOWER_UP), and its
operstate is UP or UNKNOWN. UNKNOWN is what drivers without operstate support report (lo,
dummy, tun/tap, some virtual NICs); for them the carrier flag is the evidence. Every other
operstate (DOWN, LOWERLAYERDOWN, DORMANT, TESTING, NOTPRESENT) means frames do not flow.
A veth reports UP only while its peer is up too: taking the far end down shows here as
operstate DOWN without carrier (IFF_UP still set); the kernel reports such carrier changes
about once a second, so a monitor sees an unplugged cable that much later.

An IPv4 floating address in the subnet of the node's own address becomes a secondary
address, which is what we want: removing it leaves the node's own address alone. Were the
floating address added first, it would be the primary, and removing it would flush the
node's own address too unless net.ipv4.conf.<if>.promote_secondaries is 1; configure the
node's own address at boot, before the agent starts.

All netlink work goes through `rtnetlink` in a worker thread (its calls block), a socket per
call: well under a millisecond, and never shared between threads. The agent runs inside the node's
network namespace, so the default namespace of the process is the right one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any

from hotstandby.agent.ports import ActionResult
from hotstandby.agent.resources import rtnetlink
from hotstandby.agent.resources.announce import (
    IPAddress,
    announce_once,
    announce_rounds,
)
from hotstandby.agent.resources.conflict import Conflict, find_conflict
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.agent.resources.rtnetlink import NetlinkError
from hotstandby.core.messages import Action, Outcome

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
USABLE_OPERSTATES = frozenset({"UP", "UNKNOWN"})
IFNAMSIZ = 16  # the kernel's limit, terminating NUL included

DEFAULT_PREFIX = {4: 24, 6: 64}
KEYS = frozenset(
    {
        "address",
        "addresses",
        "prefix",
        "interface",
        "announce_count",
        "announce_interval",
        "check_conflict",
        "conflict_timeout",
        "tickle",
    }
)
# Bounds that catch typos (a count of 3000, an interval of "200s") rather than taste.
MAX_ANNOUNCE_COUNT = 100
MAX_ANNOUNCE_INTERVAL = 10.0
MAX_CONFLICT_TIMEOUT = 10.0


# ---- parameters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloatingAddress:
    """One address with its prefix length."""

    address: IPAddress
    prefix: int

    def __str__(self) -> str:
        return f"{self.address}/{self.prefix}"


@dataclass(frozen=True)
class IpParams:
    """An ip resource's validated parameters, for one node."""

    addresses: tuple[FloatingAddress, ...]
    interface: str
    announce_count: int = 3
    announce_interval: float = 0.2
    check_conflict: bool = True
    conflict_timeout: float = 0.3
    tickle: bool = True


class _Params(ParamReader):
    """Reads one ip resource's raw params; every error names the resource and the key."""

    def __init__(self, resource: str, raw: Mapping[str, Any]) -> None:
        super().__init__(resource, "ip", raw, KEYS)

    def interface(self, node: str) -> str:
        value = self.raw.get("interface")
        expected = "an interface name, or a table of node name to interface name"
        if isinstance(value, Mapping):
            if node not in value:
                raise ParamError(self.resource, "interface", f"no entry for node {node!r}")
            return self._ifname(f"interface.{node}", value[node])
        if value is None:
            raise self.missing("interface", expected)
        if not isinstance(value, str):
            raise self.error("interface", expected, value)
        return self._ifname("interface", value)

    def _ifname(self, key: str, value: object) -> str:
        ok = (
            isinstance(value, str)
            and 0 < len(value.encode()) < IFNAMSIZ
            and not any(c in value for c in "/: \t\n")
            and value not in (".", "..")
        )
        if not ok:
            raise self.error(key, f"an interface name (1 to {IFNAMSIZ - 1} bytes)", value)
        assert isinstance(value, str)
        return value

    def addresses(self) -> tuple[FloatingAddress, ...]:
        has_one, has_many = "address" in self.raw, "addresses" in self.raw
        if has_one == has_many:
            raise ParamError(
                self.resource,
                None,
                "give exactly one of the keys 'address' (one address) and 'addresses' (a list)"
                + (", not both" if has_one else ""),
            )
        if has_one:
            return (self._address("address", self.raw["address"], self.raw.get("prefix")),)
        if "prefix" in self.raw:
            raise ParamError(
                self.resource,
                "prefix",
                "goes with 'address'; write each entry of 'addresses' with its prefix "
                '("192.0.2.10/24")',
                goes_on=True,
            )
        items = self.raw["addresses"]
        if not isinstance(items, list | tuple) or not items:
            raise self.error("addresses", 'a non-empty list of addresses ("192.0.2.10/24")', items)
        found = tuple(self._address(f"addresses[{i}]", item, None) for i, item in enumerate(items))
        seen = [a.address for a in found]
        if len(set(seen)) != len(seen):
            raise ParamError(self.resource, "addresses", "an address repeats")
        return found

    def _address(self, key: str, value: object, prefix: object) -> FloatingAddress:
        expected = 'an IPv4 or IPv6 unicast address, optionally with a prefix ("192.0.2.10/24")'
        if not isinstance(value, str):
            raise self.error(key, expected, value)
        try:
            iface = ip_interface(value.strip())
        except ValueError:
            raise self.error(key, expected, value) from None
        address = iface.ip
        if address.is_multicast or address.is_unspecified or address.is_loopback:
            raise self.error(key, expected, value)
        written = "/" in value
        if prefix is None:
            bits = iface.network.prefixlen if written else DEFAULT_PREFIX[address.version]
        elif written:
            raise ParamError(
                self.resource,
                "prefix",
                f"the prefix is given twice, in key {key!r} ({value!r}) and in key 'prefix'",
            )
        else:
            limit = address.max_prefixlen
            if isinstance(prefix, bool) or not isinstance(prefix, int) or not 0 <= prefix <= limit:
                raise self.error("prefix", f"an integer from 0 to {limit}", prefix)
            bits = prefix
        network = ip_interface(f"{address}/{bits}").network
        # A subnet's broadcast address as a host address breaks every other host on it.
        if isinstance(address, IPv4Address) and bits < 31 and address == network.broadcast_address:
            raise self.error(key, expected + f" that is not the broadcast of {network}", value)
        return FloatingAddress(address, bits)


def parse_params(resource: str, raw: Mapping[str, Any], node: str) -> IpParams:
    """The validated parameters of ip resource `resource` on `node` (ParamError otherwise)."""
    p = _Params(resource, raw)
    return IpParams(
        addresses=p.addresses(),
        interface=p.interface(node),
        announce_count=p.integer("announce_count", 3, 0, MAX_ANNOUNCE_COUNT),
        announce_interval=p.seconds("announce_interval", 0.2, MAX_ANNOUNCE_INTERVAL),
        check_conflict=p.boolean("check_conflict", True),
        conflict_timeout=p.seconds("conflict_timeout", 0.3, MAX_CONFLICT_TIMEOUT),
        tickle=p.boolean("tickle", True),
    )


# ---- netlink (blocking: called through asyncio.to_thread) ------------------------------------


@dataclass(frozen=True)
class LinkView:
    """What the kernel says about the interface and our addresses on it, at one moment."""

    index: int
    mac: bytes
    flags: int
    operstate: str
    # Those of our addresses that are configured: address -> (prefix length, IFA flags).
    configured: Mapping[IPAddress, tuple[int, int]]

    @property
    def usable(self) -> bool:
        """Whether frames can flow: admin up, carrier, operstate UP or UNKNOWN."""
        return (
            self.flags & IFF_UP != 0
            and self.flags & IFF_LOWER_UP != 0
            and self.operstate in USABLE_OPERSTATES
        )

    def describe_link(self) -> str:
        """Why the link is not usable, in words."""
        parts = [f"operstate {self.operstate}"]
        if not self.flags & IFF_UP:
            parts.append("administratively down")
        if not self.flags & IFF_LOWER_UP:
            parts.append("no carrier")
        return ", ".join(parts)


def _look(ifname: str, wanted: Sequence[IPAddress]) -> LinkView | None:
    """The interface's state and which wanted addresses it has; None when there is no such link."""
    link = rtnetlink.get_link(ifname)
    if link is None:
        return None
    configured = {
        a.address: (a.prefix, a.flags)
        for a in rtnetlink.get_addresses(link.index)
        if a.address in wanted
    }
    return LinkView(
        index=link.index,
        mac=link.mac if len(link.mac) == 6 else b"",
        flags=link.flags,
        operstate=link.operstate,
        configured=configured,
    )


def _add(index: int, entry: FloatingAddress) -> None:
    """Add one address (already there is fine: someone raced us to the same end state)."""
    flags = IFA_F_NODAD if isinstance(entry.address, IPv6Address) else 0
    try:
        rtnetlink.add_address(index, entry.address, entry.prefix, flags)
    except NetlinkError as err:
        if err.errno != errno.EEXIST:
            raise


def _delete(index: int, address: IPAddress, prefix: int) -> None:
    """Remove one address (already gone is fine)."""
    try:
        rtnetlink.delete_address(index, address, prefix)
    except NetlinkError as err:
        if err.errno != errno.EADDRNOTAVAIL:
            raise


def _error_text(err: BaseException) -> str:
    if isinstance(err, NetlinkError):
        return f"netlink error {err.errno}: {err.strerror}"
    return f"{type(err).__name__}: {err}"


# ---- the adapter -----------------------------------------------------------------------------


class IpResource:
    """A ResourceAdapter for floating addresses on one interface."""

    def __init__(self, name: str, params: IpParams) -> None:
        self.name = name
        self.params = params
        self._wanted = tuple(a.address for a in params.addresses)
        # Start and stop must not interleave: a stop running between a start's probe and its
        # add would leave the address configured after the stop returned.
        self._lock = asyncio.Lock()
        self._announcer: asyncio.Task[None] | None = None

    @property
    def tickle_addresses(self) -> tuple[IPAddress, ...]:
        """The addresses whose clients a takeover tickles (none with tickle = false)."""
        return self._wanted if self.params.tickle else ()

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe."""
        try:
            if action is Action.START:
                async with self._lock:
                    return await self._start(probe=self.params.check_conflict and not released)
            if action is Action.STOP:
                async with self._lock:
                    return await self._stop()
            return await self._monitor()
        except (OSError, NetlinkError) as err:
            return ActionResult(Outcome.FAILED, f"{action.value}: {_error_text(err)}")

    async def wait_announced(self) -> None:
        """Wait until the background announcements of the last start have all been sent."""
        if self._announcer is not None:
            # wait(), not await or shield: a stop cancelling the announcer must not look like
            # this caller being cancelled, and this caller being cancelled must not stop it.
            await asyncio.wait([self._announcer])

    async def _view(self) -> LinkView | None:
        return await asyncio.to_thread(_look, self.params.interface, self._wanted)

    async def _start(self, probe: bool) -> ActionResult:
        began = time.monotonic()
        p = self.params
        view = await self._view()
        if view is None:
            return ActionResult(Outcome.FAILED, f"no interface {p.interface!r}")
        missing = [a for a in p.addresses if a.address not in view.configured]
        if not missing:
            return ActionResult(Outcome.OK, f"already configured on {p.interface}")
        if not view.usable:
            return ActionResult(
                Outcome.FAILED, f"interface {p.interface} is not usable ({view.describe_link()})"
            )
        if len(view.mac) != 6:
            return ActionResult(
                Outcome.FAILED, f"interface {p.interface} has no Ethernet address to announce"
            )
        probed_in = 0.0
        if probe:
            probe_began = time.monotonic()
            conflicts = await asyncio.gather(
                *(find_conflict(p.interface, view.mac, a.address, p.conflict_timeout)
                  for a in missing)
            )  # fmt: skip
            probed_in = time.monotonic() - probe_began
            found = [c for c in conflicts if isinstance(c, Conflict)]
            if found:
                return ActionResult(Outcome.FAILED, "; ".join(str(c) for c in found))
        added: list[FloatingAddress] = []
        try:
            for entry in missing:
                await asyncio.to_thread(_add, view.index, entry)
                added.append(entry)
        except (OSError, NetlinkError) as err:
            # All or nothing: a half-added resource would confuse the next monitor.
            for entry in added:
                await asyncio.to_thread(_delete, view.index, entry.address, entry.prefix)
            return ActionResult(Outcome.FAILED, f"cannot add addresses: {_error_text(err)}")
        usable_in = time.monotonic() - began
        detail = (
            f"added {', '.join(map(str, missing))} on {p.interface} in {usable_in * 1000:.0f} ms"
        )
        if probe:
            detail += f" (conflict probe {probed_in * 1000:.0f} ms)"
        elif p.check_conflict:
            detail += " (no conflict probe: the previous holder released it)"
        return ActionResult(Outcome.OK, detail + await self._announce(view.mac))

    async def _announce(self, mac: bytes) -> str:
        """Send the first round now and leave the others to a background task."""
        p = self.params
        if p.announce_count == 0:
            return "; not announced (announce_count = 0)"
        note = "; announced"
        if p.announce_count > 1:
            note += f", {p.announce_count - 1} more every {p.announce_interval * 1000:.0f} ms"
        first = asyncio.get_running_loop().time()
        try:
            await announce_once(p.interface, mac, self._wanted)
        except OSError as err:
            # The address is in place and works; clients whose caches still point at the old
            # node recover by themselves within their cache timeout. Failing the start for
            # this would move the group away from a node that can serve it.
            log.warning("%s: announcing on %s failed: %s", self.name, p.interface, err)
            note = f"; first announcement failed ({err})"
        if self._announcer is not None:
            self._announcer.cancel()  # the rounds of an earlier start: these supersede them
        if p.announce_count > 1:
            self._announcer = asyncio.create_task(
                announce_rounds(
                    p.interface, mac, self._wanted, p.announce_count - 1, p.announce_interval, first
                )
            )
        return note

    async def _stop(self) -> ActionResult:
        if self._announcer is not None:
            # Before the address goes: a late announcement after the peer took the address
            # would pull the clients back to this node.
            self._announcer.cancel()
            await asyncio.gather(self._announcer, return_exceptions=True)
            self._announcer = None
        view = await self._view()
        if view is None:
            return ActionResult(Outcome.OK, f"no interface {self.params.interface!r}: nothing held")
        if not view.configured:
            return ActionResult(Outcome.OK, "not configured")
        for address, (prefix, _) in view.configured.items():
            # The configured prefix, not ours: the kernel deletes only on an exact match.
            await asyncio.to_thread(_delete, view.index, address, prefix)
        removed = ", ".join(f"{a}/{n}" for a, (n, _) in view.configured.items())
        return ActionResult(Outcome.OK, f"removed {removed} from {self.params.interface}")

    async def _monitor(self) -> ActionResult:
        p = self.params
        view = await self._view()
        if view is None:
            return ActionResult(Outcome.STOPPED, f"no interface {p.interface!r}")
        if not view.configured:
            return ActionResult(Outcome.STOPPED, f"not configured on {p.interface}")
        missing = [str(a) for a in self._wanted if a not in view.configured]
        if missing:
            return ActionResult(Outcome.FAILED, f"partly configured: {', '.join(missing)} missing")
        dad = [str(a) for a, (_, flags) in view.configured.items() if flags & IFA_F_DADFAILED]
        if dad:
            return ActionResult(
                Outcome.FAILED, f"the kernel found {', '.join(dad)} duplicated on the LAN"
            )
        if not view.usable:
            return ActionResult(
                Outcome.FAILED, f"interface {p.interface} is not usable ({view.describe_link()})"
            )
        return ActionResult(Outcome.OK, f"configured on {p.interface}, link usable")
