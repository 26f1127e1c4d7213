"""A service resource's parameters: every mistake is an error naming the resource and key."""

from __future__ import annotations

from typing import Any

import pytest

from hotstandby.agent.resources import ParamError, service
from hotstandby.core.cluster import ResourceKind

from .svc_helpers import resource


def parse(params: dict[str, Any], **timeouts: float) -> service.ServiceParams:
    """The params of a service resource "svc" on node alpha."""
    return service.parse_params(resource(ResourceKind.SERVICE, params, **timeouts), "alpha")


def test_a_unit_gets_its_suffix() -> None:
    assert parse({"unit": "nginx"}).unit == "nginx.service"
    assert parse({"unit": "pg@15-main.service"}).unit == "pg@15-main.service"


def test_command_mode_defaults() -> None:
    p = parse({"start": ["/usr/bin/sleep", "100"]})
    assert p.start == ("/usr/bin/sleep", "100")
    assert (p.daemon, p.stop, p.monitor, p.not_running_code) == (False, (), (), 3)
    assert (p.stop_grace, p.settle, p.cwd, p.user, p.log) == (5.0, 0.5, "/", None, None)


def test_node_names_fill_env_and_log() -> None:
    p = parse({"start": ["/bin/true"], "env": {"DATA": "/srv/{node}"}, "log": "/var/log/{node}"})
    assert p.env == {"DATA": "/srv/alpha"}
    assert p.log == "/var/log/alpha"


@pytest.mark.parametrize(
    ("params", "key", "words"),
    [
        ({}, None, "give 'unit'"),
        ({"unit": "x", "start": ["/bin/true"]}, None, "not both"),
        ({"unit": "x", "user": "pg"}, "user", "goes with 'start'"),
        ({"unit": "bad name"}, "unit", "a systemd unit name"),
        ({"start": "/bin/true"}, "start", "an array of strings"),
        ({"start": ["true"]}, "start", "absolute path"),
        ({"start": []}, "start", "an array"),
        ({"start": ["/bin/true"], "daemon": True}, "stop", "is required"),
        ({"start": ["/bin/true"], "daemon": True, "stop": ["/bin/true"]}, "monitor", "required"),
        ({"start": ["/bin/true"], "not_running_code": 0}, "not_running_code", "1 to 255"),
        ({"start": ["/bin/true"], "not_running_code": 256}, "not_running_code", "0 to 255"),
        ({"start": ["/bin/true"], "stop_grace": "30s"}, "stop_grace", "stop_timeout (20s)"),
        ({"start": ["/bin/true"], "env": {"A-B": "1"}}, "env", "environment variable name"),
        ({"start": ["/bin/true"], "cwd": "srv"}, "cwd", "absolute path"),
        ({"start": ["/bin/true"], "restart": 1}, "restart", "unknown"),
    ],
)
def test_mistakes_name_the_key(params: dict[str, Any], key: str | None, words: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse(params)
    assert caught.value.key == key
    assert caught.value.resource == "svc"
    assert words in str(caught.value)


def test_host_risks_name_missing_programs_users_and_directories() -> None:
    r = resource(
        ResourceKind.SERVICE,
        {
            "start": ["/nonexistent/hsv-daemon"],
            "user": "hsv-no-such-user",
            "cwd": "/nonexistent/hsv-dir",
        },
    )
    risks = dict(service.host_risks(r, "alpha"))
    assert "not an executable program" in risks["start"]
    assert "no user 'hsv-no-such-user'" in risks["user"]
    assert "no directory" in risks["cwd"]
    good = resource(ResourceKind.SERVICE, {"start": ["/bin/sleep", "1"]})
    assert service.host_risks(good, "alpha") == []
