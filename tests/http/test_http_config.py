"""The [http] table: off by default, per-node or shared listen addresses, located errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hotstandby.cli.check_cmd import check
from hotstandby.config import ConfigError, load_text
from hotstandby.config.errors import format_key
from hotstandby.config.http import split_listen

from ..config.config_samples import BASE, line_with
from ..config.test_config_check_cmd import HEARTBEAT_ONLY

HTTP = """
[http]
listen = { alpha = "192.0.2.11:8080", beta = "[2001:db8::12]:8080" }
token_file = "/etc/hotstandby/http-token"
metrics = false
"""


def test_no_table_means_no_http_interface() -> None:
    assert load_text(BASE).http is None


def test_per_node_listen_token_and_metrics() -> None:
    http = load_text(BASE + HTTP).http
    assert http is not None
    assert dict(http.listen) == {"alpha": "192.0.2.11:8080", "beta": "[2001:db8::12]:8080"}
    assert http.token_file == "/etc/hotstandby/http-token"
    assert http.metrics is False


def test_one_listen_for_every_node_and_defaults() -> None:
    http = load_text(BASE + '[http]\nlisten = "0.0.0.0:9100"\n').http
    assert http is not None
    assert dict(http.listen) == {"alpha": "0.0.0.0:9100", "beta": "0.0.0.0:9100"}
    assert http.token_file is None
    assert http.metrics is True


@pytest.mark.parametrize(
    ("body", "key", "snippet", "expected", "found"),
    [
        ('listn = "0.0.0.0:1"', "http.listn", "listn =", "one of the keys", "unknown key"),
        ("metrics = true", "http.listen", "[http]", "a table of node name", "key is missing"),
        ('listen = "192.0.2.11"', "http.listen", "listen =", '"address:port"', '"192.0.2.11"'),
        ('listen = "host:80"', "http.listen", "listen =", "an IP address", '"host:80"'),
        ('listen = "2001:db8::1:80"', "http.listen", "listen =", "in brackets", "2001:db8::1:80"),
        ('listen = "192.0.2.1:0"', "http.listen", "listen =", "address:port", "192.0.2.1:0"),
        ("listen = 8080", "http.listen", "listen =", "a table of node name", "the number 8080"),
        ("listen = {}", "http.listen", "listen =", "a table of node name", "an empty table"),
        (
            'listen = { gamma = "192.0.2.13:80" }',
            "http.listen.gamma",
            "listen =",
            "a node of this cluster (alpha, beta)",
            "node 'gamma'",
        ),
        (
            'listen = "192.0.2.1:80"\ntoken_file = "token"',
            "http.token_file",
            "token_file =",
            "an absolute path",
            '"token"',
        ),
        (
            'listen = "192.0.2.1:80"\nmetrics = "yes"',
            "http.metrics",
            "metrics =",
            "true or false",
            '"yes"',
        ),
    ],
)
def test_bad_http_table_is_refused_at_its_line(
    body: str, key: str, snippet: str, expected: str, found: str
) -> None:
    text = BASE + "\n[http]\n" + body + "\n"
    with pytest.raises(ConfigError) as info:
        load_text(text, "c.toml")
    error = info.value
    assert format_key(error.key) == key
    assert error.line == line_with(text, snippet)
    assert expected in error.expected
    assert found in error.found


def test_split_listen() -> None:
    assert split_listen("192.0.2.1:80") == ("192.0.2.1", 80)
    assert split_listen("[::]:8080") == ("::", 8080)
    assert split_listen("[192.0.2.1]:80") is None
    assert split_listen("192.0.2.1:65536") is None
    assert split_listen(":80") is None


def test_check_shows_the_http_interface(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(HEARTBEAT_ONLY.read_text() + HTTP)
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), as_json=False, out=out, err=err) == 0, err.getvalue()
    assert (
        "  http: alpha http://192.0.2.11:8080/, beta http://[2001:db8::12]:8080/; "
        "actions with the token in /etc/hotstandby/http-token; /metrics off"
    ) in out.getvalue()
    out = io.StringIO()
    assert check(str(path), as_json=True, out=out, err=err) == 0
    assert json.loads(out.getvalue())["cluster"]["http"]["listen"]["alpha"] == "192.0.2.11:8080"
    path.write_text(HEARTBEAT_ONLY.read_text())
    out = io.StringIO()
    check(str(path), as_json=False, out=out, err=err)
    assert "  http: off (no [http] table)" in out.getvalue()


def test_check_warns_of_a_token_file_this_node_cannot_use(tmp_path: Path) -> None:
    token = tmp_path / "token"
    http = f'[http]\nlisten = "192.0.2.1:8080"\ntoken_file = "{token}"\n'
    path = tmp_path / "c.toml"
    path.write_text(HEARTBEAT_ONLY.read_text() + http)
    out, err = io.StringIO(), io.StringIO()
    assert check(str(path), as_json=False, out=out, err=err, node="alpha") == 0
    text = " ".join(out.getvalue().split())
    line = line_with(path.read_text(), "token_file =")
    assert f"WARNING: {path}:{line}: http.token_file:" in text
    # (The long path may be wrapped at a hyphen.)
    assert "on alpha: token file /" in text
    assert "token: cannot be opened: No such file or directory; the agent runs without" in text
    token.write_text("a-good-long-token-value\n")
    token.chmod(0o600)
    out = io.StringIO()
    check(str(path), as_json=False, out=out, err=err, node="alpha")
    assert "http.token_file" not in out.getvalue()
