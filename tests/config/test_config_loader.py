"""Loading: a valid file becomes a Cluster; every kind of broken file a located ConfigError."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pytest

from hotstandby.config import ConfigError, load, load_bytes, load_text
from hotstandby.config.errors import format_key
from hotstandby.config.loader import _syntax_problem
from hotstandby.core.cluster import (
    ArbitrationMode,
    LinkKind,
    OnFail,
    Policies,
    ResourceKind,
    Timers,
)

from .config_samples import BASE, DISK_ARBITRATION, edit, line_with, with_arbitration


def test_valid_file_becomes_a_cluster() -> None:
    cluster = load_text(BASE, "base.toml")
    assert cluster.name == "db"
    assert cluster.secret_file == "/etc/hotstandby/secret"
    assert cluster.node_names == ("alpha", "beta")
    assert cluster.node("alpha").priority == 200
    assert cluster.node("alpha").address == "192.0.2.11"
    assert cluster.node("beta").priority == 100  # the default
    assert cluster.node("beta").address is None
    udp, serial = cluster.links
    assert (udp.kind, udp.port, dict(udp.endpoints)) == (
        LinkKind.UDP,
        694,
        {"alpha": "198.51.100.1", "beta": "198.51.100.2"},
    )
    assert (serial.kind, serial.baud, serial.endpoints["beta"]) == (
        LinkKind.SERIAL,
        9600,
        "/dev/ttyS1",
    )
    vip, pg = cluster.resources
    assert vip.kind is ResourceKind.IP
    assert vip.start_timeout == 5.0
    assert vip.stop_timeout == 20.0  # the default
    assert (pg.start_timeout, pg.stop_timeout, pg.monitor_timeout, pg.monitor_interval) == (
        60.0,
        1.5,
        0.5,
        2.0,
    )
    assert pg.params == {}
    assert vip.on_fail is pg.on_fail is OnFail.RESTART  # the default

    arb = cluster.arbitration
    assert (arb.mode, arb.device, arb.watchdog_timeout) == (ArbitrationMode.DISK, "/dev/sdc", 5.0)
    assert arb.watchdog_device == "/dev/watchdog"  # default once a timeout is set
    t = cluster.timers
    assert (t.interval, t.warn_time, t.dead_time, t.initial_dead) == (0.2, 0.6, 1.0, 30.0)
    assert (t.lease, t.fence_timeout, t.release, t.max_drift) == (20.0, 10.0, 2.0, 0.001)
    p = cluster.policies
    assert (p.failback, p.failback_delay, p.max_restarts) == (True, 300.0, 3)
    assert (p.restart_window, p.failure_expiry, p.boot_alone) == (600.0, 3600.0, False)
    assert [dict(a) for a in cluster.alarms] == [{"kind": "syslog"}]


def test_params_are_frozen_deeply() -> None:
    params = load_text(BASE).resources[0].params
    assert isinstance(params, MappingProxyType)
    assert params["addresses"] == ("192.0.2.10/24", "2001:db8::10/64")
    assert isinstance(params["extra"]["nested"], MappingProxyType)
    assert params["extra"]["nested"]["deep"] == (1, 2)
    with pytest.raises(TypeError):
        params["new"] = 1  # type: ignore[index]


def test_digest_is_the_sha256_of_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(BASE.encode())
    assert load(path).digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_text(BASE).digest == load(path).digest
    assert load_text(BASE + "\n").digest != load(path).digest


def test_optional_tables_take_defaults() -> None:
    text = BASE.split("[[resource]]")[0] + '[arbitration]\nmode = "none"\n'
    cluster = load_text(text)
    assert cluster.timers == Timers()
    assert cluster.policies == Policies()
    assert cluster.resources == ()
    assert cluster.alarms == ()


def test_other_modes_load() -> None:
    witness = load_text(with_arbitration('[arbitration]\nmode = "witness"\nwitness = "q:9"\n'))
    assert witness.arbitration.witness == "q:9"
    assert witness.arbitration.watchdog_device is None
    fence = load_text(
        with_arbitration(
            '[arbitration]\nmode = "fence"\nfence_delay = "0s"\n'
            '[[arbitration.fence]]\nagent = "fence_ipmilan"\nip = "192.0.2.99"\n'
        )
    )
    assert [dict(f) for f in fence.arbitration.fence] == [
        {"agent": "fence_ipmilan", "ip": "192.0.2.99"}
    ]
    assert fence.arbitration.fence_delay == 0.0
    device = load_text(
        edit(
            BASE,
            'watchdog_timeout = "5s"',
            'watchdog_timeout = "5s"\nwatchdog_device = "/dev/watchdog1"',
        )
    )
    assert device.arbitration.watchdog_device == "/dev/watchdog1"


def test_ipv6_endpoints_and_a_disk_link() -> None:
    text = edit(BASE, 'alpha = "198.51.100.1"', 'alpha = "2001:db8::1"')
    text = edit(text, 'beta = "198.51.100.2"', 'beta = "fe80::2%eth1"')
    text = edit(text, 'kind = "serial"\nbaud = 9600', 'kind = "disk"\noffset = 4096')
    cluster = load_text(text)
    assert cluster.links[0].endpoints["beta"] == "fe80::2%eth1"
    assert (cluster.links[1].kind, cluster.links[1].offset) == (LinkKind.DISK, 4096)


# -- broken files -------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A broken variant of BASE and where its error must point."""

    text: str
    key: str  # as format_key shows it
    line: str  # a snippet of the line the error must name
    expected: str  # a substring of the expected part
    found: str  # a substring of the found part
    occurrence: int = 1  # which line holding `line`


def _swap(old: str, new: str, key: str, line: str, expected: str, found: str, n: int = 1) -> Broken:
    return Broken(edit(BASE, old, new), key, line, expected, found, n)


BROKEN = {
    # wrong types
    "name not a string": _swap(
        'name = "db"', "name = 5", "cluster.name", "name = 5", "a name", "the number 5"
    ),
    "priority a string": _swap(
        "priority = 200",
        'priority = "high"',
        "node[0].priority",
        "priority",
        "an integer",
        '"high"',
    ),
    "priority a bool": _swap(
        "priority = 200", "priority = true", "node[0].priority", "priority", "an integer", "true"
    ),
    "port out of range": _swap(
        "port = 694", "port = 70000", "link[0].port", "port =", "from 1 to 65535", "70000"
    ),
    "failback a string": _swap(
        "failback = true",
        'failback = "yes"',
        "policies.failback",
        "failback =",
        "true or false",
        '"yes"',
    ),
    "max_drift a string": _swap(
        "max_drift = 0.001",
        'max_drift = "0.1%"',
        "timers.max_drift",
        "max_drift",
        "a number",
        '"0.1%"',
    ),
    "alarm not a table": Broken(
        'alarm = "loud"\n' + BASE.replace('[[alarm]]\nkind = "syslog"\n', ""),
        "alarm",
        "alarm =",
        "[[alarm]]",
        '"loud"',
    ),
    "params not a table": _swap(
        'name = "postgres"',
        'name = "postgres"\nparams = 3',
        "resource[1].params",
        "params = 3",
        "a table [params]",
        "the number 3",
    ),
    "endpoint not a string": _swap(
        'alpha = "/dev/ttyS0"',
        "alpha = 0",
        "link[1].endpoints.alpha",
        "alpha = 0",
        "an absolute path",
        "the number 0",
    ),
    "cluster not a table": Broken(
        'cluster = "x"\n' + BASE.split("\n", 3)[3], "cluster", 'cluster = "x"', "[cluster]", '"x"'
    ),
    "empty name": _swap('name = "db"', 'name = ""', "cluster.name", 'name = ""', "a name", '""'),
    "bad name": _swap(
        'name = "beta"', 'name = "-beta"', "node[1].name", '"-beta"', "letters, digits", '"-beta"'
    ),
    "relative secret": _swap(
        'secret_file = "/etc/hotstandby/secret"',
        'secret_file = "secret"',
        "cluster.secret_file",
        "secret_file",
        "an absolute path",
        '"secret"',
    ),
    "node address a name": _swap(
        'address = "192.0.2.11"',
        'address = "alpha.example.org"',
        "node[0].address",
        "address =",
        "IPv4 or IPv6",
        "alpha.example.org",
    ),
    "udp endpoint with prefix": _swap(
        'alpha = "198.51.100.1"',
        'alpha = "198.51.100.1/24"',
        "link[0].endpoints.alpha",
        "198.51.100.1/24",
        "IPv4 or IPv6",
        "/24",
    ),
    "serial endpoint relative": _swap(
        'alpha = "/dev/ttyS0"',
        'alpha = "ttyS0"',
        "link[1].endpoints.alpha",
        '"ttyS0"',
        "serial port device path",
        '"ttyS0"',
    ),
    # unknown keys at every level
    "unknown top-level key": Broken(
        "colour = 1\n" + BASE,
        "colour",
        "colour = 1",
        "one of the keys cluster,",
        "'colour'",
    ),
    "unknown top-level table": _swap(
        "[policies]", "[extras]\n[policies]", "extras", "[extras]", "one of the keys", "'extras'"
    ),
    "unknown cluster key": _swap(
        'name = "db"',
        'name = "db"\nnmae = "x"',
        "cluster.nmae",
        "nmae",
        "name, secret_file",
        "'nmae'",
    ),
    "unknown node key": _swap(
        "priority = 200",
        "priority = 200\nweight = 1",
        "node[0].weight",
        "weight",
        "name, priority, address",
        "'weight'",
    ),
    "unknown link key": _swap(
        "port = 694", "port = 694\nmtu = 1500", "link[0].mtu", "mtu", "endpoints", "'mtu'"
    ),
    "unknown resource key": _swap(
        'kind = "postgres"',
        'kind = "postgres"\ntimeout = "7s"',
        "resource[1].timeout",
        'timeout = "7s"',
        "start_timeout",
        "'timeout'",
    ),
    "unknown arbitration key": _swap(
        'device = "/dev/sdc"',
        'device = "/dev/sdc"\nquorum = 2',
        "arbitration.quorum",
        "quorum",
        "mode, witness",
        "'quorum'",
    ),
    "unknown timers key": _swap(
        'lease = "20s"',
        'lease = "20s"\ndeadtime = "1s"',
        "timers.deadtime",
        "deadtime",
        "dead_time",
        "'deadtime'",
    ),
    "unknown policies key": _swap(
        "boot_alone = false",
        "boot_alone = false\nauto_failback = true",
        "policies.auto_failback",
        "auto_failback",
        "failback",
        "'auto_failback'",
    ),
    "key of another link kind": _swap(
        "baud = 9600",
        "baud = 9600\nport = 5",
        "link[1].port",
        "port = 5",
        "no port on a serial link",
        "the number 5",
    ),
    "offset on a udp link": _swap(
        "port = 694",
        "offset = 0",
        "link[0].offset",
        "offset = 0",
        "offset is for disk links",
        "the number 0",
    ),
    "key of another mode": _swap(
        'device = "/dev/sdc"',
        'device = "/dev/sdc"\nwitness = "q:1"',
        "arbitration.witness",
        "witness =",
        "no witness in disk mode",
        '"q:1"',
    ),
    # missing things
    "missing cluster": Broken(
        BASE.split("\n", 3)[3], "cluster", "", "a [cluster] table", "no [cluster] table"
    ),
    "missing cluster name": _swap(
        'name = "db"\n', "", "cluster.name", "[cluster]", "a name", "nothing (the key is missing)"
    ),
    "missing node name": _swap(
        'name = "beta"\n', "", "node[1].name", "[[node]]", "a name", "nothing", 2
    ),
    "missing link kind": _swap(
        'kind = "udp"\n', "", "link[0].kind", "[[link]]", '"udp", "serial", "disk"', "nothing"
    ),
    "missing endpoints": _swap(
        '[link.endpoints]\nalpha = "/dev/ttyS0"\nbeta = "/dev/ttyS1"\n',
        "",
        "link[1].endpoints",
        "[[link]]",
        "serial port device path",
        "none",
        2,
    ),
    "missing arbitration": _swap(
        DISK_ARBITRATION,
        "",
        "arbitration",
        "",
        'mode = "disk", "witness", "fence" or "none"',
        "no [arbitration] table",
    ),
    "missing mode": _swap(
        'mode = "disk"\n', "", "arbitration.mode", "[arbitration]", '"none"', "nothing"
    ),
    "fence without agent": Broken(
        with_arbitration(
            '[arbitration]\nmode = "fence"\n[[arbitration.fence]]\nip = "192.0.2.9"\n'
        ),
        "arbitration.fence[0].agent",
        "[[arbitration.fence]]",
        "fence agent",
        "nothing",
    ),
    "watchdog device without timeout": _swap(
        'watchdog_timeout = "5s"',
        'watchdog_device = "/dev/watchdog"',
        "arbitration.watchdog_timeout",
        "[arbitration]",
        "watchdog_timeout alongside",
        "none",
    ),
    # kinds and modes
    "unknown resource kind": _swap(
        'kind = "ip"',
        'kind = "vip"',
        "resource[0].kind",
        'kind = "vip"',
        '"ip", "volume", "alias", "service", "ocf", "postgres"',
        '"vip"',
    ),
    "unknown link kind": _swap(
        'kind = "udp"',
        'kind = "tcp"',
        "link[0].kind",
        'kind = "tcp"',
        '"udp", "serial", "disk"',
        '"tcp"',
    ),
    "unknown mode": _swap(
        'mode = "disk"',
        'mode = "quorum"',
        "arbitration.mode",
        'mode = "quorum"',
        '"none"',
        '"quorum"',
    ),
    "bad witness address": Broken(
        with_arbitration('[arbitration]\nmode = "witness"\nwitness = "q"\n'),
        "arbitration.witness",
        "witness =",
        "host:port",
        "'q'",
    ),
    # unparseable durations
    "duration without unit": _swap(
        'dead_time = "1s"',
        "dead_time = 1",
        "timers.dead_time",
        "dead_time = 1",
        "a duration with a unit",
        'without a unit (write "1s")',
    ),
    "duration misspelt": _swap(
        'start_timeout = "1m"',
        'start_timeout = "1 minute"',
        "resource[1].start_timeout",
        "1 minute",
        "a duration",
        '"1 minute"',
    ),
    "duration negative": _swap(
        'interval = "200ms"',
        'interval = "-200ms"',
        "timers.interval",
        '"-200ms"',
        "a duration",
        '"-200ms"',
    ),
    "duration zero": _swap(
        'release = "2s"',
        'release = "0ms"',
        "timers.release",
        "release =",
        "longer than zero",
        '"0ms"',
    ),
    "on_fail unknown": _swap(
        'start_timeout = "1m"',
        'start_timeout = "1m"\non_fail = "ignore"',
        "resource[1].on_fail",
        'on_fail = "ignore"',
        '"restart", "alarm"',
        '"ignore"',
    ),
    "duration a table": _swap(
        'lease = "20s"', "lease = { s = 20 }", "timers.lease", "lease =", "a duration", "a table"
    ),
}


@pytest.mark.parametrize("case", BROKEN.values(), ids=BROKEN.keys())
def test_broken_file_is_refused_with_its_location(case: Broken) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(case.text, "broken.toml")
    error = info.value
    line = line_with(case.text, case.line, case.occurrence) if case.line else 1
    assert (error.file, format_key(error.key), error.line) == ("broken.toml", case.key, line)
    assert case.expected in error.expected
    assert case.found in error.found
    assert (
        str(error)
        == f"broken.toml:{line}: {case.key}: expected {error.expected}, found {error.found}"
    )


def test_missing_arbitration_explains_the_choices_and_the_risk() -> None:
    with pytest.raises(ConfigError) as info:
        load_text(edit(BASE, DISK_ARBITRATION, ""))
    assert "split brain" in info.value.expected
    assert "makes both" in info.value.expected


@pytest.mark.parametrize(
    ("text", "line", "found"),
    [
        ('[cluster]\nname = "db"\nname = "x"\n', 3, "Cannot overwrite a value at column"),
        ("[cluster]\nname = \n", 2, "Invalid value at column"),
        ('[cluster]\nname = "db', 2, "Unterminated string"),
        ("[[node]]\n[node]\n", 2, "Cannot declare"),
    ],
)
def test_toml_syntax_error_names_its_line(text: str, line: int, found: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(text, "s.toml")
    assert info.value.line == line
    assert info.value.key == ()
    assert info.value.expected.startswith("valid TOML")
    assert found in info.value.found
    assert str(info.value).startswith(f"s.toml:{line}: (document): expected valid TOML")


def test_syntax_error_at_end_of_document() -> None:
    with pytest.raises(ConfigError) as info:
        load_text("a = [1,\n", "x.toml")
    assert (info.value.line, info.value.found) == (2, "Invalid value")


def test_syntax_message_without_a_position() -> None:
    # tomllib always gives one today; a message without it still yields a located error.
    problem = _syntax_problem("x.toml", "a = 1\nb = 2\n", "Something odd")
    assert (problem.line, problem.found) == (3, "Something odd")


def test_not_utf8_names_the_line() -> None:
    data = BASE.encode().replace(b'"db"', b'"d\xffb"')
    with pytest.raises(ConfigError) as info:
        load_bytes(data, "latin.toml")
    assert (info.value.line, info.value.expected) == (2, "UTF-8 text")
    assert "0xff" in info.value.found


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load(missing)
    assert info.value.line is None
    assert (
        str(info.value)
        == f"{missing}: (document): expected a readable file, found No such file or directory"
    )


def test_config_error_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one problem"):
        ConfigError([])


def test_a_resource_may_only_alarm_on_failure() -> None:
    text = edit(BASE, 'start_timeout = "1m"', 'start_timeout = "1m"\non_fail = "alarm"')
    assert load_text(text).resources[1].on_fail is OnFail.ALARM
