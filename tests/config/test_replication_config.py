"""The [replication] table: defaults, shapes refused with their line, rules between tables."""

from __future__ import annotations

import pytest

from hotstandby.config import ConfigError, load_text
from hotstandby.config.budget import evidence_time
from hotstandby.config.errors import format_key
from hotstandby.core.cluster import OnReplicaLost

from .config_samples import BASE, edit, line_with

# The sample's postgres resource, made a replicated one.
REPLICATED = edit(
    BASE,
    'monitor_interval = "2s"\n',
    'monitor_interval = "2s"\n[resource.params]\nmode = "replicated"\n',
)


def with_table(body: str, text: str = REPLICATED) -> str:
    """The sample with a [replication] table of this body."""
    return text + "\n[replication]\n" + body


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_text(text, "r.toml")
    return info.value


def test_no_table_means_no_replicated_data() -> None:
    assert load_text(BASE).replication is None


def test_defaults() -> None:
    rules = load_text(with_table('resource = "postgres"\ndegrade_after = "1m"\n')).replication
    assert rules is not None
    assert (rules.resource, rules.synchronous, rules.on_replica_lost) == (
        "postgres",
        True,
        OnReplicaLost.DEGRADE,
    )
    assert rules.degrade_after == 60.0 and rules.max_lag == 16 << 20
    assert rules.follow_interval == 2.0


def test_every_key() -> None:
    text = with_table(
        'resource = "postgres"\nsynchronous = false\non_replica_lost = "wait"\n'
        'degrade_after = "2m"\nmax_lag = -1\nfollow_interval = "500ms"\n'
    )
    rules = load_text(text).replication
    assert rules is not None
    assert not rules.synchronous and rules.on_replica_lost is OnReplicaLost.WAIT
    assert (rules.degrade_after, rules.max_lag, rules.follow_interval) == (120.0, -1, 0.5)


@pytest.mark.parametrize(
    ("body", "key", "line", "expected"),
    [
        ('resource = "postgres"\nsynchronous = "yes"\n', "synchronous", "synchronous", "true"),
        ('resource = "postgres"\non_replica_lost = "panic"\n', "on_replica_lost", "panic",
         '"wait"'),
        ('resource = "postgres"\nmax_lag = -2\n', "max_lag", "max_lag", "from -1"),
        ('resource = "postgres"\nfollow_interval = "0s"\n', "follow_interval", "follow_interval",
         "longer than zero"),
        ('resource = "postgres"\nlag = 1\n', "lag", "lag = 1", "one of"),
        ("synchronous = true\n", "resource", "", "a name"),
    ],
)  # fmt: skip
def test_bad_shapes_name_their_line(body: str, key: str, line: str, expected: str) -> None:
    text = with_table(body)
    error = refused(text)
    assert format_key(error.key) == f"replication.{key}"
    if line:
        assert error.line == line_with(text, line)
    assert expected in error.expected


def test_the_resource_must_exist_and_be_replicated_postgres() -> None:
    error = refused(with_table('resource = "nothing"\ndegrade_after = "1m"\n'))
    assert format_key(error.key) == "replication.resource"
    assert "vip, postgres" in error.expected
    error = refused(with_table('resource = "vip"\ndegrade_after = "1m"\n'))
    assert 'mode = "replicated"' in error.expected and "ip resource" in error.found
    error = refused(with_table('resource = "postgres"\ndegrade_after = "1m"\n', BASE))
    assert "shared-disk mode" in error.found


def test_degrade_after_must_outlast_the_evidence_time() -> None:
    text = with_table('resource = "postgres"\ndegrade_after = "10s"\n')
    error = refused(text)
    assert format_key(error.key) == "replication.degrade_after"
    assert error.line == line_with(text, "degrade_after")
    evidence = evidence_time(load_text(with_table('resource = "postgres"\ndegrade_after = "1h"\n')))
    assert f"({evidence:g}s" in error.expected and evidence > 10
    # Asynchronous replication never waits, so no word of the replica's can lapse.
    assert load_text(
        with_table('resource = "postgres"\nsynchronous = false\ndegrade_after = "10s"\n')
    ).replication
