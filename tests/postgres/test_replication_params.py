"""The postgres resource's replicated mode: parameters, check's errors, and the pure helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent.resources import ParamError, validate
from hotstandby.agent.resources.pg_replication import (
    conninfo_values,
    lsn_int,
    slot_name,
    standby_names_for,
    standby_names_in,
)
from hotstandby.agent.resources.pg_rewind import parse_rewind
from hotstandby.agent.resources.postgres import host_risks as postgres_host_risks
from hotstandby.agent.resources.postgres import parse_params
from hotstandby.cli import main
from hotstandby.config import load_text
from hotstandby.core.cluster import Resource, ResourceKind, frozen_map

EXAMPLE = (
    Path(__file__).resolve().parents[2]
    / "src"
    / "hotstandby"
    / "examples"
    / "classic-database.toml"
)
ADDRESSES = {"alpha": "198.51.100.1", "beta": "198.51.100.2"}
NODES = ("alpha", "beta")


def resource(**params: Any) -> Resource:
    """A replicated postgres resource with these params."""
    raw = {
        "mode": "replicated",
        "pgdata": "/srv/pg/15/main",
        "replication_address": ADDRESSES,
        **params,
    }
    return Resource("db", ResourceKind.POSTGRES, frozen_map(raw), stop_timeout=60.0)


def test_defaults() -> None:
    p = parse_params(resource(), "alpha")
    r = p.replication
    assert r is not None and p.mode == "replicated"
    assert p.stop_modes == ("fast", "immediate")
    assert p.server_log == "/srv/pg/15/main-hotstandby-server.log"  # outside pgdata
    assert r.node == "alpha" and r.others == ("beta",)
    assert r.ports == {"alpha": 5432, "beta": 5432} and r.user == "postgres"
    assert r.slots and r.passfile == "" and r.follow_timeout == 600.0
    assert r.diverged_dir == "/srv/pg/15"
    assert r.conninfo("beta") == (
        "host=198.51.100.2 port=5432 user=postgres application_name=alpha"
    )


def test_per_node_values_and_every_key() -> None:
    raw = {
        "pgdata": {"alpha": "/srv/a/main", "beta": "/srv/b/main"},
        "port": {"alpha": 5433, "beta": 5434},
        "socket_dir": {"alpha": "/run/a", "beta": "/run/b"},
        "log": {"alpha": "/var/log/a.log", "beta": "/var/log/b.log"},
        "replication_user": "replicator",
        "replication_passfile": "/etc/hotstandby/pgpass",
        "replication_slots": False,
        "follow_timeout": "2m",
        "diverged_dir": "/srv/kept",
    }
    a, b = parse_params(resource(**raw), "alpha"), parse_params(resource(**raw), "beta")
    assert (a.pgdata, a.port, a.socket_dir, a.server_log) == (
        "/srv/a/main", 5433, "/run/a", "/var/log/a.log",
    )  # fmt: skip
    assert (b.pgdata, b.port, b.socket_dir, b.server_log) == (
        "/srv/b/main", 5434, "/run/b", "/var/log/b.log",
    )  # fmt: skip
    assert a.replication is not None and b.replication is not None
    assert a.replication.ports == {"alpha": 5433, "beta": 5434}
    assert a.replication.conninfo("beta") == (
        "host=198.51.100.2 port=5434 user=replicator application_name=alpha "
        "passfile=/etc/hotstandby/pgpass"
    )
    assert not a.replication.slots and a.replication.follow_timeout == 120.0
    assert b.replication.diverged_dir == "/srv/kept"


@pytest.mark.parametrize(
    ("params", "node", "key", "text"),
    [
        ({"replication_address": None}, "alpha", "replication_address", "is required"),
        ({"replication_address": "198.51.100.1"}, "alpha", "replication_address", "a table"),
        ({"replication_address": {"alpha": "x", "beta": "198.51.100.2"}}, "alpha",
         "replication_address", "(at replication_address.alpha)"),
        ({"replication_address": {"Alpha": "198.51.100.1"}}, "alpha",
         "replication_address", "a-z, 0-9"),
        ({}, "gamma", "replication_address", "no entry for node 'gamma'"),
        ({"replication_address": {"node_1": "198.51.100.1", "node-1": "198.51.100.2"}},
         "node_1", "replication_address", "share a replication slot"),
        ({"pgdata": {"alpha": "/srv/a"}}, "beta", "pgdata", "no entry for node 'beta'"),
        ({"pgdata": {"alpha": "srv", "beta": "/srv/b"}}, "alpha", "pgdata",
         "(at pgdata.alpha)"),
        ({"port": {"alpha": 5432, "beta": 0}}, "alpha", "port", "(at port.beta)"),
        ({"replication_slots": "yes"}, "alpha", "replication_slots", "true or false"),
        ({"follow_timeout": "0s"}, "alpha", "follow_timeout", "above 0"),
        ({"replication_passfile": "pgpass"}, "alpha", "replication_passfile", "absolute"),
        ({"diverged_dir": "kept"}, "alpha", "diverged_dir", "absolute"),
        ({"mode": "shared-disk"}, "alpha", "replication_address", "replicated\" only"),
        ({"settings": {"synchronous_standby_names": "*"}}, "alpha", "settings",
         "set by hotstandby in replicated mode"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(params: dict[str, Any], node: str, key: str, text: str) -> None:
    raw = {k: v for k, v in params.items() if v is not None}
    res = resource(**raw)
    if params.get("replication_address", "") is None:
        res = Resource("db", ResourceKind.POSTGRES, frozen_map(
            {k: v for k, v in res.params.items() if k != "replication_address"}
        ), stop_timeout=60.0)  # fmt: skip
    with pytest.raises(ParamError) as caught:
        parse_params(res, node)
    assert caught.value.key == key and text in str(caught.value), str(caught.value)


def test_node_tables_must_name_the_cluster_nodes_only() -> None:
    extra = resource(pgdata={"alpha": "/a", "beta": "/b", "gamma": "/c"})
    with pytest.raises(ParamError, match="'gamma' is not a node of the cluster"):
        parse_params(extra, "alpha", NODES)
    parse_params(extra, "alpha")  # without the cluster, only alpha's entry is looked at
    short = resource(replication_address={"alpha": "198.51.100.1"})
    with pytest.raises(ParamError, match="no entry for node 'beta'"):
        parse_params(short, "alpha", NODES)


def _replicated_example(params: str) -> str:
    text = EXAMPLE.read_text()
    old = 'mode = "shared-disk"                        # or "replicated": each node its own copy'
    assert text.count(old) == 1
    return text.replace(old, f'mode = "replicated"\n{params}')


def test_check_names_the_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _replicated_example('replication_address = { alpha = "198.51.100.1", beta = '
                               '"198.51.100.2" }')  # fmt: skip
    assert validate(load_text(good, "good.toml")) == []
    bad = _replicated_example('replication_address = { alpha = "198.51.100.1", gamma = '
                              '"198.51.100.2" }')  # fmt: skip
    path = tmp_path / "cluster.toml"
    path.write_text(bad)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    line = next(n for n, text in enumerate(bad.splitlines(), 1) if "replication_address" in text)
    assert f"{path}:{line}: resource 'postgres': key 'replication_address'" in err, err


def test_lsn_and_names() -> None:
    assert lsn_int("16/B374D848") == 0x16 << 32 | 0xB374D848
    assert lsn_int("0/0") == 0
    with pytest.raises(ValueError, match="not a WAL position"):
        lsn_int("16-B3")
    assert standby_names_for(("beta", "gamma-2")) == 'FIRST 2 ("beta", "gamma-2")'
    assert standby_names_for(()) == ""
    for nodes in [("beta",), ("beta", "gamma-2"), ()]:
        assert standby_names_in(standby_names_for(nodes)) == nodes
    assert standby_names_in('ANY 1 (a, "b")') == ("a", "b")
    assert standby_names_in("a, b") == ("a", "b")
    assert slot_name("node-1") == "hotstandby_node_1"
    assert conninfo_values("host=127.0.0.1 port=5 passfile='/a b/c\\'d'") == {
        "host": "127.0.0.1", "port": "5", "passfile": "/a b/c'd",
    }  # fmt: skip


def test_rewind_output_read() -> None:
    out = (
        "pg_rewind: servers diverged at WAL location 0/30000D8 on timeline 1\n"
        "pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1\n"
        "pg_rewind: Done!"
    )
    check = parse_rewind(out)
    assert check.needed and check.diverged_at == "0/30000D8" and check.timeline == 1
    same = parse_rewind(
        "pg_rewind: source and target cluster are on the same timeline\n"
        "pg_rewind: no rewind required"
    )
    assert not same.needed and same.diverged_at == ""


def test_check_warns_of_missing_replication_programs(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("postgres", "pg_ctl"):
        (bindir / name).write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 15.8'\n")
        (bindir / name).chmod(0o755)
    found = postgres_host_risks(resource(bindir=str(bindir), user="root-free-user"), "alpha")
    texts = [m for k, m in found if k == "bindir"]
    assert [t.split()[0] for t in texts] == [
        str(bindir / "pg_rewind"),
        str(bindir / "pg_basebackup"),
    ]
