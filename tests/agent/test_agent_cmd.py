"""`hotstandby agent`: SIGTERM as a planned stop, systemd notification, bad input."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hotstandby.agent.control import ControlServer
from hotstandby.cli import main
from hotstandby.cli.agent_cmd import _serve
from hotstandby.core.messages import Role

from .harness import CLUSTER_TOML, Pair, drive


def test_sigterm_releases_hands_over_and_tells_systemd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notify = tmp_path / "notify"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify))
    monkeypatch.setenv("WATCHDOG_USEC", "40000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    path = str(tmp_path / "alpha.sock")

    messages: list[str] = []

    def drain() -> None:
        while True:
            try:
                messages.append(listener.recv(1024).decode())
            except BlockingIOError:
                return

    async def body(p: Pair) -> None:
        # Read as systemd would, all along: notify() drops what a full queue cannot take.
        asyncio.get_running_loop().add_reader(listener.fileno(), drain)
        p.start(p.beta)
        served = asyncio.create_task(_serve(p.alpha.agent, path))
        await p.until(
            lambda: p.alpha.role is Role.ACTIVE and p.beta.role is Role.STANDBY, "settled"
        )
        assert os.path.exists(path)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler turns it into a planned stop
        assert await asyncio.wait_for(served, 3.0) == 0
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        assert not os.path.exists(path)
        assert not any(r.running for r in p.alpha.resources.values())

    try:
        drive(tmp_path / "state", body, start=False)
        drain()
    finally:
        listener.close()
    assert messages[0] == "READY=1"
    assert messages.count("READY=1") == 1
    statuses = [m for m in messages if m.startswith("STATUS=")]
    assert statuses[0] == "STATUS=starting (epoch 0)"
    assert "STATUS=active (epoch 1)" in statuses
    assert len(statuses) == len(set(statuses))  # sent on changes only
    assert "WATCHDOG=1" in messages
    assert messages[-1] == "STOPPING=1"


def test_the_socket_directory_is_made_root_only_and_close_is_idempotent(tmp_path: Path) -> None:
    # A socket path in a directory that does not exist yet: it is made, root only.
    path = tmp_path / "run" / "deeper" / "a.sock"

    async def body(p: Pair) -> None:
        server = ControlServer(p.alpha.agent, str(path))
        await server.start()
        assert oct(os.stat(path.parent).st_mode & 0o777) == oct(0o700)
        await server.close()
        await server.close()  # twice is harmless

    drive(tmp_path / "state", body, start=False)


def write_config(tmp_path: Path, secret: Path) -> Path:
    config = tmp_path / "cluster.toml"
    text = CLUSTER_TOML.format(start_timeout="1s", dead_time="100ms")
    config.write_text(text.replace("/etc/hotstandby/secret", str(secret)))
    return config


def test_agent_refuses_an_unknown_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tmp_path / "secret")
    assert main(["agent", "-c", str(config), "--node", "zeta"]) == 2
    err = capsys.readouterr().err
    assert "no node 'zeta' (nodes: alpha, beta); use --node" in err


def test_agent_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text("[cluster]\nname = 3\n")
    assert main(["agent", "-c", str(config), "--node", "alpha"]) == 2
    assert str(config) in capsys.readouterr().err


def test_agent_refuses_a_missing_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tmp_path / "no-secret")
    assert main(["agent", "-c", str(config), "--node", "alpha"]) == 2
    assert "no-secret" in capsys.readouterr().err


def test_keygen_writes_a_private_secret_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "secret"
    assert main(["keygen", str(path)]) == 0
    assert "wrote a new secret" in capsys.readouterr().out
    assert os.stat(path).st_mode & 0o077 == 0
    assert main(["keygen", str(path)]) == 2
    assert str(path) in capsys.readouterr().err
    assert main(["keygen", "--force", str(path)]) == 0


def test_the_daemon_loads_neither_the_simulator_nor_the_lab() -> None:
    code = (
        "import sys\n"
        "from hotstandby.cli import build_parser\n"
        "build_parser('agent')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('hotstandby.sim', "
        "'hotstandby.lab', 'hotstandby.demo', 'pyroute2', 'smtplib', 'urllib.request'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
