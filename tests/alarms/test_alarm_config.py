"""The [[alarm]] tables: every channel kind's keys, and errors naming the alarm and key."""

from __future__ import annotations

import io
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from hotstandby.agent.alarms import AlarmConfigError, parse_channels, validate
from hotstandby.agent.alarms.command import CommandParams
from hotstandby.agent.alarms.config import parse_channel
from hotstandby.agent.alarms.smtp import EmailParams
from hotstandby.agent.alarms.syslog import FACILITIES, SyslogParams
from hotstandby.agent.alarms.webhook import WebhookParams
from hotstandby.cli.check_cmd import check
from hotstandby.config import load, load_text
from hotstandby.core.messages import Severity

from ..config.config_samples import BASE


def channel(**raw: Any) -> Any:
    """One [[alarm]] table parsed."""
    return parse_channel(0, str(raw.get("name", raw.get("kind", "x"))), MappingProxyType(raw))


def error_of(**raw: Any) -> str:
    """The error one bad [[alarm]] table gives."""
    with pytest.raises(AlarmConfigError) as caught:
        channel(**raw)
    return str(caught.value)


def test_common_keys_have_defaults_and_are_read() -> None:
    spec = channel(kind="syslog")
    assert (spec.name, spec.timeout, spec.retries, spec.backoff, spec.queue) == (
        "syslog",
        10.0,
        5,
        1.0,
        100,
    )
    assert spec.filter.min_severity is Severity.INFO and not spec.filter.kinds
    spec = channel(
        kind="syslog",
        name="ops",
        min_severity="warning",
        kinds=["takeover", "fence"],
        timeout="2s",
        retries=0,
        backoff="100ms",
        max_backoff="1s",
        queue=3,
    )
    assert spec.name == "ops" and spec.filter.kinds == {"takeover", "fence"}
    assert (spec.timeout, spec.retries, spec.backoff, spec.max_backoff, spec.queue) == (
        2.0,
        0,
        0.1,
        1.0,
        3,
    )


def test_each_channel_kind_reads_its_own_keys() -> None:
    assert channel(kind="command", argv=["/bin/true", "x"], env={"A": 1}).params == CommandParams(
        ("/bin/true", "x"), (("A", "1"),)
    )
    assert channel(kind="webhook", url="http://192.0.2.1/h", headers={"X": "y"}).params == (
        WebhookParams("http://192.0.2.1/h", (("X", "y"),))
    )
    mail = channel(
        kind="email",
        to=["a@example.org", "b@example.org"],
        server="smtp.example.org",
        starttls=True,
        username="u",
        password_file="/etc/pw",
    ).params
    assert mail == EmailParams(
        ("a@example.org", "b@example.org"),
        "smtp.example.org",
        587,
        "",
        True,
        "",
        "u",
        "/etc/pw",
    )
    assert channel(kind="email", to="a@example.org").params.port == 25
    assert channel(kind="syslog").params == SyslogParams()
    udp = channel(kind="syslog", address="192.0.2.5:1514", facility="local3").params
    assert (udp.host, udp.port, udp.facility) == ("192.0.2.5", 1514, FACILITIES["local3"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "alarm 'x': key 'kind' is required"),
        ({"kind": "pager"}, 'key \'kind\': expected "command" | "webhook"'),
        ({"kind": "syslog", "colour": 1}, "key 'colour': unknown (an alarm of kind syslog takes"),
        ({"kind": "syslog", "min_severity": "loud"}, "key 'min_severity': expected"),
        ({"kind": "syslog", "kinds": ["takeover", "nap"]}, "key 'kinds': expected alarm kinds"),
        ({"kind": "syslog", "timeout": "0s"}, "key 'timeout': expected a duration above 0"),
        ({"kind": "syslog", "queue": 0}, "key 'queue': expected an integer from 1"),
        ({"kind": "command"}, "key 'argv' is required"),
        ({"kind": "command", "argv": ["page"]}, "key 'argv': expected an absolute path"),
        ({"kind": "webhook", "url": "ftp://x/"}, "key 'url': expected an http:// or https:// URL"),
        ({"kind": "email"}, "key 'to' is required"),
        ({"kind": "email", "to": "nobody"}, "key 'to': expected an email address"),
        (
            {"kind": "email", "to": "a@example.org", "username": "u"},
            "key 'password_file' is required",
        ),
        (
            {"kind": "email", "to": "a@example.org", "password_file": "/p"},
            "key 'username' is required",
        ),
        ({"kind": "syslog", "facility": "mail2"}, "key 'facility': expected a syslog facility"),
        ({"kind": "syslog", "address": "192.0.2.5"}, "key 'address': expected a UDP"),
        ({"kind": "syslog", "socket": "dev/log"}, "key 'socket': expected an absolute path"),
    ],
)
def test_bad_tables_name_the_alarm_and_the_key(raw: dict[str, Any], message: str) -> None:
    assert message in error_of(name="x", **raw)


ALARMS = """
[[alarm]]
kind = "webhook"
url = "http://192.0.2.1/hook"

[[alarm]]
kind = "webhook"
url = "https://192.0.2.2/hook"

[[alarm]]
kind = "command"
argv = ["/bin/true"]
"""


def test_channels_are_named_after_their_kind_numbered_when_repeated() -> None:
    cluster = load_text(BASE + ALARMS)
    assert [c.name for c in parse_channels(cluster)] == [
        "syslog",
        "webhook",
        "webhook.2",
        "command",
    ]
    assert validate(cluster) == []


def test_two_channels_may_not_share_a_name() -> None:
    text = BASE + ALARMS.replace('kind = "command"', 'kind = "command"\nname = "webhook"')
    errors = validate(load_text(text))
    assert [str(e) for e in errors] == ["alarm 'webhook': key 'name': is used by another alarm"]


def test_check_reports_a_bad_alarm_key_at_its_line(tmp_path: Path) -> None:
    text = BASE + ALARMS.replace('url = "https://192.0.2.2/hook"', 'url = "192.0.2.2"')
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), as_json=False, out=out, err=err, node="alpha") == 2
    line = text.splitlines().index('url = "192.0.2.2"') + 1
    assert (
        f"{path}:{line}: alarm 'webhook.2': key 'url': expected an http:// or https:// URL "
        '("https://hooks.example.org/ha"), found "192.0.2.2"'
    ) in err.getvalue().splitlines()


def test_the_example_s_alarms_are_valid() -> None:
    example = Path(__file__).parents[2] / "src/hotstandby/examples/classic-database.toml"
    cluster = load(example)
    assert [c.kind for c in parse_channels(cluster)] == ["syslog", "email"]
