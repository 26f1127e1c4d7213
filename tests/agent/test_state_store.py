"""The state file: round trip, first start, corrupt files set aside, atomic saves."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from hotstandby.agent.state_store import StateStore, StoredState


def test_a_saved_state_reads_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    state = StoredState(epoch=12, active=True, boots=3)
    store.save(state)
    loaded = store.load()
    assert loaded.state == state
    assert loaded.problem is None


def test_a_missing_file_is_a_first_start(tmp_path: Path) -> None:
    loaded = StateStore(tmp_path / "never").load()
    assert loaded.state == StoredState()
    assert loaded.problem is None


def test_an_old_file_without_a_boot_counter_is_read(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text(json.dumps({"format": 1, "epoch": 4, "active": False}))
    loaded = store.load()
    assert loaded.state == StoredState(epoch=4, active=False, boots=0)
    assert loaded.problem is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "unknown format"),
        ('{"format": 2, "epoch": 1, "active": true}', "unknown format"),
        ('{"format": 1, "active": true}', "'epoch'"),
        ('{"format": 1, "epoch": "3", "active": true}', "bad field types"),
        ('{"format": 1, "epoch": true, "active": true}', "bad field types"),
        ('{"format": 1, "epoch": -1, "active": true}', "bad field types"),
        ('{"format": 1, "epoch": 3, "active": 1}', "bad field types"),
        ('{"format": 1, "epoch": 3, "active": true, "boots": -2}', "bad boot counter"),
        ('{"format": 1, "epoch": 3, "active": true, "boots": 1.5}', "bad boot counter"),
        ("\xff\xfe", ""),
    ],
)
def test_a_corrupt_file_is_set_aside_and_the_state_starts_from_zero(
    tmp_path: Path, body: str, why: str
) -> None:
    store = StateStore(tmp_path)
    store.path.write_bytes(body.encode("latin-1"))
    loaded = store.load()
    assert loaded.state == StoredState()
    assert loaded.problem is not None
    assert loaded.problem.startswith(f"{store.path}: corrupt (")
    assert why in loaded.problem
    assert "kept as state.json.corrupt.0" in loaded.problem
    assert "starting from epoch 0" in loaded.problem
    assert not store.path.exists()
    assert (tmp_path / "state.json.corrupt.0").read_bytes() == body.encode("latin-1")


def test_set_aside_files_are_numbered_and_never_overwritten(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for n in range(3):
        store.path.write_text(f"garbage {n}")
        loaded = store.load()
        assert loaded.problem is not None and f"corrupt.{n}" in loaded.problem
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == [f"state.json.corrupt.{n}" for n in range(3)]
    assert (tmp_path / "state.json.corrupt.1").read_text() == "garbage 1"


def test_an_unreadable_file_is_reported_not_trusted(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.mkdir()  # reading a directory fails with an OSError other than "missing"
    loaded = store.load()
    assert loaded.state == StoredState()
    assert loaded.problem is not None
    assert loaded.problem.startswith(f"{store.path}: cannot read: ")


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "state"
    store = StateStore(directory)
    store.save(StoredState(epoch=1))
    store.save(StoredState(epoch=2, active=True))
    assert sorted(p.name for p in directory.iterdir()) == ["state.json"]  # no .tmp left
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    data = json.loads(store.path.read_text())
    assert data == {"format": 1, "epoch": 2, "active": True, "boots": 0}


def test_save_replaces_by_rename(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(StoredState(epoch=1))
    before = os.stat(store.path).st_ino
    store.save(StoredState(epoch=2))
    # A new inode: the old file was never rewritten in place.
    assert os.stat(store.path).st_ino != before


def test_the_boot_counter_grows_with_every_start(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for expected in (1, 2, 3):
        state = store.load().state
        store.save(StoredState(state.epoch, state.active, state.boots + 1))
        assert store.load().state.boots == expected
