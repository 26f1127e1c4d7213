"""The fence-agents adapter against fake agents: protocol, topology, timeouts, secrets."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from hotstandby.agent.fence import FenceAgents, build_fence
from hotstandby.agent.ports import FenceAdapter
from hotstandby.lab.procs import process_state

from .fakes import Does, calls, cluster, fake_agent, hung_pids

OFF = Does(exit=2, stdout="Status: OFF\n")
ON = Does(exit=0, stdout="Status: ON\n")


def fence(adapter: FenceAgents, target: str = "beta") -> tuple[bool, str]:
    """Run one fence call to completion."""
    return asyncio.run(adapter.fence(target))


def test_off_then_status_off_confirms(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    adapter = FenceAgents(cluster({"agent": str(agent), "plug": "{node}"}), "alpha")

    ok, detail = fence(adapter)

    assert ok, detail
    assert detail == "method 1 (fence_fake): off confirmed, status reports off"
    sent = calls(agent)
    assert [c["params"] for c in sent] == [
        {"action": "off", "plug": "beta"},
        {"action": "status", "plug": "beta"},
    ]
    assert all(c["argv"] == [] for c in sent)  # everything on stdin, nothing on argv


def test_satisfies_the_port() -> None:
    adapter: FenceAdapter = FenceAgents(cluster({"agent": "x"}), "alpha")
    assert isinstance(adapter, FenceAgents)


def test_failure_exit_1_is_not_a_fence(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(exit=1, stderr="Unable to connect\n"))
    ok, detail = fence(FenceAgents(cluster({"agent": str(agent)}), "alpha"))
    assert not ok
    assert detail == "method 1 (fence_fake): off failed, exit 1: Unable to connect"
    assert len(calls(agent)) == 1  # a failed off is never followed by a status


def test_status_still_on_is_not_confirmed(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=ON)
    adapter = FenceAgents(cluster({"agent": str(agent), "timeout": "1200ms"}), "alpha")

    ok, detail = fence(adapter)

    assert not ok
    assert detail == (
        "method 1 (fence_fake): timed out after 1.2s during status "
        "(off succeeded; status still reports on)"
    )
    # Asked more than once: a device may report the new state late.
    assert [c["params"]["action"] for c in calls(agent)].count("status") >= 2


def test_status_failing_is_not_off(tmp_path: Path) -> None:
    # Exit 1 from status is a failure, never "off", whatever it prints.
    agent = fake_agent(tmp_path, "fake", off=Does(), status=Does(exit=1, stdout="Status: OFF"))
    ok, detail = fence(FenceAgents(cluster({"agent": str(agent), "timeout": "700ms"}), "alpha"))
    assert not ok
    assert "status failed, exit 1" in detail


def test_unverified_method_trusts_the_exit_code(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", reboot=Does())
    adapter = FenceAgents(cluster({"agent": str(agent), "action": "reboot"}), "alpha")
    ok, detail = fence(adapter)
    assert ok
    assert detail == "method 1 (fence_fake): reboot succeeded (not verified)"
    assert [c["params"]["action"] for c in calls(agent)] == ["reboot"]


def test_methods_in_order_first_fails_second_confirms(tmp_path: Path) -> None:
    first = fake_agent(tmp_path, "ipmi", off=Does(exit=1, stderr="Connection timed out"))
    second = fake_agent(tmp_path, "pdu", off=Does(), status=OFF)
    adapter = FenceAgents(
        cluster(
            {"agent": str(first), "ip": "192.0.2.50"},
            {"agent": str(second), "plugs": {"alpha": "3", "beta": "4"}},
        ),
        "alpha",
    )

    ok, detail = fence(adapter)

    assert ok
    assert detail == "method 2 (fence_pdu): off confirmed, status reports off"
    assert [c["params"] for c in calls(first)] == [{"action": "off", "ip": "192.0.2.50"}]
    assert [c["params"]["plug"] for c in calls(second)] == ["4", "4"]


def test_all_methods_failing_names_each(tmp_path: Path) -> None:
    first = fake_agent(tmp_path, "ipmi", off=Does(exit=1, stderr="login denied"))
    second = fake_agent(tmp_path, "pdu", off=Does(exit=5))
    adapter = FenceAgents(cluster({"agent": str(first)}, {"agent": str(second)}), "alpha")
    ok, detail = fence(adapter)
    assert not ok
    assert detail == (
        "method 1 (fence_ipmi): off failed, exit 1: login denied; "
        "method 2 (fence_pdu): off failed, exit 5"
    )


def _gone(pid: int) -> bool:
    # A killed helper is reparented to init, which may take a moment to reap it.
    deadline = time.monotonic() + 2.0
    while process_state(pid) not in (None, "Z", "X"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_cancelled_fence_kills_the_agent_and_its_helpers(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "hang", off=Does(hang=True))
    adapter = FenceAgents(cluster({"agent": str(agent)}, fence_timeout=60.0), "alpha")

    async def scenario() -> None:
        # As the agent loop does: its fence_timeout cancels the call.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(adapter.fence("beta"), 1.0)

    asyncio.run(scenario())

    leader, helper = hung_pids(agent)
    assert process_state(leader) is None  # killed and reaped by the adapter
    assert _gone(helper)  # its process group went with it


def test_hung_method_times_out_and_the_next_confirms(tmp_path: Path) -> None:
    hang = fake_agent(tmp_path, "hang", off=Does(hang=True))
    good = fake_agent(tmp_path, "good", off=Does(), status=OFF)
    adapter = FenceAgents(
        cluster({"agent": str(hang), "timeout": "500ms"}, {"agent": str(good)}), "alpha"
    )

    ok, detail = fence(adapter)

    assert ok
    assert detail.startswith("method 2 (fence_good)")
    leader, helper = hung_pids(hang)
    assert process_state(leader) is None
    assert _gone(helper)


def test_password_file_reaches_stdin_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-Pa55"
    (tmp_path / "ipmi.pass").write_text(secret + "\n")
    # A chatty agent that echoes its whole input on stdout and stderr, then fails.
    agent = fake_agent(tmp_path, "fake", off=Does(exit=1, echo=True))
    adapter = FenceAgents(
        cluster({"agent": str(agent), "password_file": str(tmp_path / "ipmi.pass")}), "alpha"
    )

    with caplog.at_level(logging.DEBUG):
        ok, detail = fence(adapter)

    assert not ok
    (call,) = calls(agent)
    assert call["params"]["password"] == secret
    assert call["argv"] == []
    assert secret not in detail
    assert "password=********" in detail
    assert secret not in caplog.text
    assert "method 1 (fence_fake)" in caplog.text


def test_agent_name_found_in_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    for name in ("fake", "fence_fake"):
        ok, detail = fence(FenceAgents(cluster({"agent": name}), "alpha"))
        assert ok, detail


def test_missing_agent_fails_the_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, detail = fence(FenceAgents(cluster({"agent": "nosuch"}), "alpha"))
    assert not ok
    assert detail == "method 1 (fence_nosuch): FileNotFoundError: fence_nosuch not found in PATH"


def test_unreadable_password_file_fails_the_method(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    method = {"agent": str(agent), "password_file": str(tmp_path / "missing")}
    ok, detail = fence(FenceAgents(cluster(method), "alpha"))
    assert not ok
    assert "FileNotFoundError" in detail
    assert calls(agent) == []  # the agent never ran without its password


def test_parameters_per_target(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    method = {
        "agent": str(agent),
        "username": "admin",
        "lanplus": True,
        "ipport": 623,
        "targets": {"alpha": {"ip": "192.0.2.61"}, "beta": {"ip": "192.0.2.62"}},
    }
    assert fence(FenceAgents(cluster(method), "alpha"))[0]
    assert calls(agent)[0]["params"] == {
        "action": "off",
        "username": "admin",
        "lanplus": "1",
        "ipport": "623",
        "ip": "192.0.2.62",
    }


def test_method_without_an_entry_for_the_target_is_skipped(tmp_path: Path) -> None:
    pdu = fake_agent(tmp_path, "pdu", off=Does(), status=OFF)
    adapter = FenceAgents(
        cluster({"agent": str(pdu), "plugs": {"alpha": "1"}}, nodes=("alpha", "beta")), "alpha"
    )
    ok, detail = fence(adapter, "beta")
    assert not ok
    assert detail == "method 1 (fence_pdu): not configured for beta (no plug or targets entry)"
    assert calls(pdu) == []


def test_plug_template_with_per_node_override(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    method = {"agent": str(agent), "plug": "vm-{node}", "plugs": {"gamma": "legacy-3"}}
    adapter = FenceAgents(cluster(method, nodes=("alpha", "beta", "gamma")), "alpha")
    assert fence(adapter, "beta")[0]
    assert fence(adapter, "gamma")[0]
    assert [c["params"]["plug"] for c in calls(agent)][::2] == ["vm-beta", "legacy-3"]


def test_never_fences_itself_or_a_stranger(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", off=Does(), status=OFF)
    adapter = FenceAgents(cluster({"agent": str(agent)}), "alpha")
    assert fence(adapter, "alpha") == (False, "refusing to fence alpha: that is this node")
    assert fence(adapter, "zeta") == (False, "no node 'zeta' in the cluster")
    assert calls(agent) == []


def test_other_actions_through_run(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path, "fake", monitor=Does(), list=Does(stdout="1,alpha\n2,beta\n"))
    adapter = FenceAgents(cluster({"agent": str(agent), "ip": "192.0.2.50"}), "alpha")
    method = adapter.methods[0]

    async def scenario() -> None:
        assert (await adapter.run(method, "monitor")).exit_code == 0
        listed = await adapter.run(method, "list")
        assert listed.stdout == "1,alpha\n2,beta\n"
        with pytest.raises(ValueError, match="not a fence agent action"):
            await adapter.run(method, "explode")

    asyncio.run(scenario())
    assert [c["params"] for c in calls(agent)] == [
        {"action": "monitor", "ip": "192.0.2.50"},
        {"action": "list", "ip": "192.0.2.50"},
    ]


def test_build_fence() -> None:
    assert build_fence(cluster(), "alpha") is None
    built = build_fence(cluster({"agent": "a"}, {"agent": "b", "timeout": "3s"}), "alpha")
    assert built is not None
    assert [m.timeout for m in built.methods] == [5.0, 3.0]
    assert built.total_timeout == 8.0
