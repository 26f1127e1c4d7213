"""OCF agents: parameters checked against meta-data, the standard's exit codes, the real Dummy.

A fake agent (a small script under an OCF root of the test's own) shows how each exit code
maps to an outcome and what environment an agent gets; Debian's resource-agents package
provides the real ocf:heartbeat:Dummy and IPaddr2 (scripts/setup installs it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from hotstandby.agent.resources import ParamError, ocf
from hotstandby.cli import main
from hotstandby.core.cluster import ResourceKind

from .svc_helpers import act, ocf_adapter, resource, script

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")
needs_agents = pytest.mark.skipif(
    not (HEARTBEAT / "Dummy").exists(), reason="Debian's resource-agents is not installed"
)

# An agent that records its action and environment, and exits with the code in codes/ACTION.
FAKE_AGENT = """
import json, os, sys
from pathlib import Path
here = Path(__file__).resolve().parents[2]
action = sys.argv[1]
with (here / "calls").open("a") as log:
    env = {k: v for k, v in os.environ.items() if k.startswith(("OCF_", "HA_"))}
    log.write(json.dumps({"action": action, "env": env}) + "\\n")
if action == "meta-data":
    print((here / "meta-data.xml").read_text())
    sys.exit(0)
code = here / "codes" / action
if code.exists():
    number = int(code.read_text())
    if number == 6:
        print("ocf-exit-reason:parameter 'ip' looks wrong", file=sys.stderr)
    elif number:
        print("some output of the agent")
    sys.exit(number)
sys.exit(0)
"""
META_DATA = """<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="Fake" version="1.0">
<parameters>
<parameter name="ip" unique="1" required="1"><content type="string"/></parameter>
<parameter name="nic"><content type="string" default=""/></parameter>
</parameters>
<actions><action name="start" timeout="20s"/></actions>
</resource-agent>
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An OCF root holding the fake agent as provider "hsv", type "Fake"."""
    agents = tmp_path / "resource.d" / "hsv"
    agents.mkdir(parents=True)
    (tmp_path / "codes").mkdir()
    (tmp_path / "meta-data.xml").write_text(META_DATA)
    script(agents / "Fake", FAKE_AGENT)
    ocf._META_DATA.clear()
    return tmp_path


def fake(root: Path, **more: Any) -> dict[str, Any]:
    """Params of a resource run by the fake agent."""
    return {"agent": "hsv:Fake", "ocf_root": str(root), "params": {"ip": "192.0.2.7"}, **more}


def calls(root: Path) -> list[dict[str, Any]]:
    """Every call of the fake agent so far."""
    log = root / "calls"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def set_code(root: Path, action: str, code: int) -> None:
    """Make the fake agent answer `action` with exit code `code`."""
    (root / "codes" / action).write_text(str(code))


def parse(params: dict[str, Any]) -> ocf.OcfParams:
    """The params of an ocf resource "svc" on node alpha."""
    return ocf.parse_params(resource(ResourceKind.OCF, params), "alpha")


# ---- parameters


@pytest.mark.parametrize(
    ("params", "key", "words"),
    [
        ({}, "agent", "is required"),
        ({"agent": "Dummy"}, "agent", '"PROVIDER:TYPE"'),
        ({"agent": "heartbeat:../x"}, "agent", '"PROVIDER:TYPE"'),
        ({"agent": "heartbeat:Dummy", "params": {"a-b": "1"}}, "params", "a parameter name"),
        ({"agent": "heartbeat:Dummy", "params": {"x": [1]}}, "params", "a string, a number"),
        ({"agent": "heartbeat:Dummy", "ocf_root": "lib/ocf"}, "ocf_root", "absolute path"),
        ({"agent": "heartbeat:Dummy", "timeout": 3}, "timeout", "unknown"),
    ],
)
def test_mistakes_name_the_key(params: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse(params)
    assert (caught.value.resource, caught.value.key) == ("svc", key)
    assert words in str(caught.value)


def test_params_are_checked_against_the_agents_meta_data(root: Path) -> None:
    p = parse(fake(root, params={"ip": "192.0.2.7", "nic": "{node}0"}))
    assert (p.provider, p.type, p.path) == ("hsv", "Fake", f"{root}/resource.d/hsv/Fake")
    assert p.params == {"ip": "192.0.2.7", "nic": "alpha0"}
    with pytest.raises(ParamError) as unknown:
        parse(fake(root, params={"ip": "192.0.2.7", "netmask": "24"}))
    assert str(unknown.value) == (
        "resource 'svc': key 'params': agent hsv:Fake has no parameter 'netmask' (it takes ip, nic)"
    )
    with pytest.raises(ParamError) as missing:
        parse(fake(root, params={"nic": "eth0"}))
    assert (
        str(missing.value) == "resource 'svc': key 'params': agent hsv:Fake requires parameter 'ip'"
    )
    # Meta-data is asked once per agent, however often the resource is parsed.
    assert [c["action"] for c in calls(root)] == ["meta-data"]
    assert calls(root)[0]["env"]["OCF_ROOT"] == str(root)


def test_meta_data_that_is_not_xml_is_an_error_naming_the_agent(root: Path) -> None:
    (root / "meta-data.xml").write_text("<resource-agent><parameters>")
    with pytest.raises(ParamError) as caught:
        parse(fake(root))
    assert caught.value.key == "agent"
    assert "hsv:Fake meta-data is not XML" in str(caught.value)


def test_an_agent_not_installed_here_is_a_warning_not_an_error(root: Path) -> None:
    params = fake(root, agent="hsv:Absent", params={"anything": "goes"})
    assert parse(params).type == "Absent"
    risks = ocf.host_risks(resource(ResourceKind.OCF, params), "alpha")
    assert risks == [
        (
            "agent",
            f"{root}/resource.d/hsv/Absent is not installed here (or not executable): the "
            "resource cannot run on this machine, and its parameters were not checked",
        )
    ]
    a = ocf_adapter(params)
    assert act(a, "probe").outcome == "stopped"
    started = act(a, "start")
    assert (started.outcome, started.detail) == (
        "failed",
        f"5 not installed: no agent {root}/resource.d/hsv/Absent",
    )
    assert act(a, "stop").outcome == "ok"


# ---- calling the agent


@pytest.mark.parametrize(
    ("action", "code", "outcome"),
    [
        ("monitor", 0, "ok"),
        ("monitor", 7, "stopped"),
        ("monitor", 8, "ok"),
        ("monitor", 9, "failed"),
        ("monitor", 5, "failed"),
        ("probe", 5, "stopped"),
        ("probe", 7, "stopped"),
        ("probe", 6, "failed"),
        ("probe", 1, "failed"),
        ("stop", 0, "ok"),
        ("stop", 7, "ok"),
        ("stop", 1, "failed"),
        ("stop", 4, "failed"),
        ("start", 0, "ok"),
        ("start", 7, "failed"),
        ("start", 3, "failed"),
    ],
)
def test_exit_codes(root: Path, action: str, code: int, outcome: str) -> None:
    set_code(
        root, "stop" if action == "stop" else "start" if action == "start" else "monitor", code
    )
    result = act(ocf_adapter(fake(root)), action)
    assert result.outcome == outcome
    assert result.detail.startswith(ocf.meaning(code))
    assert ocf.meaning(code) == f"{code} {ocf.MEANING[code]}"


def test_details_carry_the_exit_reason_or_the_output(root: Path) -> None:
    set_code(root, "monitor", 6)
    assert act(ocf_adapter(fake(root)), "monitor").detail == (
        "6 not configured: parameter 'ip' looks wrong"
    )
    set_code(root, "monitor", 1)
    assert (
        act(ocf_adapter(fake(root)), "monitor").detail
        == "1 generic error: some output of the agent"
    )


def test_the_environment_of_each_call(root: Path) -> None:
    a = ocf_adapter(
        fake(root, rsctmp=str(root / "rsc-{node}")),
        start_timeout=30.0,
        monitor_timeout=4.0,
        monitor_interval=2.5,
    )
    for action in ("start", "monitor", "probe", "stop", "start"):
        assert act(a, action).outcome == "ok"
    made = [(c["action"], c["env"]) for c in calls(root) if c["action"] != "meta-data"]
    # validate-all once, before the first start only.
    assert [m[0] for m in made] == ["validate-all", "start", "monitor", "monitor", "stop", "start"]
    env = made[1][1]
    assert env == {
        "OCF_ROOT": str(root),
        "OCF_FUNCTIONS_DIR": f"{root}/lib/heartbeat",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "0",
        "OCF_RESOURCE_TYPE": "Fake",
        "OCF_RESOURCE_PROVIDER": "hsv",
        "OCF_RESOURCE_INSTANCE": "svc",
        "OCF_RESKEY_CRM_meta_on_node": "alpha",
        "OCF_RESKEY_ip": "192.0.2.7",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "OCF_RESKEY_CRM_meta_interval": "0",
        "HA_RSCTMP": str(root / "rsc-alpha"),
    }
    # A recurring monitor carries its interval; a probe is a monitor with interval 0.
    assert (
        made[2][1]["OCF_RESKEY_CRM_meta_interval"],
        made[2][1]["OCF_RESKEY_CRM_meta_timeout"],
    ) == (
        "2500",
        "4000",
    )
    assert made[3][1]["OCF_RESKEY_CRM_meta_interval"] == "0"
    assert (root / "rsc-alpha").is_dir()


def test_a_failed_validate_all_fails_the_start(root: Path) -> None:
    set_code(root, "validate-all", 6)
    result = act(ocf_adapter(fake(root)), "start")
    assert (result.outcome, result.detail) == (
        "failed",
        "validate-all: 6 not configured: parameter 'ip' looks wrong",
    )
    assert "start" not in [c["action"] for c in calls(root)]


def test_a_timed_out_agent_is_killed(root: Path) -> None:
    agent = root / "resource.d" / "hsv" / "Slow"
    script(
        agent,
        "import os, sys, time\nfrom pathlib import Path\n"
        "if sys.argv[1] == 'meta-data':\n"
        "    print('<resource-agent><parameters/></resource-agent>')\n"
        "    sys.exit(0)\n"
        "(Path(__file__).resolve().parents[2] / 'slow-pid').write_text(str(os.getpid()))\n"
        "time.sleep(600)\n",
    )
    a = ocf_adapter({"agent": "hsv:Slow", "ocf_root": str(root), "validate": False})
    with pytest.raises(TimeoutError):
        act(a, "monitor", timeout=1.0)
    pid = int((root / "slow-pid").read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not Path(f"/proc/{pid}").exists()


# ---- the real agents of Debian's resource-agents


@needs_agents
def test_dummy_start_monitor_stop_probe(tmp_path: Path) -> None:
    rsctmp = tmp_path / "rsc"
    a = ocf_adapter({"agent": "ocf:heartbeat:Dummy", "rsctmp": str(rsctmp)})
    state = rsctmp / "Dummy-svc.state"
    probe = act(a, "probe")
    assert probe.outcome == "stopped", probe.detail
    assert not state.exists()
    started = act(a, "start")
    assert (started.outcome, started.detail) == ("ok", "0 success")
    assert state.exists()
    assert act(a, "monitor").outcome == "ok"
    assert act(a, "probe").outcome == "ok"
    # Someone removes the state: the agent reports it not running, the monitor fails.
    state.unlink()
    assert act(a, "monitor").outcome == "stopped"
    assert act(a, "start").outcome == "ok"
    assert act(a, "stop").outcome == "ok"
    assert not state.exists()
    assert act(a, "probe").outcome == "stopped"
    assert act(a, "stop").outcome == "ok"  # stopping what is stopped is fine


@needs_agents
def test_real_meta_data_rejects_unknown_and_missing_parameters() -> None:
    ocf._META_DATA.clear()
    assert parse({"agent": "heartbeat:Dummy", "params": {"fake": "x"}}).params == {"fake": "x"}
    with pytest.raises(ParamError, match="agent heartbeat:Dummy has no parameter 'colour'"):
        parse({"agent": "heartbeat:Dummy", "params": {"colour": "blue"}})
    with pytest.raises(ParamError, match="agent heartbeat:IPaddr2 requires parameter 'ip'"):
        parse({"agent": "heartbeat:IPaddr2", "params": {"nic": "eth0"}})


CLUSTER = """\
[cluster]
name = "ocf"
secret_file = "/etc/hotstandby/secret"

[[node]]
name = "alpha"

[[node]]
name = "beta"

[[link]]
name = "private"
kind = "udp"
[link.endpoints]
alpha = "198.51.100.1"
beta = "198.51.100.2"

[[resource]]
name = "vip"
kind = "ocf"
[resource.params]
agent = "heartbeat:IPaddr2"
params = { nic = "eth0", cidr_netmask = "24" }

[[resource]]
name = "state"
kind = "ocf"
[resource.params]
agent = "heartbeat:Dummy"
params = { state = "/run/x", colour = "blue" }

[arbitration]
mode = "none"
"""


@needs_agents
def test_check_names_the_resource_the_key_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ocf._META_DATA.clear()
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER)
    assert main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    lines = CLUSTER.splitlines()
    vip = lines.index('params = { nic = "eth0", cidr_netmask = "24" }') + 1
    state = lines.index('params = { state = "/run/x", colour = "blue" }') + 1
    assert (
        f"{path}:{vip}: resource 'vip': key 'params': agent heartbeat:IPaddr2 requires "
        "parameter 'ip'" in err
    )
    assert (
        f"{path}:{state}: resource 'state': key 'params': agent heartbeat:Dummy has no "
        "parameter 'colour' (it takes fake, state)" in err
    )
