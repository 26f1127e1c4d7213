"""The rules between values (refused files) and the risks (warned about)."""

from __future__ import annotations

import pytest

from hotstandby.config import ConfigError, load_text, risks, violations
from hotstandby.config.budget import lease_slack, minimum_lease
from hotstandby.config.durations import parse_duration
from hotstandby.config.errors import format_key

from .config_samples import BASE, edit, line_with, with_arbitration

SECOND_NODE = '[[node]]\nname = "beta"\n'


def _refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(text, "r.toml")
    return info.value


def _keys(error: ConfigError) -> list[str]:
    return [format_key(p.key) for p in error.problems]


# -- structure ------------------------------------------------------------------------------


def test_one_node_is_refused() -> None:
    text = edit(BASE, SECOND_NODE, "")
    text = text.replace('beta = "198.51.100.2"\n', "").replace('beta = "/dev/ttyS1"\n', "")
    error = _refused(text)
    assert _keys(error) == ["node"]
    assert error.line == line_with(text, "[[node]]")
    assert "at least 2" in error.expected
    assert error.found == "1"


def test_no_node_at_all() -> None:
    text = BASE.replace('[[node]]\nname = "alpha"\npriority = 200\naddress = "192.0.2.11"\n', "")
    text = edit(text, SECOND_NODE, "")
    error = _refused(text)
    assert (error.key, error.line, error.found) == (("node",), 1, "0")
    # With no nodes, every endpoint names an unknown node.
    assert "link[0].endpoints.alpha" in _keys(error)


def test_missing_node_leaves_links_naming_it() -> None:
    error = _refused(edit(BASE, SECOND_NODE, '[[node]]\nname = "gamma"\n'))
    assert _keys(error) == [
        "link[0].endpoints",
        "link[0].endpoints.beta",
        "link[1].endpoints",
        "link[1].endpoints.beta",
    ]
    assert error.problems[0].found == "none for gamma"
    assert error.problems[1].expected == "a node name (alpha, gamma)"
    assert error.problems[1].line == line_with(BASE, 'beta = "198.51.100.2"')


@pytest.mark.parametrize(
    ("old", "new", "key", "occurrence"),
    [
        ('name = "beta"', 'name = "alpha"', "node[1].name", 2),
        ('name = "null-modem"', 'name = "private"', "link[1].name", 2),
        ('name = "postgres"', 'name = "vip"', "resource[1].name", 2),
    ],
)
def test_duplicate_names(old: str, new: str, key: str, occurrence: int) -> None:
    text = edit(BASE, old, new)
    error = _refused(text)
    assert _keys(error)[0] == key
    assert error.line == line_with(text, new, occurrence)
    assert "again" in error.found


def test_link_without_both_nodes() -> None:
    text = edit(BASE, 'beta = "/dev/ttyS1"\n', "")
    error = _refused(text)
    assert _keys(error) == ["link[1].endpoints"]
    assert error.line == line_with(text, "[link.endpoints]", 2)
    assert (error.expected, error.found) == (
        "an endpoint for every node (alpha, beta)",
        "none for beta",
    )


def test_link_naming_an_unknown_node() -> None:
    text = edit(BASE, 'beta = "/dev/ttyS1"', 'beta = "/dev/ttyS1"\ngamma = "/dev/ttyS2"')
    error = _refused(text)
    assert _keys(error) == ["link[1].endpoints.gamma"]
    assert error.line == line_with(text, "gamma")
    assert error.found == '"gamma"'


def test_no_link() -> None:
    text = BASE[: BASE.index("[[link]]")] + BASE[BASE.index("[[resource]]") :]
    error = _refused(text)
    assert _keys(error) == ["link"]
    assert error.line == 1


def test_udp_link_mixing_address_families() -> None:
    text = edit(BASE, 'beta = "198.51.100.2"', 'beta = "2001:db8::2"')
    error = _refused(text)
    assert _keys(error) == ["link[0].endpoints.beta"]
    assert "an IPv4 address like alpha's" in error.expected
    assert error.found == "an IPv6 address"


def test_empty_endpoints_table() -> None:
    text = edit(BASE, 'alpha = "198.51.100.1"\nbeta = "198.51.100.2"\n', "")
    error = _refused(text)
    assert _keys(error) == ["link[0].endpoints", "link[0].endpoints"]
    assert [p.found for p in error.problems] == ["none for alpha", "none for beta"]


def test_all_problems_are_reported_together() -> None:
    text = edit(BASE, 'name = "beta"', 'name = "alpha"')
    text = edit(text, 'dead_time = "1s"', 'dead_time = "500ms"')
    error = _refused(text)
    assert _keys(error)[0] == "node[1].name"
    assert "timers.dead_time" in _keys(error)
    assert str(error).count("\n") == len(error.problems) - 1


# -- arbitration ----------------------------------------------------------------------------


def test_witness_mode_without_witness() -> None:
    text = with_arbitration('[arbitration]\nmode = "witness"\nwatchdog_timeout = "5s"\n')
    error = _refused(text)
    assert _keys(error) == ["arbitration.witness"]
    assert error.line == line_with(text, "[arbitration]")
    assert "host:port" in error.expected


def test_disk_mode_without_device() -> None:
    error = _refused(edit(BASE, 'device = "/dev/sdc"\n', ""))
    assert _keys(error) == ["arbitration.device"]


def test_fence_mode_without_fence_method() -> None:
    error = _refused(with_arbitration('[arbitration]\nmode = "fence"\n'))
    assert _keys(error) == ["arbitration.fence"]
    assert "[[arbitration.fence]]" in error.expected


@pytest.mark.parametrize(
    "witness", ["witness.example.org:9000", "192.0.2.5:1", "[2001:db8::5]:65535"]
)
def test_witness_addresses(witness: str) -> None:
    arbitration = f'[arbitration]\nmode = "witness"\nwitness = "{witness}"\n'
    assert load_text(with_arbitration(arbitration)).arbitration.witness == witness


@pytest.mark.parametrize(
    "witness", ["q", "q:0", "q:65536", "q:x", "2001:db8::5:9000", "[192.0.2.5]:9", "-q:9", ":9"]
)
def test_bad_witness_addresses(witness: str) -> None:
    error = _refused(with_arbitration(f'[arbitration]\nmode = "witness"\nwitness = "{witness}"\n'))
    assert _keys(error) == ["arbitration.witness"]


# -- timers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ('interval = "200ms"', 'interval = "334ms"', "timers.dead_time", "at least 3 x interval"),
        ('warn_time = "600ms"', 'warn_time = "200ms"', "timers.warn_time", "more than interval"),
        ('warn_time = "600ms"', 'warn_time = "1s"', "timers.warn_time", "less than dead_time"),
        ('initial_dead = "30s"', 'initial_dead = "999ms"', "timers.initial_dead", "at least"),
        ("max_drift = 0.001", "max_drift = 0.06", "timers.max_drift", "from 0 to 0.05"),
        ("max_drift = 0.001", "max_drift = -0.001", "timers.max_drift", "from 0 to 0.05"),
        ('lease = "20s"', 'lease = "16s"', "timers.lease", "one lost renewal"),
    ],
)
def test_unsafe_timers(old: str, new: str, key: str, expected: str) -> None:
    text = edit(BASE, old, new)
    error = _refused(text)
    assert _keys(error) == [key]
    assert error.line == line_with(text, key.split(".")[1] + " =")
    assert expected in error.expected


@pytest.mark.parametrize(
    "edits",
    [
        [
            ('dead_time = "1s"', 'dead_time = "600ms"'),
            ('warn_time = "600ms"', 'warn_time = "400ms"'),
        ],
        [("max_drift = 0.001", "max_drift = 0")],
        [("max_drift = 0.001", "max_drift = 0.05"), ('lease = "20s"', 'lease = "25s"')],
        [('initial_dead = "30s"', 'initial_dead = "1s"')],
    ],
)
def test_limits_are_inclusive(edits: list[tuple[str, str]]) -> None:
    text = BASE
    for old, new in edits:
        text = edit(text, old, new)
    load_text(text)


def _file_timers(text: str) -> dict[str, float]:
    """The BASE timers as the test reads them, without the loader."""
    out: dict[str, float] = {}
    for line in text[text.index("[timers]") :].splitlines()[1:8]:
        key, value = (part.strip() for part in line.split("="))
        out[key] = parse_duration(value.strip('"'))
    return out


def test_lease_rule_boundary_matches_the_formula() -> None:
    t = _file_timers(BASE)
    watchdog = 5.0
    rho = 0.001
    release_bound = t["release"] + watchdog
    # Three intervals: an echo of our heartbeats may trail a one-way cut by that much.
    margin = t["dead_time"] * (1 + 2 * rho) + 3 * t["interval"] + release_bound
    # Lease left at the second renewal attempt: L(1 - 2 rho) - 2 L / 4 >= margin.
    expected_minimum = margin / (1 - 2 * rho - 0.5)
    cluster = load_text(BASE)
    assert minimum_lease(cluster) == pytest.approx(expected_minimum)
    assert lease_slack(cluster) == pytest.approx(t["lease"] * (0.5 - 2 * rho) - margin)
    just_enough = edit(BASE, 'lease = "20s"', f'lease = "{expected_minimum * 1000 + 0.5:.0f}ms"')
    load_text(just_enough)
    too_short = edit(BASE, 'lease = "20s"', f'lease = "{expected_minimum * 1000 - 1:.0f}ms"')
    assert _keys(_refused(too_short)) == ["timers.lease"]


def test_lease_rule_only_for_leased_modes() -> None:
    text = edit(BASE, 'lease = "20s"', 'lease = "1s"')
    fence = '[arbitration]\nmode = "fence"\n[[arbitration.fence]]\nagent = "fence_ipmilan"\n'
    assert load_text(with_arbitration(fence, text)).timers.lease == 1.0
    witness = '[arbitration]\nmode = "witness"\nwitness = "q:9"\n'
    assert _keys(_refused(with_arbitration(witness, text))) == ["timers.lease"]


def test_watchdog_lengthens_the_minimum_lease() -> None:
    with_dog = load_text(BASE)
    without = load_text(edit(BASE, 'watchdog_timeout = "5s"', 'watchdog_timeout = "0s"'))
    assert minimum_lease(with_dog) - minimum_lease(without) == pytest.approx(5.0 / (0.5 - 0.002))


# -- risks ----------------------------------------------------------------------------------


def _risk_keys(text: str) -> list[str]:
    return [format_key(r.key) for r in risks(load_text(text))]


def test_base_has_no_risk() -> None:
    assert _risk_keys(BASE) == []
    assert violations(load_text(BASE)) == ()


def test_heartbeat_only_is_warned_about_plainly() -> None:
    cluster = load_text(with_arbitration('[arbitration]\nmode = "none"\n'))
    (risk,) = risks(cluster)
    assert format_key(risk.key) == "arbitration.mode"
    assert "a cut between the nodes makes both active" in risk.message
    assert "split brain" in risk.message


@pytest.mark.parametrize("mode", ["disk", "witness"])
def test_leased_modes_without_watchdog(mode: str) -> None:
    extra = 'device = "/dev/sdc"' if mode == "disk" else 'witness = "q:9"'
    text = with_arbitration(f'[arbitration]\nmode = "{mode}"\n{extra}\n')
    text = edit(text, 'lease = "20s"', 'lease = "10s"')
    (risk,) = risks(load_text(text))
    assert format_key(risk.key) == "arbitration.watchdog_timeout"
    assert "frozen or crashed agent" in risk.message


def test_fence_delay_shorter_than_detection_skew() -> None:
    fence = (
        '[arbitration]\nmode = "fence"\nfence_delay = "{}"\n[[arbitration.fence]]\nagent = "f"\n'
    )
    assert _risk_keys(with_arbitration(fence.format("2s"))) == []
    assert _risk_keys(with_arbitration(fence.format("200ms"))) == ["arbitration.fence_delay"]


def test_single_link() -> None:
    text = BASE[: BASE.index('[[link]]\nname = "null-modem"')] + BASE[BASE.index("[[resource]]") :]
    (risk,) = risks(load_text(text))
    assert (format_key(risk.key), "single heartbeat link" in risk.message) == ("link", True)


def test_links_all_of_one_kind() -> None:
    text = edit(BASE, 'kind = "serial"\nbaud = 9600', 'kind = "udp"')
    text = edit(text, 'alpha = "/dev/ttyS0"', 'alpha = "192.0.2.1"')
    text = edit(text, 'beta = "/dev/ttyS1"', 'beta = "192.0.2.2"')
    (risk,) = risks(load_text(text))
    assert format_key(risk.key) == "link"
    assert "every link is udp" in risk.message
