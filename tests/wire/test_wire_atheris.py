"""A short atheris run of the decoder and deframer; skipped when atheris is missing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("atheris_decode.py")


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_short_run(tmp_path: Path) -> None:
    # A subprocess: libFuzzer exits the process when done and on a finding.
    # A fixed seed keeps the run the same every time.
    result = subprocess.run(
        [sys.executable, str(HARNESS), "-runs=100000", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
