"""`hotstandby witness`: its errors before it serves anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotstandby.cli import main
from hotstandby.wire.keys import write_new_secret

CLUSTER = """\
[cluster]
name = "hwi"
secret_file = "SECRET"
[[node]]
name = "alpha"
[[node]]
name = "beta"
[[link]]
name = "net"
kind = "udp"
[link.endpoints]
alpha = "192.0.2.1"
beta = "192.0.2.2"
[arbitration]
mode = "witness"
witness = "127.0.0.1:7788"
[timers]
lease = "3s"
release = "500ms"
"""


def cluster_text(folder: Path) -> str:
    """The sample cluster file with its secret in `folder`."""
    return CLUSTER.replace("SECRET", str(folder / "secret"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["witness", *argv])
    return code, capsys.readouterr().err


def test_a_missing_secret_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(cluster_text(tmp_path))
    code, err = run(capsys, "-c", str(tmp_path / "c.toml"), "--state-dir", str(tmp_path))
    assert code == 2 and f"secret file {tmp_path / 'secret'}: does not exist" in err


def test_a_bad_listen_address_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(cluster_text(tmp_path))
    write_new_secret(tmp_path / "secret")
    argv = ["-c", str(tmp_path / "c.toml"), "--state-dir", str(tmp_path), "--listen", "nowhere"]
    code, err = run(capsys, *argv)
    assert code == 2 and "--listen: expected ADDR:PORT, found 'nowhere'" in err


def test_a_state_file_of_another_cluster_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "c.toml").write_text(cluster_text(tmp_path))
    write_new_secret(tmp_path / "secret")
    (tmp_path / "hwi").mkdir()
    (tmp_path / "hwi" / "witness.json").write_text('{"format": 1, "cluster": "other"}')
    code, err = run(capsys, "-c", str(tmp_path / "c.toml"), "--state-dir", str(tmp_path))
    assert code == 2 and "written for cluster 'other', not 'hwi'" in err


def test_no_witness_address_and_no_listen(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = cluster_text(tmp_path).replace(
        'mode = "witness"\nwitness = "127.0.0.1:7788"', 'mode = "none"'
    )
    (tmp_path / "c.toml").write_text(text)
    code, err = run(capsys, "-c", str(tmp_path / "c.toml"), "--state-dir", str(tmp_path))
    assert code == 2 and "no [arbitration] witness; use --listen" in err
