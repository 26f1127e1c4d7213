"""Everything a lab makes is gone after it ends: normally, on an exception, after a crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hotstandby.lab import Lab, cleanup_leftovers
from hotstandby.lab.netns import list_namespaces
from hotstandby.lab.procs import process_state

pytestmark = pytest.mark.lab

LAB_IFNAMES = ("lan0", "priv0", "br0", "br1", "p-", "q-")


def _root_ifnames() -> set[str]:
    out = subprocess.run(
        ["ip", "-j", "link", "show"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return {str(link["ifname"]) for link in json.loads(out)}


def _loop_backings() -> str:
    return subprocess.run(
        ["losetup", "--list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout


def _snapshot(lab: Lab) -> dict[str, object]:
    assert lab.serial is not None and lab.disk is not None
    return {
        "namespaces": lab.namespaces,
        "socat": lab.serial.pid,
        "loops": list(lab.disk.devices.values()),
        "backing": str(lab.disk.backing),
        "workdir": lab.workdir,
    }


def _assert_gone(snap: dict[str, object], ifnames_before: set[str]) -> None:
    namespaces = snap["namespaces"]
    assert isinstance(namespaces, list)
    assert not set(namespaces) & set(list_namespaces())
    socat = snap["socat"]
    assert isinstance(socat, int)
    assert process_state(socat) in (None, "Z")
    assert str(snap["backing"]) not in _loop_backings()
    assert not Path(str(snap["workdir"])).exists()
    new = _root_ifnames() - ifnames_before
    assert not [n for n in new if n.startswith(LAB_IFNAMES)], new


def test_everything_is_removed_after_the_lab(lab_required: None) -> None:
    before = _root_ifnames()
    with Lab("tlab") as lab:
        snap = _snapshot(lab)
        lab.spawn("a", ["sleep", "600"])
        assert set(lab.namespaces) <= set(list_namespaces())
        assert str(snap["backing"]) in _loop_backings()
    _assert_gone(snap, before)


def test_everything_is_removed_after_an_exception(lab_required: None) -> None:
    before = _root_ifnames()
    snap: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="boom"), Lab("tlab") as lab:
        snap = _snapshot(lab)
        lab.power_loss("b")  # a lab in a faulty state must clean up as well
        raise RuntimeError("boom")
    _assert_gone(snap, before)


CRASHING_RUN = """
import json, os, sys
from hotstandby.lab import Lab
lab = Lab("tlabcrash")
lab.start()
lab.spawn("a", ["sleep", "600"])
print(json.dumps({"namespaces": lab.namespaces, "socat": lab.serial.pid,
                  "backing": str(lab.disk.backing), "workdir": str(lab.workdir)}), flush=True)
os._exit(1)  # no finally, no atexit: what a SIGKILL or a crash leaves behind
"""


def test_leftovers_of_a_crashed_run_are_found_and_removed(lab_required: None) -> None:
    before = _root_ifnames()
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    snap: dict[str, object] = json.loads(done.stdout)
    namespaces = snap["namespaces"]
    assert isinstance(namespaces, list)
    assert set(namespaces) <= set(list_namespaces()), "the crash should have left namespaces"
    assert str(snap["backing"]) in _loop_backings()

    removed = cleanup_leftovers("tlabcrash-")

    assert len(removed) == 1 and namespaces[0].startswith(removed[0])
    _assert_gone(snap, before)


def test_leftover_finder_spares_labs_whose_owner_lives(lab: Lab) -> None:
    assert cleanup_leftovers(lab.prefix) == []
    assert set(lab.namespaces) <= set(list_namespaces())
    assert os.path.exists(lab.workdir)
