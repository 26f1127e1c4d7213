"""The alias adapter against a real BIND (named) in a lab namespace, as the agent runs it."""

from __future__ import annotations

import pytest

from hotstandby.lab import Lab
from hotstandby.lab.dns import DnsServer, key_file_text

from .alias_lab import HOSTNAME, AliasHost, lookup, nsupdate, params_for

pytestmark = pytest.mark.lab

A, B = "192.0.2.11", "192.0.2.12"


def test_start_points_the_name_at_the_node_and_a_client_sees_it(
    lab: Lab, dns_server: DnsServer
) -> None:
    assert lookup(lab, "b", dns_server) == []
    host = AliasHost(lab, "a", params_for(dns_server))
    before = host.run("probe")
    assert before.outcome == "stopped"
    assert "answers db.example.org. with no A/AAAA records (elsewhere)" in before.detail
    started = host.run("start")
    assert started.outcome == "ok", started.detail
    assert started.detail.startswith(f"{HOSTNAME} -> {A} (TTL 30) at 192.0.2.100:53: updated in")
    # Another namespace, another client: the name now leads to node a.
    assert lookup(lab, "b", dns_server) == [A]
    assert lookup(lab, "client", dns_server) == [A]
    monitored = host.run("monitor")
    assert (monitored.outcome, monitored.detail) == (
        "ok",
        f"192.0.2.100:53 answers {HOSTNAME} with {A}",
    )
    # A record pointing here is still not something this node holds.
    after = host.run("probe")
    assert after.outcome == "stopped"
    assert f"with {A} (this node)" in after.detail
    assert "updating zone 'example.org/IN': adding an RR at 'db.example.org' A" in dns_server.log()


def test_a_second_node_takes_the_name_over(lab: Lab, dns_server: DnsServer) -> None:
    first = AliasHost(lab, "a", params_for(dns_server))
    second = AliasHost(lab, "b", params_for(dns_server))
    assert first.run("start").outcome == "ok"
    assert lookup(lab, "client", dns_server) == [A]
    taken = second.run("start")
    assert taken.outcome == "ok", taken.detail
    # Replaced, not added to: only b's address is left.
    assert lookup(lab, "client", dns_server) == [B]
    assert second.run("monitor").outcome == "ok"
    lost = first.run("monitor")
    assert (lost.outcome, lost.detail) == (
        "failed",
        f"192.0.2.100:53 answers {HOSTNAME} with {B}, not {A}",
    )


def test_monitor_sees_a_change_made_behind_its_back(lab: Lab, dns_server: DnsServer) -> None:
    host = AliasHost(lab, "a", params_for(dns_server))
    assert host.run("start").outcome == "ok"
    nsupdate(
        lab, "client", dns_server,
        f"update delete {HOSTNAME} A",
        f"update add {HOSTNAME} 30 A 192.0.2.99",
        f"update add {HOSTNAME} 30 AAAA 2001:db8::99",
    )  # fmt: skip
    changed = host.run("monitor")
    assert changed.outcome == "failed"
    assert (
        changed.detail
        == f"192.0.2.100:53 answers {HOSTNAME} with 192.0.2.99, 2001:db8::99, not {A}"
    )
    nsupdate(lab, "client", dns_server, f"update delete {HOSTNAME}")
    gone = host.run("monitor")
    assert (gone.outcome, gone.detail) == (
        "failed",
        f"192.0.2.100:53 answers {HOSTNAME} with no A/AAAA records, not {A}",
    )
    # A restart in place puts it back, stale AAAA records included.
    assert host.run("start").outcome == "ok"
    assert lookup(lab, "b", dns_server) == [A]


def test_start_replaces_stale_aaaa_records_and_writes_both_families(
    lab: Lab, dns_server: DnsServer
) -> None:
    nsupdate(lab, "client", dns_server, f"update add {HOSTNAME} 30 AAAA 2001:db8::99")
    host = AliasHost(lab, "a", params_for(dns_server))
    assert host.run("start").outcome == "ok"
    assert lookup(lab, "client", dns_server) == [A]
    both = AliasHost(lab, "b", params_for(dns_server, address=["2001:db8::12", B], ttl=5))
    started = both.run("start")
    assert started.outcome == "ok", started.detail
    assert f"-> {B}, 2001:db8::12 (TTL 5)" in started.detail
    assert lookup(lab, "client", dns_server) == ["192.0.2.12", "2001:db8::12"]


def test_a_cname_at_the_name_fails_the_start(lab: Lab, dns_server: DnsServer) -> None:
    # The server keeps a CNAME and silently ignores A records beside it: the check after the
    # update is what catches it.
    nsupdate(lab, "client", dns_server, f"update add {HOSTNAME} 30 CNAME elsewhere.example.org.")
    host = AliasHost(lab, "a", params_for(dns_server))
    failed = host.run("start")
    assert failed.outcome == "failed"
    assert failed.detail == (
        f"updated, but 192.0.2.100:53 answers {HOSTNAME} with CNAME elsewhere.example.org., not {A}"
    )


def test_a_wrong_secret_fails_and_says_why(lab: Lab, dns_server: DnsServer) -> None:
    host = AliasHost(lab, "a", params_for(dns_server))
    assert host.run("start").outcome == "ok"
    wrong = lab.workdir / "wrong-secret.key"
    wrong.write_text(key_file_text(dns_server.key.name, b"not the server's secret"))
    intruder = AliasHost(lab, "b", params_for(dns_server, key_file=str(wrong)))
    failed = intruder.run("start")
    assert failed.outcome == "failed"
    assert "start: 192.0.2.100:53: the server rejected our signature with key" in failed.detail
    assert "(BADSIG): the key's secret or algorithm differs from the server's" in failed.detail
    assert lookup(lab, "client", dns_server) == [A]
    assert intruder.run("monitor").outcome == "failed"


def test_an_unknown_key_fails_and_says_why(lab: Lab, dns_server: DnsServer) -> None:
    unknown = lab.workdir / "unknown.key"
    unknown.write_text(key_file_text("nobody-knows", b"0123456789abcdef"))
    host = AliasHost(lab, "a", params_for(dns_server, key_file=str(unknown)))
    failed = host.run("start")
    assert failed.outcome == "failed"
    assert "the server does not know key 'nobody-knows' (BADKEY)" in failed.detail
    assert lookup(lab, "client", dns_server) == []


def test_a_missing_key_file_fails_naming_it(lab: Lab, dns_server: DnsServer) -> None:
    path = lab.workdir / "absent.key"
    host = AliasHost(lab, "a", params_for(dns_server, key_file=str(path)))
    failed = host.run("start")
    assert (failed.outcome, failed.detail) == (
        "failed",
        f"start: key file: {path}: cannot read: No such file or directory",
    )
    assert host.run("probe").outcome == "stopped"


def test_a_zone_the_server_does_not_serve_is_refused(lab: Lab, dns_server: DnsServer) -> None:
    params = params_for(dns_server, hostname="db.example.net.", zone="example.net.")
    failed = AliasHost(lab, "a", params).run("start")
    assert failed.outcome == "failed"
    assert failed.detail.startswith(
        "start: 192.0.2.100:53 refused the update of db.example.net.: NOTAUTH (the server is "
        "not the primary for zone example.net."
    )


def test_server_down_fails_within_the_timeout(lab: Lab, dns_server: DnsServer) -> None:
    host = AliasHost(lab, "a", params_for(dns_server, timeout="1s"))
    assert host.run("start").outcome == "ok"
    dns_server.stop()
    for action in ("start", "monitor"):
        failed = host.run(action)
        assert failed.outcome == "failed"
        assert failed.detail.startswith(f"{action}: no answer from 192.0.2.100:53 within 1s")
        # Its own deadline, not the caller's: the agent's timeout need not cancel it.
        assert 1.0 <= failed.took < 2.0
    probed = host.run("probe")
    assert probed.outcome == "stopped"
    assert "no answer from 192.0.2.100:53 within 1s" in probed.detail


def test_server_unreachable_fails_within_the_timeout(lab: Lab, dns_server: DnsServer) -> None:
    # No host at the address at all: nothing refuses, the updates go unanswered.
    host = AliasHost(lab, "a", {**params_for(dns_server, timeout="800ms"), "server": "192.0.2.99"})
    failed = host.run("start")
    assert failed.outcome == "failed"
    assert failed.detail.startswith("start: no answer from 192.0.2.99:53 within 0.8s")
    assert 0.8 <= failed.took < 1.8


def test_stop_keeps_the_record_by_default(lab: Lab, dns_server: DnsServer) -> None:
    host = AliasHost(lab, "a", params_for(dns_server))
    assert host.run("start").outcome == "ok"
    stopped = host.run("stop")
    assert stopped.outcome == "ok"
    assert "left as it is (on_stop = keep)" in stopped.detail
    assert lookup(lab, "client", dns_server) == [A]


def test_stop_removes_only_our_own_records(lab: Lab, dns_server: DnsServer) -> None:
    first = AliasHost(lab, "a", params_for(dns_server, on_stop="remove"))
    second = AliasHost(lab, "b", params_for(dns_server, on_stop="remove"))
    assert first.run("start").outcome == "ok"
    removed = first.run("stop")
    assert (removed.outcome, removed.detail) == ("ok", f"removed {A} from {HOSTNAME}")
    assert lookup(lab, "client", dns_server) == []
    assert first.run("monitor").outcome == "failed"
    # The old active stopping after the new one started must not remove the new records.
    assert first.run("start").outcome == "ok"
    assert second.run("start").outcome == "ok"
    late = first.run("stop")
    assert late.outcome == "ok"
    assert late.detail == f"{HOSTNAME} no longer holds exactly {A}: left as it is"
    assert lookup(lab, "client", dns_server) == [B]


def test_a_large_answer_falls_back_to_tcp(lab: Lab, dns_server: DnsServer) -> None:
    # 40 A records make an answer larger than 512 bytes: truncated over UDP, whole over TCP.
    many = [f"192.0.2.{i}" for i in range(150, 190)]
    host = AliasHost(lab, "a", params_for(dns_server, address=many))
    started = host.run("start")
    assert started.outcome == "ok", started.detail
    assert host.run("monitor").outcome == "ok"
    # A client asking over UDP only gets the truncated answer: the adapter saw all 40 records,
    # so it asked again over TCP.
    assert len(lookup(lab, "client", dns_server)) < len(many)
