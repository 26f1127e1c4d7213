"""systemd notification, the watchdog interval, real-time scheduling and locked memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from hotstandby.agent import system


def test_notify_without_systemd_is_a_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert system.notify("READY=1") is False


def test_notify_sends_a_datagram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert system.notify("READY=1") is True
        assert sock.recv(1024) == b"READY=1"
        assert system.notify("STATUS=active (epoch 3)") is True
        assert sock.recv(1024) == b"STATUS=active (epoch 3)"


def test_notify_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"hotstandby-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert system.notify("WATCHDOG=1") is True
        assert sock.recv(1024) == b"WATCHDOG=1"


def test_notify_never_blocks_on_a_full_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "slow")
    results: list[bool] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)  # and never read: its queue fills
        monkeypatch.setenv("NOTIFY_SOCKET", path)

        def flood() -> None:
            for _ in range(2000):
                results.append(system.notify("WATCHDOG=1"))
                if not results[-1]:
                    return

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        sender.join(5.0)
        assert not sender.is_alive(), "notify() blocked on a full queue"
    assert results[0] is True and results[-1] is False


def test_notify_to_nobody_says_so_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert system.notify("READY=1") is False
    assert "cannot notify systemd" in caplog.text


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("2000000", None, 1.0),
        ("500000", "self", 0.25),
        ("500000", "1", None),  # meant for another process
        ("soon", None, None),
        ("0", None, None),
        ("-5", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(os.getpid()) if value == "self" else value)
    assert system.watchdog_interval() == expected


def test_realtime_and_locked_memory_never_raise() -> None:
    # In a child process: where they succeed, they change the process that asked.
    code = (
        "from hotstandby.agent import system\n"
        "for problem in (system.go_realtime(), system.lock_memory()):\n"
        "    assert problem is None or isinstance(problem, str), problem\n"
        "    print(problem)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def test_realtime_refused_is_a_problem_string(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    problem = system.go_realtime()
    assert problem is not None and problem.startswith("real-time scheduling refused")


def test_lock_memory_without_a_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    assert system.lock_memory() == "cannot find the C library to lock memory"


def test_lock_memory_refused_is_a_problem_string(monkeypatch: pytest.MonkeyPatch) -> None:
    class Libc:
        def mlockall(self, flags: int) -> int:
            assert flags == system.MCL_CURRENT | system.MCL_FUTURE
            return -1

    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: Libc())
    monkeypatch.setattr(ctypes, "get_errno", lambda: 12)
    problem = system.lock_memory()
    assert problem is not None and problem.startswith("memory not locked (")


def test_hardware_watchdog_pets_and_closes_magically(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.touch()
    dog = system.HardwareWatchdog(str(device))
    dog.pet()
    dog.pet()
    dog.close()
    assert device.read_bytes() == b"\0\0V"
