"""Unit mode against a fake systemctl on PATH: this machine runs no systemd as PID 1.

The fake keeps each unit's state in a file beside it and logs every call, so the tests see
which systemctl commands the adapter and `check` run, and what they make of the answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotstandby.agent.resources import service
from hotstandby.core.cluster import ResourceKind

from .svc_helpers import act, resource, script, service_adapter

FAKE_SYSTEMCTL = """
import sys
from pathlib import Path

here = Path(__file__).parent
args = sys.argv[1:]
with (here / "calls").open("a") as log:
    log.write(" ".join(args) + "\\n")
assert args[0] == "--no-ask-password", args
verb, unit = args[1], args[2]
state = here / f"state-{unit}"
if verb == "start":
    if "broken" in unit:
        state.write_text("failed")
        print(f"Job for {unit} failed because the control process exited with error code.")
        sys.exit(1)
    state.write_text("active")
elif verb == "stop":
    if "stuck" in unit:
        state.write_text("deactivating")
    else:
        state.write_text("inactive")
elif verb == "is-active":
    now = state.read_text() if state.exists() else "inactive"
    print(now)
    sys.exit(0 if now == "active" else 3)
elif verb == "is-enabled":
    print((here / "enabled").read_text() if (here / "enabled").exists() else "disabled")
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake systemctl first on PATH, and a /run/systemd/system that exists."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "systemctl", FAKE_SYSTEMCTL)
    runtime = tmp_path / "run-systemd-system"
    runtime.mkdir()
    monkeypatch.setattr(service, "SYSTEMD_RUNTIME", runtime)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return bin_dir


def calls(fake: Path) -> list[str]:
    """The systemctl calls made so far, without the common first option."""
    log = fake / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.removeprefix("--no-ask-password ") for line in lines]


def test_start_monitor_stop_probe(fake: Path) -> None:
    a = service_adapter({"unit": "web"})
    probe = act(a, "probe")
    assert (probe.outcome, probe.detail) == ("stopped", "web.service is inactive")
    assert act(a, "start").outcome == "ok"
    assert calls(fake)[-2:] == ["start web.service", "is-active web.service"]
    assert act(a, "monitor").outcome == "ok"
    assert act(a, "probe").outcome == "ok"
    stopped = act(a, "stop")
    assert (stopped.outcome, stopped.detail) == ("ok", "web.service is inactive")
    assert act(a, "monitor").outcome == "stopped"


def test_a_failed_start_carries_systemctls_words(fake: Path) -> None:
    a = service_adapter({"unit": "broken"})
    started = act(a, "start")
    assert started.outcome == "failed"
    assert "exit status 1" in started.detail and "Job for broken.service failed" in started.detail
    probe = act(a, "probe")
    assert (probe.outcome, probe.detail) == ("stopped", "broken.service is failed")


def test_a_unit_still_deactivating_after_stop_failed_the_stop(fake: Path) -> None:
    a = service_adapter({"unit": "stuck"})
    assert act(a, "start").outcome == "ok"
    stopped = act(a, "stop")
    assert (stopped.outcome, stopped.detail) == (
        "failed",
        "stuck.service is deactivating after stop",
    )
    assert act(a, "monitor").outcome == "failed"


def test_without_systemd_every_action_fails_and_says_why(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SYSTEMD_RUNTIME", tmp_path / "absent")
    a = service_adapter({"unit": "web"})
    for action in ("start", "stop", "monitor", "probe"):
        result = act(a, action)
        assert result.outcome == "failed"
        assert "systemd does not run this machine" in result.detail
    assert calls(fake) == []
    r = resource(ResourceKind.SERVICE, {"unit": "web"})
    assert service.host_risks(r, "alpha") == [
        ("unit", "systemd does not run this machine: the unit cannot be managed here")
    ]


@pytest.mark.parametrize(
    ("state", "warned"),
    [("enabled", True), ("enabled-runtime", True), ("disabled", False), ("static", False)],
)
def test_check_warns_of_a_unit_enabled_at_boot(fake: Path, state: str, warned: bool) -> None:
    (fake / "enabled").write_text(state)
    r = resource(ResourceKind.SERVICE, {"unit": "web"})
    risks = service.host_risks(r, "alpha")
    assert calls(fake) == ["is-enabled web.service"]
    if warned:
        assert risks == [
            (
                "unit",
                f"web.service is {state}: it starts at boot, yet only the cluster may start it "
                "(systemctl disable web.service)",
            )
        ]
    else:
        assert risks == []
