"""The Lab: nodes and a client in network namespaces, a bridged LAN, a private link, a serial
line and a shared disk, built from real kernel objects and always removed again."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from hotstandby.lab import netns, power, state
from hotstandby.lab._cmd import DEFAULT_TIMEOUT, LabError, run
from hotstandby.lab.disk import SharedDisk
from hotstandby.lab.faults import FaultInjector
from hotstandby.lab.procs import LabProcess, ProcessTracker, await_gone
from hotstandby.lab.serial import SerialLine

#: The client's name, and the owner name of the bridge side of LAN links.
CLIENT = "client"
SWITCH = "switch"

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
# Node names end up in interface names (p-NAME), which the kernel caps at 15 characters.
_NODE_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")

#: Addresses that no lab interface carries: for the agents' floating IP.
FLOATING_IPV4 = "192.0.2.10"
FLOATING_IPV6 = "2001:db8:1::10"

#: How often to look at the kernel while waiting for the lab to become usable.
POLL_INTERVAL = 0.01

_PROBE = [sys.executable, "-m", "hotstandby.lab.probe"]


@dataclass(frozen=True)
class Endpoint:
    """One end of a link: who owns it, in which namespace, under which interface name."""

    owner: str
    ns: str
    ifname: str


@dataclass(frozen=True)
class Link:
    """A point-to-point veth link between two endpoints."""

    name: str
    a: Endpoint
    b: Endpoint

    def end(self, owner: str) -> Endpoint:
        """The endpoint owned by owner."""
        for e in (self.a, self.b):
            if e.owner == owner:
                return e
        raise LabError(f"link {self.name} joins {self.a.owner} and {self.b.owner}, not {owner!r}")

    def other(self, owner: str) -> Endpoint:
        """The endpoint not owned by owner."""
        return self.b if self.end(owner) is self.a else self.a


@dataclass(frozen=True)
class Node:
    """A node (or the client): its namespace, interfaces and addresses."""

    name: str
    ns: str
    lan_if: str
    lan_ipv4: str
    lan_ipv6: str
    priv_if: str | None = None
    priv_ipv4: str | None = None
    priv_ipv6: str | None = None


class Lab:
    """A small network of nodes on this machine; a context manager that always cleans up."""

    def __init__(
        self,
        prefix: str = "hs",
        nodes: Sequence[str] = ("a", "b"),
        *,
        serial: bool = True,
        disk_size: int = 16 << 20,
        ready_timeout: float = 5.0,
    ) -> None:
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix must match {_PREFIX_RE.pattern}, got {prefix!r}")
        if not 2 <= len(nodes) <= 8 or len(set(nodes)) != len(nodes):
            raise ValueError(f"a lab needs 2 to 8 distinct nodes, got {list(nodes)}")
        for name in nodes:
            if not _NODE_RE.match(name) or name in (CLIENT, SWITCH, "sw"):
                raise ValueError(f"node names must match {_NODE_RE.pattern}, got {name!r}")
        self.prefix = prefix
        self.node_names = list(nodes)
        self._want_serial = serial
        self._disk_size = disk_size
        self._ready_timeout = ready_timeout
        self.lab_id = ""
        self.workdir = Path()
        self.switch_ns = ""
        self._nodes: dict[str, Node] = {}
        self._links: dict[str, Link] = {}
        self._record: state.LabRecord | None = None
        self._procs: ProcessTracker | None = None
        self._faults = FaultInjector()
        self.serial: SerialLine | None = None
        self.disk: SharedDisk | None = None
        self._closed = False

    # ---- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Do not let a cleanup error hide the exception that ended the with-block.
        if exc is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self.close()

    def start(self) -> None:
        """Build everything; on any failure, remove what was built and re-raise."""
        if self._record is not None:
            raise LabError("this lab was already started")
        state.cleanup_leftovers(self.prefix + "-")
        existing = set(netns.list_namespaces())
        while True:
            self.lab_id = f"{self.prefix}-{secrets.token_hex(2)}"
            taken = any(ns.startswith(self.lab_id + "-") for ns in existing)
            if not taken and not (state.STATE_DIR / f"{self.lab_id}.json").exists():
                break
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hslab-{self.lab_id}-"))
        self.switch_ns = f"{self.lab_id}-sw"
        members = [*self.node_names, CLIENT]
        owner = os.getpid()
        # Written before anything exists, so a crash at any later point leaves a full record.
        self._record = state.LabRecord(
            lab_id=self.lab_id,
            owner_pid=owner,
            owner_start=state.process_start_time(owner) or 0,
            workdir=str(self.workdir),
            namespaces=[self.switch_ns, *(f"{self.lab_id}-{m}" for m in members)],
            backing=str(self.workdir / "shared-disk.img") if self._disk_size else None,
        )
        self._record.save()
        self._procs = ProcessTracker(self.workdir)
        # A last resort for a run that ends without unwinding this object's owner.
        atexit.register(self.close)
        try:
            self._build(members)
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _build(self, members: list[str]) -> None:
        sw = self.switch_ns
        netns.create_namespace(sw)
        # The switch only forwards frames: no IPv6 of its own, so it sends no ND/MLD noise.
        netns.set_sysctls(
            sw, {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
        )
        self._add_bridge("br0")
        for i, name in enumerate(members):
            ns = f"{self.lab_id}-{name}"
            netns.create_namespace(ns)
            host = 100 if name == CLIENT else 11 + i
            node = Node(name, ns, "lan0", f"192.0.2.{host}", f"2001:db8:1::{host}")
            self._nodes[name] = node
            self._links[f"lan-{name}"] = self._add_port("br0", f"p-{name}", node)
            self._configure(node, node.lan_if, node.lan_ipv4, node.lan_ipv6)
        self._build_private()
        self._await_ready()
        if self._want_serial and len(self.node_names) == 2:
            self.serial = SerialLine(self.workdir, *self.node_names)
            self.serial.start()
            assert self._record is not None
            self._record.socat_pid = self.serial.pid
            self._record.save()
        if self._disk_size:
            assert self._record is not None and self._record.backing is not None
            self.disk = SharedDisk(Path(self._record.backing), self._disk_size, self.node_names)
            self.disk.attach()
        self._record_wiring()

    def _record_wiring(self) -> None:
        """Write what each node's power loss cuts, for processes other than this one."""
        assert self._record is not None
        for name in self.node_names:
            ends = tuple((e.ns, e.ifname) for lk in self.links_of(name) for e in (lk.a, lk.b))
            wiring = power.NodeWiring(
                ns=self.node(name).ns,
                ends=ends,
                serial=self.serial is not None and name in self.serial.ends,
                disk=self.disk.devices.get(name) if self.disk is not None else None,
            )
            self._record.nodes[name] = wiring.as_json()
        self._record.save()

    def _add_bridge(self, name: str) -> None:
        # No STP and no multicast snooping: ports forward at once and ND multicast floods.
        run(["ip", "-n", self.switch_ns, "link", "add", name, "type", "bridge",
             "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"])  # fmt: skip
        run(["ip", "-n", self.switch_ns, "link", "set", name, "up"])

    def _add_port(self, bridge: str, port: str, node: Node, ifname: str = "lan0") -> Link:
        sw = self.switch_ns
        # The peer is created directly in the node's namespace: no name ever exists in the
        # host's namespace, so concurrent labs cannot collide on interface names.
        run(["ip", "-n", sw, "link", "add", port, "type", "veth",
             "peer", "name", ifname, "netns", node.ns])  # fmt: skip
        run(["ip", "-n", sw, "link", "set", port, "master", bridge, "up"])
        name = f"lan-{node.name}" if bridge == "br0" else f"private-{node.name}"
        return Link(name, Endpoint(node.name, node.ns, ifname), Endpoint(SWITCH, sw, port))

    def _build_private(self) -> None:
        names = self.node_names
        if len(names) == 2:
            # Two nodes: a crossover cable, no switch in between.
            a, b = (self._nodes[n] for n in names)
            run(["ip", "-n", a.ns, "link", "add", "priv0", "type", "veth",
                 "peer", "name", "priv0", "netns", b.ns])  # fmt: skip
            self._links["private"] = Link(
                "private", Endpoint(a.name, a.ns, "priv0"), Endpoint(b.name, b.ns, "priv0")
            )
        else:
            self._add_bridge("br1")
            for name in names:
                link = self._add_port("br1", f"q-{name}", self._nodes[name], "priv0")
                self._links[link.name] = link
        for i, name in enumerate(names):
            v4, v6 = f"198.51.100.{i + 1}", f"2001:db8:2::{i + 1}"
            node = dataclasses.replace(
                self._nodes[name], priv_if="priv0", priv_ipv4=v4, priv_ipv6=v6
            )
            self._nodes[name] = node
            self._configure(node, "priv0", v4, v6)

    def _configure(self, node: Node, ifname: str, v4: str, v6: str) -> None:
        # No duplicate address detection on lab interfaces: the addresses are ours by
        # construction and must be usable the moment the lab is ready.
        netns.set_sysctls(node.ns, {f"net.ipv6.conf.{ifname}.accept_dad": "0"})
        run(["ip", "-n", node.ns, "addr", "add", f"{v4}/24", "dev", ifname])
        run(["ip", "-n", node.ns, "addr", "add", f"{v6}/64", "dev", ifname, "nodad"])
        run(["ip", "-n", node.ns, "link", "set", ifname, "up"])

    def _await_ready(self) -> None:
        """Wait until every lab interface is up and none of its addresses is tentative."""
        deadline = time.monotonic() + self._ready_timeout
        pending = {
            n.ns: {n.lan_if, *([n.priv_if] if n.priv_if else [])} for n in self._nodes.values()
        }
        while pending:
            for ns in list(pending):
                ready = set()
                for link in netns.link_addresses(ns):
                    infos = link.get("addr_info", [])
                    tentative = any(i.get("tentative") for i in infos)
                    if link.get("operstate") == "UP" and infos and not tentative:
                        ready.add(link["ifname"])
                if pending[ns] <= ready:
                    del pending[ns]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(f"lab interfaces not ready within {self._ready_timeout}s: {pending}")
            time.sleep(POLL_INTERVAL)

    def close(self) -> None:
        """Remove everything this lab made; safe to call more than once."""
        if self._closed or self._record is None:
            return
        self._closed = True
        atexit.unregister(self.close)
        errors: list[str] = []
        for step in (self._close_procs, self._close_serial, self._close_disk):
            try:
                step()
            except Exception as exc:
                errors.append(f"{step.__name__}: {exc}")
        # Then whatever is left: stray pids in our namespaces, the namespaces, the work dir.
        errors += state.destroy(self._record)
        if errors:
            raise LabError("lab cleanup incomplete: " + "; ".join(errors))

    def _close_procs(self) -> None:
        if self._procs is not None:
            self._procs.kill_all()

    def _close_serial(self) -> None:
        if self.serial is not None:
            self.serial.stop()

    def _close_disk(self) -> None:
        if self.disk is not None:
            self.disk.detach()

    # ---- looking up ------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """A node (or the client) by name."""
        try:
            return self._nodes[name]
        except KeyError:
            raise LabError(f"no node {name!r} in this lab ({sorted(self._nodes)})") from None

    @property
    def nodes(self) -> Mapping[str, Node]:
        """Every node and the client, by name."""
        return dict(self._nodes)

    @property
    def client(self) -> Node:
        """The client on the LAN."""
        return self.node(CLIENT)

    @property
    def namespaces(self) -> list[str]:
        """Every namespace this lab owns, the switch's included."""
        return [self.switch_ns, *(n.ns for n in self._nodes.values())]

    def link(self, link: str | Link) -> Link:
        """A link by name: 'lan-<node>', 'lan-client', 'private' (or 'private-<node>')."""
        if isinstance(link, Link):
            return link
        try:
            return self._links[link]
        except KeyError:
            raise LabError(f"no link {link!r} in this lab ({sorted(self._links)})") from None

    @property
    def links(self) -> Mapping[str, Link]:
        """Every link, by name."""
        return dict(self._links)

    def links_of(self, node: str) -> list[Link]:
        """The links that have an end on node."""
        return [lk for lk in self._links.values() if node in (lk.a.owner, lk.b.owner)]

    # ---- processes -------------------------------------------------------------------------

    def _tracker(self) -> ProcessTracker:
        if self._procs is None or self._closed:
            raise LabError("the lab is not running")
        return self._procs

    def run(
        self,
        node: str,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside node's namespace and wait for it (with a timeout)."""
        return run(netns.ns_argv(self.node(node).ns, argv), timeout=timeout, check=check)

    def spawn(
        self,
        node: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = None,
        stderr: int | IO[bytes] | None = None,
    ) -> LabProcess:
        """Start a long-running process in node's namespace; the lab tracks and ends it."""
        return self._tracker().spawn(
            node, self.node(node).ns, argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr
        )

    def processes(self, node: str | None = None) -> list[LabProcess]:
        """Running processes the lab started, of one node or all."""
        return self._tracker().processes(node)

    def freeze(self, proc: LabProcess | int) -> None:
        """SIGSTOP one process the lab started."""
        self._tracker().freeze(proc)

    def resume(self, proc: LabProcess | int) -> None:
        """SIGCONT one process the lab started."""
        self._tracker().resume(proc)

    def kill(self, proc: LabProcess | int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal (by default SIGKILL, then reap) one process the lab started."""
        self._tracker().kill(proc, sig)

    # ---- network faults --------------------------------------------------------------------

    @staticmethod
    def _receivers(link: Link, to: str | None) -> list[Endpoint]:
        return [link.a, link.b] if to is None else [link.end(to)]

    def cut(self, link: str | Link, *, to: str | None = None) -> None:
        """Drop every frame on link; with to=OWNER only those travelling towards that end."""
        lk = self.link(link)
        for end in self._receivers(lk, to):
            self._faults.set_cut(end.ns, end.ifname, True)

    def heal(self, link: str | Link, *, to: str | None = None) -> None:
        """Undo cut (both directions, or only towards to)."""
        lk = self.link(link)
        for end in self._receivers(lk, to):
            self._faults.set_cut(end.ns, end.ifname, False)

    def is_cut(self, link: str | Link, *, to: str) -> bool:
        """Whether frames travelling towards end to of link are dropped."""
        end = self.link(link).end(to)
        return self._faults.is_cut(end.ns, end.ifname)

    def loss(self, link: str | Link, percent: float, *, to: str | None = None) -> None:
        """Lose percent of the packets on link (only those towards to, if given); 0 removes."""
        lk = self.link(link)
        for recv in self._receivers(lk, to):
            send = lk.other(recv.owner)
            self._faults.set_loss(send.ns, send.ifname, recv.ns, recv.ifname, percent)

    def delay(self, link: str | Link, ms: float, *, to: str | None = None) -> None:
        """Delay packets on link by ms (only those towards to, if given); 0 removes."""
        lk = self.link(link)
        for recv in self._receivers(lk, to):
            send = lk.other(recv.owner)
            self._faults.set_delay(send.ns, send.ifname, ms)

    def netem_available(self) -> bool:
        """Whether this kernel has the netem qdisc (needed for delay; loss falls back)."""
        end = next(iter(self._links.values())).a
        return self._faults.netem_available(end.ns, end.ifname)

    def clear_faults(self, link: str | Link) -> None:
        """Remove every cut, loss and delay on both ends of link."""
        lk = self.link(link)
        for end in (lk.a, lk.b):
            self._faults.clear(end.ns, end.ifname)

    # ---- whole-node faults -----------------------------------------------------------------

    def power_loss(self, node: str) -> None:
        """Freeze node's processes, cut its links, serial line and disk, then kill them all.

        Freezing first matters: a daemon that is merely killed still gets its last packets
        out while dying, and the test would measure a graceful handover instead.
        """
        tracker = self._tracker()
        self.node(node)
        roots = [p.pid for p in tracker.processes(node)]
        # Returns once every one of them is stopped: only then may the cuts begin.
        frozen = power.freeze_tree(lambda: roots)
        for lk in self.links_of(node):
            self.cut(lk)
        if self.serial is not None and node in self.serial.ends:
            self.serial.cut()
        if self.disk is not None and node in self.disk.devices:
            self.disk.set_cut(node, True)
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in tracker.processes(node):
            tracker.kill(p)  # reaps our direct children
        # SIGKILL is asynchronous too; orphaned grandchildren are not ours to wait() for.
        if not await_gone(frozen):
            raise LabError(f"processes of {node} survived SIGKILL: {frozen}")

    def power_on(self, node: str) -> None:
        """Reconnect node's links, serial line and disk (its processes are not restarted)."""
        for lk in self.links_of(node):
            self.heal(lk)
        if self.serial is not None and node in self.serial.ends:
            self.serial.heal()
        if self.disk is not None and node in self.disk.devices:
            self.disk.set_cut(node, False)

    def cut_serial(self) -> None:
        """Cut the serial line (SIGSTOP socat)."""
        if self.serial is None:
            raise LabError("this lab has no serial line")
        self.serial.cut()

    def heal_serial(self) -> None:
        """Reconnect the serial line; bytes queued while it was cut are delivered late."""
        if self.serial is None:
            raise LabError("this lab has no serial line")
        self.serial.heal()

    def cut_disk(self, node: str) -> None:
        """Make node's path to the shared disk refuse writes."""
        if self.disk is None:
            raise LabError("this lab has no shared disk")
        self.disk.set_cut(node, True)

    def heal_disk(self, node: str) -> None:
        """Let node write to the shared disk again."""
        if self.disk is None:
            raise LabError("this lab has no shared disk")
        self.disk.set_cut(node, False)

    # ---- looking inside --------------------------------------------------------------------

    def holders(self, address: str) -> list[str]:
        """Names of the nodes (and client) that have address configured right now."""
        by_ns = {n.ns: n.name for n in self._nodes.values()}
        return [by_ns[ns] for ns in netns.namespaces_with_address(by_ns, address)]

    def ping(self, node: str, address: str, *, timeout: float = 2.0) -> bool:
        """Whether address answers an ICMP echo sent from node within timeout seconds."""
        return self.rtt(node, address, timeout=timeout) is not None

    def rtt(self, node: str, address: str, *, timeout: float = 2.0) -> float | None:
        """Round-trip time in seconds of an ICMP echo from node to address, None if unanswered."""
        argv = [*_PROBE, "ping", address, "--timeout", str(timeout)]
        done = self.run(node, argv, timeout=timeout + DEFAULT_TIMEOUT, check=False)
        return float(done.stdout) if done.returncode == 0 else None

    def udp_count(
        self,
        sender: str,
        receiver: str,
        address: str,
        *,
        count: int = 200,
        port: int = 40000,
        interval: float = 0.0,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> int:
        """Send count UDP datagrams from sender to address (on receiver); return how many came."""
        proc = subprocess.Popen(
            netns.ns_argv(self.node(receiver).ns, [*_PROBE, "udp-recv", address, str(port)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            # Send only once the receiver's socket is bound, which it announces with "ready".
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready or proc.stdout.readline().strip() != "ready":
                raise LabError(f"UDP receiver in {receiver} did not start: {_stderr_of(proc)}")
            send = [*_PROBE, "udp-send", address, str(port), "--count", str(count),
                    "--interval", str(interval)]  # fmt: skip
            self.run(sender, send, timeout=timeout + count * interval)
            out, err = proc.communicate("stop\n", timeout=timeout)
            if proc.returncode != 0:
                raise LabError(f"UDP receiver in {receiver} failed: {err.strip()}")
            return int(out.strip())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5.0)


def _stderr_of(proc: subprocess.Popen[Any]) -> str:
    """What a helper wrote to stderr, after ending it."""
    with contextlib.suppress(Exception):
        proc.kill()
        _, err = proc.communicate(timeout=5.0)
        return str(err).strip()
    return ""
