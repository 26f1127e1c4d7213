"""The lab says clearly why it cannot run (no root, missing programs); needs no root itself."""

from __future__ import annotations

import os
import shutil

import pytest

from hotstandby.lab import missing_programs, skip_reason


def test_not_root_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = skip_reason()
    assert reason is not None and "root" in reason


def test_missing_program_names_its_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "socat" else "/x")
    assert missing_programs() == ["socat (Debian package socat)"]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    reason = skip_reason()
    assert reason is not None and "Debian package socat" in reason
