"""Command mode with real processes: a supervised foreground process and a daemon.

No root needed and no network: the services here are small Python programs that write their
pid to a file, so the tests can see from /proc what runs and what was killed.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hotstandby.agent.ports import ActionResult
from hotstandby.core.messages import Action

from .svc_helpers import PYTHON, act, pid_alive, script, service_adapter, wait_for

# A foreground service: writes its pid, marks itself ready after READY_AFTER seconds, runs
# until killed; IGNORE_TERM makes it ignore SIGTERM. Its arguments: its work directory.
SERVER = """
import os, signal, sys, time
from pathlib import Path
work = Path(sys.argv[1])
if (work / "ignore-term").exists():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
(work / "pid").write_text(str(os.getpid()))
print("serving", os.environ.get("HOTSTANDBY_RESOURCE"), os.environ.get("GREETING"), os.getcwd(),
      flush=True)
time.sleep(float(os.environ.get("READY_AFTER", "0")))
(work / "ready").write_text("")
while True:
    time.sleep(60)
"""
# Exit 0 when the service is ready, 3 when it is not, or what the file "answer" says.
MONITOR = """
import sys
from pathlib import Path
work = Path(sys.argv[1])
if (work / "answer").exists():
    print("monitor says", (work / "answer").read_text())
    sys.exit(int((work / "answer").read_text()))
sys.exit(0 if (work / "ready").exists() and (work / "pid").exists() else 3)
"""
# A daemon's start: forks, the child detaches and serves; the parent exits 0 at once.
DAEMON_START = """
import os, sys, time
from pathlib import Path
work = Path(sys.argv[1])
if (work / "refuse").exists():
    print("cannot bind port 5432: address in use", file=sys.stderr)
    sys.exit(1)
if os.fork() == 0:
    os.setsid()
    (work / "pid").write_text(str(os.getpid()))
    (work / "ready").write_text("")
    while True:
        time.sleep(60)
"""
DAEMON_STOP = """
import os, signal, sys
from pathlib import Path
work = Path(sys.argv[1])
os.kill(int((work / "pid").read_text()), signal.SIGKILL)
(work / "pid").unlink()
(work / "ready").unlink()
"""
# Hangs: writes its pid and that of a child it starts in its own group, then sleeps.
HANG = """
import os, subprocess, sys, time
from pathlib import Path
work = Path(sys.argv[1])
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
(work / "pids").write_text(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory for the service's files, with the scripts in it."""
    for name, body in (
        ("server", SERVER),
        ("monitor", MONITOR),
        ("daemon-start", DAEMON_START),
        ("daemon-stop", DAEMON_STOP),
        ("hang", HANG),
    ):
        script(tmp_path / name, body)
    return tmp_path


def pid_of(work: Path) -> int:
    """The pid the service wrote."""
    return int(wait_for("the service's pid file", lambda: (work / "pid").exists() or None) and
               (work / "pid").read_text())  # fmt: skip


def all_gone(pids: list[int]) -> Callable[[], bool]:
    """A probe: true once none of pids runs."""
    return lambda: not any(map(pid_alive, pids))


def cmd(work: Path, name: str) -> list[str]:
    """The command that runs script `name` on the work directory."""
    return [str(work / name), str(work)]


def test_foreground_start_monitor_stop_and_its_death(work: Path) -> None:
    a = service_adapter(
        {
            "start": cmd(work, "server"),
            "env": {"GREETING": "hello-{node}"},
            "cwd": str(work),
            "log": str(work / "log"),
        }
    )
    assert (act(a, "probe").outcome, act(a, "monitor").outcome) == ("stopped", "stopped")
    started = act(a, "start")
    assert started.outcome == "ok", started.detail
    pid = pid_of(work)
    assert started.detail == f"started (pid {pid})"
    assert f"serving svc hello-alpha {work}" in (work / "log").read_text()
    assert act(a, "monitor").outcome == "ok"
    assert act(a, "start").detail == f"already running (pid {pid})"
    # Its death shows in the next monitor, with how it died.
    os.kill(pid, signal.SIGKILL)

    def seen_dead() -> ActionResult | None:
        result = act(a, "monitor")
        return result if result.outcome == "stopped" else None

    dead = wait_for("the monitor to see the death", seen_dead)
    assert dead.detail == f"exited: killed by SIGKILL: serving svc hello-alpha {work}"
    (work / "pid").unlink()
    assert act(a, "start").outcome == "ok"
    pid = pid_of(work)
    stopped = act(a, "stop")
    assert stopped.outcome == "ok"
    assert stopped.detail == f"sent SIGTERM; pid {pid} killed by SIGTERM"
    assert not pid_alive(pid)
    assert act(a, "probe").detail == "not running"


def test_start_waits_for_the_monitor_and_fails_when_the_process_exits(work: Path) -> None:
    a = service_adapter(
        {
            "start": cmd(work, "server"),
            "monitor": cmd(work, "monitor"),
            "env": {"READY_AFTER": "0.3"},
        }
    )
    started = act(a, "start")
    assert started.outcome == "ok"
    assert started.detail.startswith(f"started (pid {pid_of(work)}), ready after ")
    checks = int(started.detail.split("ready after ")[1].split()[0])
    assert checks >= 2  # not ready at the first look: the start waited
    # The process lives but its monitor fails: a failed monitor, with its output.
    (work / "answer").write_text("1")
    failed = act(a, "monitor")
    assert (failed.outcome, failed.detail) == (
        "failed",
        "monitor command: exit status 1: monitor says 1",
    )
    (work / "answer").write_text("3")
    assert act(a, "monitor").detail == f"pid {pid_of(work)} runs but its monitor says not running"
    (work / "answer").unlink()
    assert act(a, "stop").outcome == "ok"

    quitter = service_adapter({"start": [PYTHON, "-c", "import sys; sys.exit(2)"]})
    result = act(quitter, "start")
    assert (result.outcome, result.detail) == ("failed", "exited at once: exit status 2")


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(work: Path) -> None:
    (work / "ignore-term").write_text("")
    a = service_adapter({"start": cmd(work, "server"), "stop_grace": "300ms"}, stop_timeout=5.0)
    assert act(a, "start").outcome == "ok"
    pid = pid_of(work)
    stopped = act(a, "stop")
    assert stopped.outcome == "ok"
    assert stopped.detail == (
        f"sent SIGTERM; still running after 0.3s: sent SIGKILL; pid {pid} killed by SIGKILL"
    )
    assert not pid_alive(pid)


def test_a_start_cut_short_by_its_timeout_kills_what_it_started(work: Path) -> None:
    # A foreground process that never gets ready, and a daemon's start that never returns:
    # when the agent's timeout cancels the start, nothing of either lives on.
    for params in (
        {
            "start": cmd(work, "server"),
            "monitor": cmd(work, "monitor"),
            "env": {"READY_AFTER": "600"},
        },
        {
            "start": cmd(work, "hang"),
            "stop": ["/bin/true"],
            "monitor": ["/bin/false"],
            "daemon": True,
        },
    ):
        for name in ("pid", "pids"):
            (work / name).unlink(missing_ok=True)
        a = service_adapter(params)
        with pytest.raises(TimeoutError):
            act(a, "start", timeout=1.0)
        names = "pids" if params.get("daemon") else "pid"
        pids = [int(p) for p in (work / names).read_text().split()]
        assert pids
        gone = all_gone(pids)
        wait_for("the killed processes to be gone", gone, 5)


def test_daemon_mode(work: Path) -> None:
    a = service_adapter(
        {
            "start": cmd(work, "daemon-start"),
            "stop": cmd(work, "daemon-stop"),
            "monitor": cmd(work, "monitor"),
            "daemon": True,
            "log": str(work / "log"),
        }
    )
    assert act(a, "probe").outcome == "stopped"
    started = act(a, "start")
    assert started.outcome == "ok", started.detail
    pid = pid_of(work)
    assert pid_alive(pid)
    assert act(a, "monitor").outcome == "ok"
    assert act(a, "start").detail == "already running"
    (work / "answer").write_text("5")
    failed = act(a, "probe")
    assert (failed.outcome, failed.detail) == (
        "failed",
        "monitor command: exit status 5: monitor says 5",
    )
    (work / "answer").unlink()
    stopped = act(a, "stop")
    assert (stopped.outcome, stopped.detail) == ("ok", "stopped")
    assert not pid_alive(pid)
    assert act(a, "monitor").outcome == "stopped"
    (work / "refuse").write_text("")
    refused = act(a, "start")
    assert refused.outcome == "failed"
    assert refused.detail == "start command: exit status 1: cannot bind port 5432: address in use"


def test_a_missing_program_fails_the_action_and_says_so(tmp_path: Path) -> None:
    a = service_adapter({"start": [str(tmp_path / "nothing-here")]})
    result = act(a, "start")
    assert result.outcome == "failed"
    assert "start: cannot run a command" in result.detail and "nothing-here" in result.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="running as another user needs root")
def test_commands_run_as_the_configured_user() -> None:
    entry = pwd.getpwnam("nobody")
    # A directory nobody may write in: the test's own temporary directories are root's only.
    shared = Path(tempfile.mkdtemp(prefix="hsv-user-"))
    try:
        shared.chmod(0o777)
        out = shared / "ids"
        a = service_adapter(
            {
                # The system's Python: the project's virtualenv may sit where nobody cannot go.
                "start": [
                    "/usr/bin/python3", "-c",
                    f"import os; open({str(out)!r}, 'w').write(f'{{os.getuid()}} {{os.getgid()}}')",
                ],
                "daemon": True,
                "stop": ["/bin/true"],
                "monitor": ["/usr/bin/python3", "-c", f"import os; os.stat({str(out)!r})"],
                "not_running_code": 1,
                "user": "nobody",
            }
        )  # fmt: skip
        started = act(a, "start")
        assert started.outcome == "ok", started.detail
        assert out.read_text() == f"{entry.pw_uid} {entry.pw_gid}"
    finally:
        shutil.rmtree(shared)


def test_the_foreground_process_dies_with_its_agent(work: Path) -> None:
    # The agent here is a separate Python process hosting the adapter; killed with SIGKILL,
    # it can clean up nothing, and the kernel's death signal ends the service.
    host = script(
        work / "host",
        f"import asyncio, sys, time\nsys.path.insert(0, {str(Path(__file__).parents[2])!r})\n"
        "from hotstandby.core.messages import Action\n"
        "from tests.service.svc_helpers import service_adapter\n"
        f"a = service_adapter({{'start': {cmd(work, 'server')!r}, 'log': {str(work / 'log')!r}}})\n"
        "print(asyncio.run(a.run(Action.START)), flush=True)\n"
        "time.sleep(600)\n",
    )

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            host, stdout=asyncio.subprocess.PIPE, cwd=str(Path(__file__).parents[2])
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert b"started" in line, line
        pid = pid_of(work)
        assert pid_alive(pid)
        proc.kill()
        await proc.wait()
        await asyncio.to_thread(
            wait_for, "the service to die with its agent", lambda: not pid_alive(pid), 5
        )

    asyncio.run(main())
    assert Action.START  # the adapter's own module imported fine in the host


def test_a_copy_started_by_hand_is_found_and_stopped_or_refused(work: Path) -> None:
    # The "copy": the monitor's files say it runs, though this agent started nothing.
    (work / "pid").write_text("1")
    (work / "ready").write_text("")
    params = {"start": cmd(work, "server"), "monitor": cmd(work, "monitor")}
    a = service_adapter(params)
    probe = act(a, "probe")
    assert (probe.outcome, probe.detail) == (
        "failed",
        "running, but not as a process this agent started",
    )
    refused = act(a, "stop")
    assert refused.outcome == "failed"  # it runs, and nothing here can stop it
    assert "no stop command" in refused.detail
    stop = [PYTHON, "-c", f"import os; os.unlink({str(work / 'ready')!r})"]
    b = service_adapter({**params, "stop": stop})
    stopped = act(b, "stop")
    assert (stopped.outcome, stopped.detail) == (
        "ok",
        "stopped a copy this agent had not started: exit status 0",
    )
    assert act(b, "probe").outcome == "stopped"
