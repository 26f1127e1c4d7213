"""The secret file: strict checks with errors naming the path, and an atomic 0600 keygen."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hotstandby.wire import keys
from hotstandby.wire.keys import SecretError, load_secret, write_new_secret


def make(path: Path, content: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(content)
    path.chmod(mode)
    return path


def problem(path: Path) -> SecretError:
    with pytest.raises(SecretError) as info:
        load_secret(path)
    assert str(path) in str(info.value)  # every error names the file
    assert info.value.path == str(path)
    return info.value


def test_load_strips_trailing_whitespace(tmp_path: Path) -> None:
    path = make(tmp_path / "secret", b"k" * 40 + b"\r\n \n")
    assert load_secret(path) == b"k" * 40
    assert load_secret(str(path)) == b"k" * 40


def test_missing(tmp_path: Path) -> None:
    assert problem(tmp_path / "nope").problem == "missing"


def test_not_a_regular_file(tmp_path: Path) -> None:
    assert problem(tmp_path).problem == "not_regular"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    assert problem(fifo).problem == "not_regular"  # and opening it did not hang


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o644])
def test_group_or_other_bits(tmp_path: Path, mode: int) -> None:
    error = problem(make(tmp_path / "secret", b"k" * 40, mode))
    assert error.problem == "bad_permissions"
    assert f"{mode:04o}" in str(error)


def test_too_short_and_too_long(tmp_path: Path) -> None:
    assert problem(make(tmp_path / "short", b"k" * 31 + b"\n")).problem == "too_short"
    assert load_secret(make(tmp_path / "exact", b"k" * 32)) == b"k" * 32
    assert problem(make(tmp_path / "long", b"k" * 5000)).problem == "too_long"


def test_unopenable(tmp_path: Path) -> None:
    afile = make(tmp_path / "file", b"k" * 40)
    assert problem(afile / "below").problem == "unreadable"  # ENOTDIR


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_foreign_owner(tmp_path: Path) -> None:
    path = make(tmp_path / "secret", b"k" * 40)
    os.chown(path, 65534, 65534)
    assert problem(path).problem == "bad_owner"


def test_write_new_secret(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even with no umask the file must come out 0600
    try:
        path = tmp_path / "secret"
        write_new_secret(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = load_secret(path)
    assert len(secret) == 2 * keys.NEW_SECRET_BYTES
    int(secret, 16)  # hex text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]  # no temp file left


def test_write_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_new_secret(path)
    first = load_secret(path)
    with pytest.raises(SecretError) as info:
        write_new_secret(path)
    assert info.value.problem == "exists"
    assert load_secret(path) == first
    write_new_secret(path, overwrite=True)
    assert load_secret(path) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


def test_write_loses_a_race_without_clobbering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    # Another keygen creates the file between our existence check and our link().
    real_link = os.link

    def racing_link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        make(path, b"theirs" * 10)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(SecretError) as info:
        write_new_secret(path)
    assert info.value.problem == "exists"
    assert path.read_bytes() == b"theirs" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SecretError) as info:
        write_new_secret(tmp_path / "no" / "secret")
    assert info.value.problem == "cannot_write"
    assert str(tmp_path / "no" / "secret") in str(info.value)
