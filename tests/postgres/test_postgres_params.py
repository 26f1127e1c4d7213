"""The postgres resource's parameters: defaults, every bad value named, mode refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent.resources import KINDS, ParamError, host_risks
from hotstandby.agent.resources.child import user_exists
from hotstandby.agent.resources.postgres import (
    DEFAULT_BINDIR,
    PostgresParams,
    parse_params,
    recovery_in,
)
from hotstandby.agent.resources.postgres import host_risks as postgres_host_risks
from hotstandby.config import load_text
from hotstandby.core.cluster import Cluster, Resource, ResourceKind, frozen_map

EXAMPLE = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "hotstandby"
    / "examples"
    / "classic-database.toml"
)


def resource(stop_timeout: float = 60.0, monitor_timeout: float = 10.0, **params: Any) -> Resource:
    """A postgres resource with these params."""
    raw = {"pgdata": "/srv/pg/15/main", **params}
    return Resource(
        "db", ResourceKind.POSTGRES, frozen_map(raw),
        stop_timeout=stop_timeout, monitor_timeout=monitor_timeout,
    )  # fmt: skip


def test_defaults() -> None:
    p = parse_params(resource(), "alpha")
    assert p == PostgresParams(pgdata="/srv/pg/15/main")
    assert p.mode == "shared-disk" and p.port == 5432 and p.user == "postgres"
    assert p.stop_modes == ("smart", "fast", "immediate")
    assert p.server_log == "/srv/pg/15/main/hotstandby-server.log"


def test_every_key_read() -> None:
    p = parse_params(
        resource(
            mode="shared-disk", bindir="/opt/pg/bin", port=5433, user="pg",
            listen_addresses="192.0.2.10", socket_dir="/run/pg", settings={"fsync": True},
            log="/var/log/pg.log", stop_modes=["fast", "immediate"], fast_timeout="2s",
            immediate_timeout=1, database="app", dbuser="mon", monitor_query="SELECT now()",
            connect_timeout="1s", query_timeout="500ms",
        ),
        "beta",
    )  # fmt: skip
    assert p.bindir == "/opt/pg/bin" and p.port == 5433 and p.user == "pg"
    assert p.settings == {"fsync": "true"}
    assert p.stop_modes == ("fast", "immediate") and p.stop_limits["fast"] == 2.0
    assert p.connect_timeout == 1.0 and p.query_timeout == 0.5
    assert p.server_log == "/var/log/pg.log"


@pytest.mark.parametrize(
    ("params", "key", "text"),
    [
        ({"mode": "replicated"}, "replication_address", "is required"),
        ({"mode": "mirror"}, "mode", "expected"),
        ({"pgdata": "relative"}, "pgdata", "absolute"),
        ({"pgdata": "/srv/pg/"}, "pgdata", "trailing slash"),
        ({"port": 0}, "port", "from 1 to 65535"),
        ({"user": "root"}, "user", "refuses to run as root"),
        ({"stop_modes": ["fast", "smart", "immediate"]}, "stop_modes", "in the order"),
        ({"stop_modes": ["smart", "fast"]}, "stop_modes", "ending with"),
        ({"stop_modes": ["slow", "immediate"]}, "stop_modes", "in the order"),
        ({"smart_timeout": "50s"}, "smart_timeout", "shorter than the resource's stop_timeout"),
        ({"connect_timeout": "9s"}, "connect_timeout", "monitor_timeout"),
        ({"settings": {"Bad-Name": 1}}, "settings", "setting name"),
        ({"colour": "blue"}, "colour", "unknown"),
    ],
)
def test_bad_values_name_the_key(params: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_params(resource(**params), "alpha")
    assert caught.value.key == key and text in str(caught.value), str(caught.value)
    assert "resource 'db'" in str(caught.value)


def test_pgdata_is_required() -> None:
    bare = Resource("db", ResourceKind.POSTGRES, frozen_map({}))
    with pytest.raises(ParamError, match="'pgdata' is required"):
        parse_params(bare, "alpha")


def test_registered() -> None:
    assert KINDS[ResourceKind.POSTGRES].parse(resource(), "alpha") == parse_params(
        resource(), "alpha"
    )


def test_recovery_read_from_the_log() -> None:
    log = (
        "LOG:  database system was interrupted; last known up at 2026-12-01 15:00:00 UTC\n"
        "LOG:  redo starts at 0/1500000\n"
        "LOG:  redo done at 0/1A00000 system usage: CPU: user: 0.01 s, system: 0.02 s, "
        "elapsed: 0.37 s\n"
    )
    assert recovery_in(log) == (True, 0.37)
    assert recovery_in("LOG:  database system is ready to accept connections\n") == (False, None)
    not_required = "LOG:  database system was not properly shut down\nLOG:  redo is not required\n"
    assert recovery_in(not_required) == (True, 0.0)


def _example(pgdata: str | None = None) -> Cluster:
    text = EXAMPLE.read_text()
    if pgdata is not None:
        text = text.replace('pgdata = "/srv/postgresql/15/main"', f'pgdata = "{pgdata}"')
    return load_text(text, str(EXAMPLE))


def test_check_warns_when_the_data_is_not_on_a_volume_before_it() -> None:
    cluster = _example("/var/lib/postgresql/15/main")
    found = [(key, msg) for r, key, msg in host_risks(cluster, "alpha") if r.name == "postgres"]
    assert ("pgdata", next(m for k, m in found if k == "pgdata")) in found
    assert any("not on the mountpoint of a volume resource" in m for _, m in found), found


def test_check_finds_the_example_sound_where_postgresql_15_is_installed() -> None:
    if not os.access(f"{DEFAULT_BINDIR}/postgres", os.X_OK) or not user_exists("postgres"):
        pytest.skip("PostgreSQL 15 is not installed here")
    found = [(key, msg) for r, key, msg in host_risks(_example(), "alpha") if r.name == "postgres"]
    assert found == []
    bad = Resource(
        "db", ResourceKind.POSTGRES, frozen_map({"pgdata": "/srv/pg", "bindir": "/nonexistent"})
    )
    assert [k for k, _ in postgres_host_risks(bad, "alpha")] == ["bindir", "bindir"]


def test_psycopg_loads_only_with_a_postgres_resource() -> None:
    code = (
        "import sys, hotstandby.agent.resources, hotstandby.agent.loop; "
        "print('psycopg' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
