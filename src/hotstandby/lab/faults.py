"""Network faults on one interface end: drop (cut), random loss, delay.

Cuts drop every frame in an nftables `netdev` ingress chain bound to the receiving interface.
That hook runs before ARP, IPv6 neighbour discovery, IP and the bridge, so a cut is total and
takes effect with the `nft` call, unlike setting a link down, whose carrier change the kernel
only handles about once a second. Cutting one direction means dropping at one end only.

Loss and delay use `tc qdisc netem` on the sending interface when the kernel has netem. When
it does not (CONFIG_NET_SCH_NETEM unset), loss falls back to an nftables rule at the
receiving end, `numgen random mod 100 < P drop`, which drops the same share at random; delay
has no such fallback and raises LabUnsupportedError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hotstandby.lab._cmd import LabCommandError, LabUnsupportedError, run
from hotstandby.lab.netns import ns_argv

#: The nftables table the lab owns in each namespace; nothing else is ever touched.
NFT_TABLE = "hotstandby_lab"


@dataclass
class _Ingress:
    cut: bool = False
    loss_percent: float = 0.0


@dataclass
class _Egress:
    loss_percent: float = 0.0
    delay_ms: float = 0.0


class FaultInjector:
    """Keeps the wanted faults per (namespace, interface) and rewrites the kernel's rules."""

    def __init__(self) -> None:
        self._ingress: dict[tuple[str, str], _Ingress] = {}
        self._egress: dict[tuple[str, str], _Egress] = {}
        self._netem: bool | None = None

    # ---- ingress drops (nftables) -------------------------------------------------------

    def set_cut(self, ns: str, ifname: str, cut: bool) -> None:
        """Drop (or stop dropping) every frame arriving at ifname in ns."""
        self._ingress.setdefault((ns, ifname), _Ingress()).cut = cut
        self._apply_ingress(ns, ifname)

    def _set_ingress_loss(self, ns: str, ifname: str, percent: float) -> None:
        self._ingress.setdefault((ns, ifname), _Ingress()).loss_percent = percent
        self._apply_ingress(ns, ifname)

    def _apply_ingress(self, ns: str, ifname: str) -> None:
        state = self._ingress[(ns, ifname)]
        chain = f"in_{ifname}"
        # One nft transaction: declare (idempotent), flush, refill. The rule set changes
        # atomically, so no packet ever sees a half-built chain.
        lines = [
            f"table netdev {NFT_TABLE} {{",
            f'  chain {chain} {{ type filter hook ingress device "{ifname}" priority -500; }}',
            "}",
            f"flush chain netdev {NFT_TABLE} {chain}",
        ]
        if state.cut:
            lines.append(f"add rule netdev {NFT_TABLE} {chain} counter drop")
        if state.loss_percent > 0:
            threshold = round(state.loss_percent)
            lines.append(
                f"add rule netdev {NFT_TABLE} {chain} numgen random mod 100 < {threshold} "
                "counter drop"
            )
        run(ns_argv(ns, ["nft", "-f", "-"]), stdin="\n".join(lines) + "\n")

    # ---- netem on egress ------------------------------------------------------------------

    def netem_available(self, ns: str, ifname: str) -> bool:
        """Whether the kernel has the netem qdisc (probed once, on a lab interface)."""
        if self._netem is None:
            try:
                run(ns_argv(ns, ["tc", "qdisc", "replace", "dev", ifname, "root", "netem"]))
                run(ns_argv(ns, ["tc", "qdisc", "del", "dev", ifname, "root"]))
                self._netem = True
            except LabCommandError as exc:
                if "unknown" not in exc.stderr.lower():
                    raise
                self._netem = False
        return self._netem

    def set_loss(
        self, send_ns: str, send_if: str, recv_ns: str, recv_if: str, percent: float
    ) -> None:
        """Lose percent of the packets sent from send_if to recv_if (0 removes the loss)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss must be within 0..100 percent, got {percent}")
        if self.netem_available(send_ns, send_if):
            self._egress.setdefault((send_ns, send_if), _Egress()).loss_percent = percent
            self._apply_egress(send_ns, send_if)
        else:
            self._set_ingress_loss(recv_ns, recv_if, percent)

    def set_delay(self, send_ns: str, send_if: str, delay_ms: float) -> None:
        """Delay every packet sent from send_if by delay_ms (0 removes the delay)."""
        if delay_ms < 0:
            raise ValueError(f"delay must not be negative, got {delay_ms}")
        if not self.netem_available(send_ns, send_if):
            raise LabUnsupportedError(
                "delay needs the netem qdisc, which this kernel lacks (CONFIG_NET_SCH_NETEM)"
            )
        self._egress.setdefault((send_ns, send_if), _Egress()).delay_ms = delay_ms
        self._apply_egress(send_ns, send_if)

    def _apply_egress(self, ns: str, ifname: str) -> None:
        state = self._egress[(ns, ifname)]
        if state.loss_percent <= 0 and state.delay_ms <= 0:
            run(ns_argv(ns, ["tc", "qdisc", "del", "dev", ifname, "root"]), check=False)
            return
        argv = ["tc", "qdisc", "replace", "dev", ifname, "root", "netem"]
        if state.delay_ms > 0:
            argv += ["delay", f"{state.delay_ms}ms"]
        if state.loss_percent > 0:
            argv += ["loss", f"{state.loss_percent}%"]
        run(ns_argv(ns, argv))

    def clear(self, ns: str, ifname: str) -> None:
        """Remove every fault on ifname in ns (cut, loss, delay)."""
        if (ns, ifname) in self._ingress:
            self._ingress[(ns, ifname)] = _Ingress()
            self._apply_ingress(ns, ifname)
        if (ns, ifname) in self._egress:
            self._egress[(ns, ifname)] = _Egress()
            self._apply_egress(ns, ifname)

    def is_cut(self, ns: str, ifname: str) -> bool:
        """Whether frames arriving at ifname in ns are being dropped."""
        state = self._ingress.get((ns, ifname))
        return state is not None and state.cut


def ingress_cut(ns: str, ifname: str) -> bool:
    """Whether every frame arriving at ifname in ns is dropped, as the kernel has it now.

    Read from nftables rather than a FaultInjector, so it also sees cuts made by another
    process (the lab's fence agent). An unreadable chain counts as not cut.
    """
    argv = ["nft", "-j", "list", "chain", "netdev", NFT_TABLE, f"in_{ifname}"]
    done = run(ns_argv(ns, argv), check=False)
    if done.returncode != 0:
        return False
    for item in json.loads(done.stdout or "{}").get("nftables", []):
        exprs = item.get("rule", {}).get("expr", [])
        # The cut rule drops unconditionally: a counter and a verdict, no match.
        unconditional = all(set(e) <= {"counter", "drop"} for e in exprs)
        if exprs and unconditional and any("drop" in e for e in exprs):
            return True
    return False
