"""The fence method schema: what a [[arbitration.fence]] table may say, and the errors."""

from __future__ import annotations

from typing import Any

import pytest

from hotstandby.agent.fence import FenceAgents, FenceConfigError, parse_methods
from hotstandby.config.loader import load_text

from .fakes import cluster

TOML = """\
[cluster]
name = "db"
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

[arbitration]
mode = "fence"

[[arbitration.fence]]
agent = "ipmilan"
username = "admin"
lanplus = true
password_file = "/etc/hotstandby/ipmi.pass"
timeout = "4s"
[arbitration.fence.targets.alpha]
ip = "192.0.2.61"
[arbitration.fence.targets.beta]
ip = "192.0.2.62"

[[arbitration.fence]]
agent = "/usr/sbin/fence_apc_snmp"
ip = "192.0.2.70"
[arbitration.fence.plugs]
alpha = "3"
beta = "4"
"""


def test_the_documented_schema_loads_from_toml() -> None:
    ipmi, pdu = parse_methods(load_text(TOML))
    assert ipmi.program == "fence_ipmilan"
    assert (ipmi.action, ipmi.verify, ipmi.timeout) == ("off", True, 4.0)
    assert ipmi.password_file == "/etc/hotstandby/ipmi.pass"
    assert ipmi.params_for("beta") == {"username": "admin", "lanplus": "1", "ip": "192.0.2.62"}
    assert pdu.program == "/usr/sbin/fence_apc_snmp"
    assert pdu.timeout == 10.0  # timers.fence_timeout by default
    assert pdu.params_for("alpha") == {"ip": "192.0.2.70", "plug": "3"}
    assert pdu.label == "method 2 (fence_apc_snmp)"


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ({"agent": ""}, r"fence\[1\]\.agent: expected the fence agent's name"),
        ({"agent": "bin/fence_x"}, r"agent: a name or an absolute path"),
        ({"agent": "x", "action": "on"}, r'action: expected "off" or "reboot"'),
        ({"agent": "x", "action": "reboot", "verify": True}, r"reboot cannot be verified"),
        ({"agent": "x", "verify": "yes"}, r"verify: expected true or false"),
        ({"agent": "x", "timeout": 5}, r"timeout: expected a duration .* without a unit"),
        ({"agent": "x", "timeout": "0s"}, r"timeout: expected more than 0s"),
        ({"agent": "x", "password": "hunter2"}, r"password: plain secrets are not accepted"),
        ({"agent": "x", "passwd": "hunter2"}, r"passwd: plain secrets"),
        ({"agent": "x", "snmp_priv_passwd": "p"}, r"snmp_priv_passwd: plain secrets"),
        ({"agent": "x", "password_file": "ipmi.pass"}, r"password_file: expected an absolute"),
        ({"agent": "x", "port": "3"}, r"port: port is the old name of plug"),
        ({"agent": "x", "nodename": "a"}, r"nodename: set by hotstandby"),
        ({"agent": "x", "ip": "a\nplug=9"}, r"ip: expected one line, found a line break"),
        ({"agent": "x", "ip": ["a"]}, r"ip: expected a string, number or boolean"),
        ({"agent": "x", "bad name": "1"}, r"bad name: not a fence agent parameter name"),
        ({"agent": "x", "plugs": {"gamma": "1"}}, r"plugs\.gamma: no node 'gamma'"),
        ({"agent": "x", "plugs": "1"}, r"plugs: expected a table"),
        ({"agent": "x", "targets": {"beta": {"password": "p"}}}, r"targets\.beta\.password"),
    ],
)
def test_bad_methods_are_refused(method: dict[str, Any], message: str) -> None:
    with pytest.raises(FenceConfigError, match=message):
        FenceAgents(cluster(method), "alpha")


def test_secret_scripts_are_fine() -> None:
    (method,) = parse_methods(cluster({"agent": "x", "password_script": "/usr/bin/pass-ipmi"}))
    assert method.params == {"password_script": "/usr/bin/pass-ipmi"}
