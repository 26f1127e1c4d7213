"""The floating hostname: a DNS name that follows the active node, by RFC 2136 dynamic update.

Parameters of an `alias` resource ([resource.params] in the cluster file):

- `hostname`: the name that follows the active node ("db.example.org."; the final dot may be
  left out, the name is always taken as fully qualified). Required.
- `zone`: the zone the name lives in, as the server knows it ("example.org."); `hostname` must
  be in it. Required.
- `server`: the IPv4 or IPv6 address of the zone's primary server, which takes the updates
  and answers the checks. An address, never a host name: moving a name must not depend on
  resolving one. Required. `port`: its port, default 53.
- `key_file`: the TSIG key file, as `tsig-keygen NAME` or `ddns-confgen` write it
  (`key "NAME" { algorithm hmac-sha256; secret "..."; };`), read at every action so a new
  key takes effect without a restart. Required; keep it 0600 or 0640 and owned by root.
  `check` warns when it is missing, unreadable or open to others on the machine it runs on
  (the same file may well exist only on the nodes). `key_name`: which key of the file, when
  it holds more than one.
- `ttl`: the records' time to live in seconds, from 0 to 3600; default 30. Clients and
  resolvers may keep the old address this long after a takeover: keep it short.
- `address`: where the name points, default "node":
  - "node": the node's own `address` from its [[node]] table (so the name follows the node
    even where no floating IP can: another subnet, another site);
  - "floating": the addresses of the cluster's `ip` resources, all of them (the name then
    stays put and only reaches whichever node holds the floating IP);
  - an address or a list of addresses ("192.0.2.10", ["192.0.2.10", "2001:db8::10"]), the
    same on every node;
  - a table of node name to an address or a list of addresses, per node.
  IPv4 addresses become the name's A records, IPv6 ones its AAAA records.
- `on_stop`: "keep" (default) or "remove": what stop does with the name's records.
- `timeout`: how long one exchange with the server may take (a duration or a number of
  seconds, at most 30s); default "2s". A start is two exchanges (the update, then the check),
  so 2 x timeout must fit in the resource's start_timeout, and one in its monitor_timeout.

Actions:

- start: one UPDATE, signed with the key, replaces the name's A and AAAA records with ours
  (delete both record sets, add ours, in one message: the server applies it all or nothing),
  then asks the server whether it now answers our addresses. OK only when it does. FAILED
  with the reason otherwise: no answer within the timeout, the server's refusal (REFUSED:
  the zone's update policy does not let this key change this name; NOTAUTH: the server is
  not the primary for the zone, or it rejected the key: BADKEY, an unknown key name; BADSIG,
  another secret; BADTIME, clocks too far apart), or an answer other than ours (a CNAME at
  the name, say, beside which the server ignores A records).
- stop: with on_stop = "keep", changes nothing: the next active node's start replaces the
  records, and until then clients get the old address, which fails as any connection to a
  stopped service does. With on_stop = "remove", deletes our records, only if the server
  still holds exactly them (an RFC 2136 prerequisite: a node that let go never deletes what
  the new active node already wrote). "keep" is the default because removing the name
  leaves resolvers caching its absence for the zone's negative TTL (the SOA's minimum, often
  an hour): clients would then not find the new active node for that long, while a kept
  record is replaced and forgotten within `ttl`. Use "remove" where a name pointing at a
  stopped cluster does harm. Stop never fails, even when the removal does (its detail says
  so): a failed stop has the node fenced, which cannot fix a record held by another
  machine, and the next start replaces whatever was left.
- monitor: OK when the server answers exactly our addresses (A and AAAA); FAILED otherwise,
  saying what it answered (someone changed the records behind our back, a restart puts them
  back), or why it gave no answer. A server that stops answering fails the monitor of the
  active node too, and the engine's policy then applies as to any failed resource (restart
  in place, then move the group), though moving cannot bring the server back.
- probe: always STOPPED, its detail saying what the server answers. A record is not held by
  a node the way an address or a mount is: it lives on the server, the last update wins, and
  a node that stops cannot take it back. Reporting OK when the records point here (a node
  that was active before a reboot, or the active node after a restart of its agent) would
  count as "found running": the engine would skip the initial wait for the peer (and in
  fence mode fence it at once), and the node's heartbeats would say it holds something. A
  probe that says STOPPED costs only one update when the node becomes active.

Every exchange goes over UDP, is resent with growing intervals while no answer comes, falls
back to TCP when the answer is truncated, and ends within `timeout`; every answer must carry
a valid signature of the key. An update and its check take a few milliseconds on a LAN.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.update

from hotstandby.agent.ports import ActionResult
from hotstandby.agent.resources.ip import parse_params as parse_ip_params
from hotstandby.agent.resources.params import ParamError, ParamReader
from hotstandby.agent.resources.tsig_key import KeyFileError, TsigKey, read_key_file
from hotstandby.core.cluster import Cluster, Resource, ResourceKind
from hotstandby.core.messages import Action, Outcome

IPAddress = IPv4Address | IPv6Address

KEYS = frozenset(
    {
        "hostname",
        "zone",
        "server",
        "port",
        "key_file",
        "key_name",
        "ttl",
        "address",
        "on_stop",
        "timeout",
    }
)
MAX_TTL = 3600
MAX_TIMEOUT = 30.0
DEFAULT_TIMEOUT = 2.0
#: The first wait for a UDP answer before sending again; each later wait doubles.
FIRST_RESEND = 0.25
#: A key file that others may read, or the group may change, gives the key away.
TOO_OPEN = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO

_DNS_ALGORITHMS = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


class OnStop(StrEnum):
    """What stop does with the name's records."""

    KEEP = "keep"
    REMOVE = "remove"


@dataclass(frozen=True)
class AliasParams:
    """The validated parameters of one alias resource, for one node."""

    hostname: dns.name.Name
    zone: dns.name.Name
    server: IPAddress
    port: int
    key_file: str
    key_name: str | None
    ttl: int
    # Where the name points on this node: A and AAAA records, each set sorted.
    addresses: tuple[IPAddress, ...]
    on_stop: OnStop = OnStop.KEEP
    timeout: float = DEFAULT_TIMEOUT

    @property
    def where(self) -> str:
        """The server as host:port, for details."""
        host = f"[{self.server}]" if self.server.version == 6 else str(self.server)
        return f"{host}:{self.port}"


# ---- parameters ------------------------------------------------------------------------------


class _Params(ParamReader):
    def name(self, key: str) -> dns.name.Name:
        expected = 'a DNS name ("db.example.org.")'
        value = self.raw.get(key)
        if value is None:
            raise self.missing(key, expected)
        if not isinstance(value, str) or not value.strip() or value.strip() == ".":
            raise self.error(key, expected, value)
        text = value.strip()
        try:
            name = dns.name.from_text(text if text.endswith(".") else text + ".")
        except dns.exception.DNSException as err:
            raise ParamError(self.resource, key, f"{value!r} is not a DNS name: {err}") from None
        if any(label == b"*" for label in name.labels) or any(
            not label or b" " in label for label in name.labels[:-1]
        ):
            raise self.error(key, expected + " without wildcards or spaces", value)
        return name

    def server(self) -> IPAddress:
        expected = 'the IPv4 or IPv6 address of the primary server ("192.0.2.53")'
        value = self.raw.get("server")
        if value is None:
            raise self.missing("server", expected)
        if not isinstance(value, str):
            raise self.error("server", expected, value)
        try:
            address = ip_address(value.strip())
        except ValueError:
            raise ParamError(
                self.resource,
                "server",
                f"expected {expected}, found {value!r}: give an address, not a host name "
                "(moving a name must not depend on resolving one)",
            ) from None
        if address.is_multicast or address.is_unspecified:
            raise self.error("server", expected, value)
        return address

    def on_stop(self) -> OnStop:
        value = self.raw.get("on_stop", OnStop.KEEP.value)
        try:
            return OnStop(value)
        except ValueError:
            raise self.error("on_stop", '"keep" or "remove"', value) from None

    def addresses(self, node: str, cluster: Cluster | None) -> tuple[IPAddress, ...]:
        value = self.raw.get("address", "node")
        if value == "node":
            return (self._node_address(node, cluster),)
        if value == "floating":
            return self._floating(node, cluster)
        if isinstance(value, Mapping):
            if node not in value:
                raise ParamError(self.resource, "address", f"no entry for node {node!r}")
            return self._explicit(f"address.{node}", value[node])
        return self._explicit("address", value)

    def _node_address(self, node: str, cluster: Cluster | None) -> IPAddress:
        found = None
        if cluster is not None and node in cluster.node_names:
            found = cluster.node(node).address
        if found is None:
            raise ParamError(
                self.resource,
                "address",
                f'is "node" (the default) but node {node!r} has no address in its [[node]] '
                'table: give it one, or set address = "floating" or the addresses',
                goes_on=True,
            )
        return self._one("address", found, f"node {node!r}'s address")

    def _floating(self, node: str, cluster: Cluster | None) -> tuple[IPAddress, ...]:
        vips = [r for r in cluster.resources if r.kind is ResourceKind.IP] if cluster else []
        if not vips:
            raise ParamError(
                self.resource,
                "address",
                'is "floating" but the cluster has no resource of kind ip',
                goes_on=True,
            )
        found: list[IPAddress] = []
        for vip in vips:
            try:
                parsed = parse_ip_params(vip.name, vip.params, node)
            except ParamError:
                raise ParamError(
                    self.resource,
                    "address",
                    f'is "floating" but ip resource {vip.name!r} has bad parameters (above)',
                    goes_on=True,
                ) from None
            found.extend(a.address for a in parsed.addresses if a.address not in found)
        return _ordered(found)

    def _explicit(self, key: str, value: object) -> tuple[IPAddress, ...]:
        expected = '"node", "floating", an address, a list of addresses or a table of nodes'
        if isinstance(value, str):
            return (self._one(key, value, None),)
        if isinstance(value, list | tuple) and value:
            found = [self._one(f"{key}[{i}]", item, None) for i, item in enumerate(value)]
            if len(set(found)) != len(found):
                raise ParamError(self.resource, key.split(".", maxsplit=1)[0], "an address repeats")
            return _ordered(found)
        raise self.error(key, expected, value)

    def _one(self, key: str, value: object, what: str | None) -> IPAddress:
        expected = 'an IPv4 or IPv6 unicast address ("192.0.2.10")'
        if not isinstance(value, str):
            raise self.error(key, expected, value)
        try:
            address = ip_address(value.strip())
        except ValueError:
            if what is not None:
                raise ParamError(
                    self.resource,
                    key.split(".", maxsplit=1)[0],
                    f"{what} {value!r} is not an address",
                ) from None
            hint = ' (or "node" / "floating")' if key == "address" else ""
            raise self.error(key, expected + hint, value) from None
        if address.is_multicast or address.is_unspecified or address.is_loopback:
            raise self.error(key, expected, value)
        return address

    def fits(self, resource: Resource, timeout: float, on_stop: OnStop) -> None:
        """A start (two exchanges), a monitor and a removing stop within their timeouts."""
        limits = [
            (2 * timeout, "start_timeout", resource.start_timeout, "a start's two exchanges"),
            (timeout, "monitor_timeout", resource.monitor_timeout, "a monitor's exchange"),
        ]
        if on_stop is OnStop.REMOVE:
            limits.append((timeout, "stop_timeout", resource.stop_timeout, "a stop's exchange"))
        for need, which, limit, what in limits:
            if need > limit:
                raise ParamError(
                    self.resource,
                    "timeout",
                    f"{timeout:g}s is too long: {what} may take {need:g}s, more than the "
                    f"resource's {which} ({limit:g}s)",
                )


def _ordered(addresses: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
    """IPv4 first, each family sorted: the order records are compared and shown in."""
    v4 = sorted(a for a in addresses if isinstance(a, IPv4Address))
    v6 = sorted(a for a in addresses if isinstance(a, IPv6Address))
    return (*v4, *v6)


def parse_params(resource: Resource, node: str, cluster: Cluster | None) -> AliasParams:
    """The validated parameters of alias `resource` on `node` (ParamError otherwise).

    `cluster` gives the nodes' own addresses and the ip resources' addresses; without it
    only explicit addresses can be read.
    """
    p = _Params(resource.name, "alias", resource.params, KEYS)
    hostname = p.name("hostname")
    zone = p.name("zone")
    if not hostname.is_subdomain(zone):
        raise ParamError(
            resource.name, "hostname", f"{hostname} is not in zone {zone} (key 'zone')"
        )
    timeout = p.seconds("timeout", DEFAULT_TIMEOUT, MAX_TIMEOUT)
    on_stop = p.on_stop()
    p.fits(resource, timeout, on_stop)
    return AliasParams(
        hostname=hostname,
        zone=zone,
        server=p.server(),
        port=p.integer("port", 53, 1, 65535),
        key_file=p.absolute_path("key_file"),
        key_name=p.optional_string("key_name"),
        ttl=p.integer("ttl", 30, 0, MAX_TTL),
        addresses=p.addresses(node, cluster),
        on_stop=on_stop,
        timeout=timeout,
    )


def host_risks(resource: Resource, node: str) -> list[tuple[str | None, str]]:
    """The key file missing, unreadable, not a key, or open to others on this machine."""
    path = resource.params.get("key_file")
    key_name = resource.params.get("key_name")
    if not isinstance(path, str) or not path.startswith("/"):
        return []  # a parameter error, which validation reports
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return [("key_file", f"the key file {path} does not exist on this machine")]
    except OSError as err:
        return [("key_file", f"the key file {path} cannot be looked at: {err.strerror or err}")]
    if not stat.S_ISREG(info.st_mode):
        return [("key_file", f"the key file {path} is not a regular file")]
    found: list[tuple[str | None, str]] = []
    if info.st_mode & TOO_OPEN:
        found.append(
            (
                "key_file",
                f"the key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: anyone who "
                "can read it can move the name; make it 0600 or 0640",
            )
        )
    try:
        read_key_file(path, key_name if isinstance(key_name, str) else None)
    except KeyFileError as err:
        found.append(("key_file", f"the key file cannot be used: {err}"))
    return found


# ---- the exchanges ---------------------------------------------------------------------------


class _NoAnswerError(Exception):
    """The server gave no usable answer; the message says why."""


def _tsig_key(key: TsigKey) -> dns.tsig.Key:
    return dns.tsig.Key(key.name, key.secret, _DNS_ALGORITHMS[key.algorithm])


def _peer_error(err: dns.exception.DNSException, key: TsigKey) -> str:
    """What a TSIG error means, in an operator's words."""
    if isinstance(err, dns.tsig.PeerBadKey):
        return (
            f"the server does not know key {key.name!r} (BADKEY): add it to the server or "
            "fix key_file / key_name"
        )
    if isinstance(err, dns.tsig.PeerBadSignature):
        return (
            f"the server rejected our signature with key {key.name!r} (BADSIG): the key's "
            "secret or algorithm differs from the server's"
        )
    if isinstance(err, dns.tsig.PeerBadTime):
        return (
            "the server rejected the signature's time (BADTIME): this machine's clock and "
            "the server's differ by more than the allowed fudge (300s)"
        )
    if isinstance(err, dns.tsig.PeerError):
        return f"the server rejected our signature ({type(err).__name__})"
    if isinstance(err, dns.tsig.BadSignature | dns.tsig.BadKey | dns.tsig.BadAlgorithm):
        return f"the answer's signature does not verify ({type(err).__name__}): not our server?"
    return f"unusable answer: {type(err).__name__}: {err}"


_RCODE_MEANING = {
    dns.rcode.REFUSED: "the zone's allow-update or update-policy does not let key {key} "
    "change {name}",
    dns.rcode.NOTAUTH: "the server is not the primary for zone {zone}, or it rejected key {key}",
    dns.rcode.NOTZONE: "{name} is not in zone {zone} as the server sees it",
    dns.rcode.SERVFAIL: "the server failed to apply it (its log says why)",
    dns.rcode.FORMERR: "the server could not parse the message",
    dns.rcode.NOTIMP: "the server does not take dynamic updates",
}


@dataclass(frozen=True)
class _Answer:
    """What the server answers for the name: its A and AAAA records, or a CNAME."""

    addresses: tuple[IPAddress, ...]
    cname: str | None = None

    def describe(self) -> str:
        if self.cname is not None:
            return f"CNAME {self.cname}"
        return ", ".join(map(str, self.addresses)) if self.addresses else "no A/AAAA records"


class AliasResource:
    """A ResourceAdapter that points a DNS name at this node's addresses."""

    def __init__(self, name: str, params: AliasParams) -> None:
        self.name = name
        self.params = params
        self._lock = asyncio.Lock()  # start and stop must not interleave

    async def run(self, action: Action, *, released: bool = False) -> ActionResult:
        """Carry out start, stop, monitor or probe.

        `released` changes nothing: the update replaces whatever records the name has, and
        there is no other holder to look for first.
        """
        if action is Action.STOP:
            async with self._lock:
                return await self._stop()
        try:
            key = await self._key()
        except KeyFileError as err:
            outcome = Outcome.STOPPED if action is Action.PROBE else Outcome.FAILED
            return ActionResult(outcome, f"{action.value}: key file: {err}")
        try:
            if action is Action.START:
                async with self._lock:
                    return await self._start(key)
            if action is Action.PROBE:
                return await self._probe(key)
            return await self._monitor(key)
        except _NoAnswerError as err:
            outcome = Outcome.STOPPED if action is Action.PROBE else Outcome.FAILED
            return ActionResult(outcome, f"{action.value}: {err}")

    # ---- actions

    async def _start(self, key: TsigKey) -> ActionResult:
        p = self.params
        began = time.monotonic()
        update = self._update(key)
        update.delete(p.hostname, dns.rdatatype.A)
        update.delete(p.hostname, dns.rdatatype.AAAA)
        for rdataset in self._rdatasets():
            update.add(p.hostname, rdataset)
        await self._apply(update, key, "update")
        updated = time.monotonic()
        answer = await self._ask(key)
        verified = time.monotonic()
        if answer.addresses != p.addresses or answer.cname is not None:
            return ActionResult(
                Outcome.FAILED,
                f"updated, but {p.where} answers {p.hostname} with {answer.describe()}, "
                f"not {self._ours()}",
            )
        return ActionResult(
            Outcome.OK,
            f"{p.hostname} -> {self._ours()} (TTL {p.ttl}) at {p.where}: updated in "
            f"{(updated - began) * 1000:.0f} ms, verified in {(verified - updated) * 1000:.0f} ms",
        )

    async def _stop(self) -> ActionResult:
        p = self.params
        if p.on_stop is OnStop.KEEP:
            return ActionResult(
                Outcome.OK,
                f"{p.hostname} left as it is (on_stop = keep): the next start replaces it",
            )
        try:
            return await self._remove(await self._key())
        except (KeyFileError, _NoAnswerError) as err:
            # Never FAILED: a failed stop has the node fenced, which cannot fix a record on
            # another machine; the next active node's start replaces whatever is left.
            return ActionResult(
                Outcome.OK,
                f"{p.hostname} not removed, left as it is (the next start replaces it): {err}",
            )

    async def _remove(self, key: TsigKey) -> ActionResult:
        p = self.params
        update = self._update(key)
        # Only while the records are still exactly ours: never delete the next node's.
        # (A prerequisite's records carry TTL 0, RFC 2136 2.4.2.)
        for rdataset in self._rdatasets(ttl=0):
            update.present(p.hostname, rdataset)
            update.delete(p.hostname, rdataset.rdtype)
        rcode = await self._apply(update, key, "removal", allowed=(dns.rcode.NXRRSET,))
        if rcode == dns.rcode.NXRRSET:
            return ActionResult(
                Outcome.OK,
                f"{p.hostname} no longer holds exactly {self._ours()}: left as it is",
            )
        return ActionResult(Outcome.OK, f"removed {self._ours()} from {p.hostname}")

    async def _monitor(self, key: TsigKey) -> ActionResult:
        p = self.params
        answer = await self._ask(key)
        if answer.addresses == p.addresses and answer.cname is None:
            return ActionResult(Outcome.OK, f"{p.where} answers {p.hostname} with {self._ours()}")
        return ActionResult(
            Outcome.FAILED,
            f"{p.where} answers {p.hostname} with {answer.describe()}, not {self._ours()}",
        )

    async def _probe(self, key: TsigKey) -> ActionResult:
        p = self.params
        answer = await self._ask(key)
        here = answer.addresses == p.addresses and answer.cname is None
        where = "this node" if here else "elsewhere"
        return ActionResult(
            Outcome.STOPPED,
            f"{p.where} answers {p.hostname} with {answer.describe()} ({where}); a record is "
            "not held by a node: reported stopped",
        )

    # ---- helpers

    async def _key(self) -> TsigKey:
        # Read at every action, so a new key takes effect without a restart.
        return await asyncio.to_thread(read_key_file, self.params.key_file, self.params.key_name)

    def _ours(self) -> str:
        return ", ".join(map(str, self.params.addresses))

    def _rdatasets(self, ttl: int | None = None) -> list[dns.rdataset.Rdataset]:
        p = self.params
        ttl = p.ttl if ttl is None else ttl
        out = []
        for rdtype, family in ((dns.rdatatype.A, IPv4Address), (dns.rdatatype.AAAA, IPv6Address)):
            texts = [str(a) for a in p.addresses if isinstance(a, family)]
            if texts:
                out.append(dns.rdataset.from_text(dns.rdataclass.IN, rdtype, ttl, *texts))
        return out

    def _update(self, key: TsigKey) -> dns.update.UpdateMessage:
        update = dns.update.UpdateMessage(self.params.zone)
        update.use_tsig(_tsig_key(key))
        return update

    async def _apply(
        self,
        update: dns.update.UpdateMessage,
        key: TsigKey,
        what: str,
        allowed: tuple[int, ...] = (),
    ) -> int:
        """Send an update; its rcode when NOERROR or allowed, else _NoAnswerError saying why."""
        p = self.params
        response = await self._exchange(update, key)
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR or rcode in allowed:
            return rcode
        meaning = _RCODE_MEANING.get(rcode, "")
        meaning = meaning.format(key=repr(key.name), name=p.hostname, zone=p.zone)
        raise _NoAnswerError(
            f"{p.where} refused the {what} of {p.hostname}: {dns.rcode.to_text(rcode)}"
            + (f" ({meaning})" if meaning else "")
        )

    async def _ask(self, key: TsigKey) -> _Answer:
        """The server's A and AAAA records for the name (asked at once, signed)."""
        p = self.params
        queries = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            query = dns.message.make_query(p.hostname, rdtype)
            query.flags &= ~dns.flags.RD  # the primary's own data, no recursion
            query.use_tsig(_tsig_key(key))
            queries.append(query)
        responses = await asyncio.gather(*(self._exchange(q, key) for q in queries))
        found: list[IPAddress] = []
        cname = None
        for response in responses:
            rcode = response.rcode()
            if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                raise _NoAnswerError(
                    f"{p.where} cannot say what {p.hostname} is: {dns.rcode.to_text(rcode)}"
                    + (" (it does not serve the zone)" if rcode == dns.rcode.REFUSED else "")
                )
            for rrset in response.answer:
                if rrset.name != p.hostname:
                    continue
                if rrset.rdtype == dns.rdatatype.CNAME:
                    cname = str(rrset[0].target)
                elif rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    found.extend(ip_address(rdata.address) for rdata in rrset)
        return _Answer(_ordered(found), cname)

    async def _exchange(self, message: dns.message.Message, key: TsigKey) -> dns.message.Message:
        """One question and its answer over UDP (resent, TCP when truncated), within timeout."""
        p = self.params
        loop = asyncio.get_running_loop()
        deadline = loop.time() + p.timeout
        wait = FIRST_RESEND
        last = ""
        while (remaining := deadline - loop.time()) > 0:
            try:
                return await dns.asyncquery.udp(
                    message, str(p.server), timeout=min(wait, remaining), port=p.port,
                    raise_on_truncation=True,
                )  # fmt: skip
            except dns.message.Truncated:
                try:
                    return await dns.asyncquery.tcp(
                        message, str(p.server), timeout=max(0.001, deadline - loop.time()),
                        port=p.port,
                    )  # fmt: skip
                except (dns.exception.Timeout, OSError, EOFError) as err:
                    raise _NoAnswerError(
                        f"{p.where}: TCP after a truncated answer: {err!r}"
                    ) from None
            except dns.exception.Timeout:
                pass  # resent below: an update replaces whole record sets, so twice is once
            except OSError as err:
                # Refused (nothing listens: a restarting server) or unreachable: try again
                # after the wait rather than at once.
                last = f"{err.strerror or err}"
                await asyncio.sleep(max(0.0, min(wait, deadline - loop.time())))
            except dns.exception.DNSException as err:
                raise _NoAnswerError(f"{p.where}: {_peer_error(err, key)}") from None
            wait *= 2
        raise _NoAnswerError(
            f"no answer from {p.where} within {p.timeout:g}s" + (f" ({last})" if last else "")
        )


def build(resource: Resource, node: str, cluster: Cluster | None) -> AliasResource:
    """The adapter for alias `resource` on `node` (ParamError when its parameters are bad)."""
    return AliasResource(resource.name, parse_params(resource, node, cluster))
