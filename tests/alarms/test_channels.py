"""Each channel against a real receiver the test starts: an HTTP server, an SMTP server
(aiosmtpd: plain, with a login, with STARTTLS), a Unix datagram socket as /dev/log is,
and a program writing what it got to a file."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
from pathlib import Path

import pytest

from hotstandby.agent.alarms import DeliveryError, Dispatcher
from hotstandby.agent.alarms.command import CommandChannel, CommandParams
from hotstandby.agent.alarms.smtp import EmailChannel, EmailParams
from hotstandby.agent.alarms.syslog import FACILITIES, SyslogChannel, SyslogParams
from hotstandby.agent.alarms.webhook import WebhookChannel, WebhookParams

from .helpers import alarm, spec, until, wait_for
from .receivers import HttpReceiver, SmtpReceiver, self_signed, syslog_socket

RECORD = [
    sys.executable,
    "-c",
    "import json, os, sys; open(sys.argv[1], 'w').write(json.dumps({'stdin': sys.stdin.read(), "
    "'env': {k: v for k, v in os.environ.items() if k.startswith('HOTSTANDBY')}, "
    "'argv': sys.argv[2:]}))",
]


def deliver(channel: object) -> None:
    """Deliver one takeover alarm through the channel, as the dispatcher would."""
    asyncio.run(asyncio.wait_for(channel.deliver(alarm()), 10))  # type: ignore[attr-defined]


# ------------------------------------------------------------ webhook


def test_webhook_posts_the_alarm_as_json_with_the_configured_headers() -> None:
    with HttpReceiver() as http:
        deliver(WebhookChannel(WebhookParams(http.url, (("Authorization", "Bearer t"),)), 5.0))
    [post] = http.posts
    assert post["path"] == "/alarm"
    assert post["headers"]["Authorization"] == "Bearer t"
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["body"] == alarm().as_json()
    assert post["body"]["kind"] == "takeover" and post["body"]["node"] == "beta"
    assert post["body"]["time"] == "2023-11-14T22:13:20.250Z"


def test_webhook_answering_500_then_200_is_retried_and_delivered() -> None:
    records: list[str] = []

    async def body(url: str) -> Dispatcher:
        d = Dispatcher(
            [(spec("webhook", url=url, retries=3), WebhookChannel(WebhookParams(url), 5.0))],
            lambda kind, message, rule="", **data: records.append(message),
        )
        d.start()
        d.raise_alarm(alarm())
        await until(lambda: d.status()["webhook"]["delivered"] == 1, "the retried delivery")
        await d.close()
        return d

    with HttpReceiver(statuses=[500]) as http:
        d = asyncio.run(body(http.url))
    assert [p["status"] for p in http.posts] == [500, 200]
    assert http.posts[0]["body"] == http.posts[1]["body"]
    status = d.status()["webhook"]
    assert (status["delivered"], status["failed"]) == (1, 1)
    assert status["last_error"].endswith("HTTP 500 Internal Server Error")
    assert any("HTTP 500" in r for r in records)


def test_webhook_with_nobody_listening_is_a_delivery_error() -> None:
    with HttpReceiver() as http:
        url = http.url
    with pytest.raises(DeliveryError, match="Connection refused"):
        deliver(WebhookChannel(WebhookParams(url), 2.0))


# ------------------------------------------------------------ email


def test_email_is_sent_plainly() -> None:
    with SmtpReceiver() as smtp:
        params = EmailParams(("oncall@example.org",), "127.0.0.1", smtp.port, "ha@example.org")
        deliver(EmailChannel(params, "lab", 5.0))
    [mail] = smtp.messages
    assert mail["from"] == "ha@example.org" and mail["to"] == ["oncall@example.org"]
    assert mail["subject"] == "[hotstandby lab] beta: CRITICAL takeover: beta takes over (epoch 2)"
    assert "rule: takeover.fenced (fence of alpha confirmed by the agent)" in mail["body"]
    assert json.loads(mail["body"].split("\n\n", 1)[1]) == alarm().as_json()
    assert not mail["tls"] and not mail["login"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_email_logs_in_with_the_password_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    with SmtpReceiver(login=("ha", "s3cret")) as smtp:
        params = EmailParams(
            ("oncall@example.org",), "127.0.0.1", smtp.port, "ha@example.org",
            username="ha", password_file=str(secret),
        )  # fmt: skip
        deliver(EmailChannel(params, "lab", 5.0))
        assert [m["login"] for m in smtp.messages] == [True]
        secret.write_text("wrong\n")
        with pytest.raises(DeliveryError, match="SMTPAuthenticationError"):
            deliver(EmailChannel(params, "lab", 5.0))
    assert len(smtp.messages) == 1


def test_email_over_starttls_with_a_login(tmp_path: Path) -> None:
    made = self_signed(tmp_path)
    if made is None:
        pytest.skip("openssl is not installed: no certificate for the STARTTLS test")
    cert, key = made
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secret = tmp_path / "password"
    secret.write_text("s3cret")
    with SmtpReceiver(host="127.0.0.1", login=("ha", "s3cret"), tls=context) as smtp:
        params = EmailParams(
            ("oncall@example.org",), "127.0.0.1", smtp.port, "ha@example.org",
            starttls=True, ca_file=str(cert), username="ha", password_file=str(secret),
        )  # fmt: skip
        deliver(EmailChannel(params, "lab", 5.0))
        # Without trusting the certificate, STARTTLS fails and nothing is sent in clear.
        untrusted = EmailParams(
            ("oncall@example.org",), "127.0.0.1", smtp.port, "ha@example.org", starttls=True,
            username="ha", password_file=str(secret),
        )  # fmt: skip
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            deliver(EmailChannel(untrusted, "lab", 5.0))
    assert [(m["tls"], m["login"]) for m in smtp.messages] == [(True, True)]


# ------------------------------------------------------------ syslog


def test_syslog_sends_one_rfc5424_datagram_to_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with syslog_socket(path) as receiver:
        params = SyslogParams(socket=str(path), facility=FACILITIES["local3"], tag="ha")
        deliver(SyslogChannel(params, 2.0))
        data = receiver.recv(4096).decode()
    pri = FACILITIES["local3"] * 8 + 2  # critical -> crit
    head, _, text = data.partition(" ALARM - ")
    fields = head.split(" ")
    assert fields[0] == f"<{pri}>1" and fields[1] == "2023-11-14T22:13:20.250Z"
    assert fields[3:5] == ["ha", str(os.getpid())]
    assert text.startswith("beta: CRITICAL takeover: beta takes over (epoch 2) [rule takeover")


def test_syslog_to_a_missing_socket_is_a_delivery_error(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="No such file"):
        deliver(SyslogChannel(SyslogParams(socket=str(tmp_path / "none")), 2.0))


def test_syslog_over_udp(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5.0)
        port = receiver.getsockname()[1]
        deliver(SyslogChannel(SyslogParams(host="127.0.0.1", port=port), 2.0))
        data = receiver.recv(4096).decode()
    assert data.startswith(f"<{FACILITIES['daemon'] * 8 + 2}>1 ")


# ------------------------------------------------------------ command


def test_command_gets_the_alarm_in_its_environment_and_as_json_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    params = CommandParams((*RECORD, str(out), "--team", "dba"), (("PAGER_TEAM", "dba"),))
    deliver(CommandChannel(params))
    got = json.loads(out.read_text())
    assert json.loads(got["stdin"]) == alarm().as_json()
    assert got["argv"] == ["--team", "dba"]
    env = got["env"]
    assert env["HOTSTANDBY_ALARM_KIND"] == "takeover"
    assert env["HOTSTANDBY_ALARM_SEVERITY"] == "critical"
    assert env["HOTSTANDBY_ALARM_MESSAGE"] == "beta takes over (epoch 2)"
    assert env["HOTSTANDBY_ALARM_EPOCH"] == "2"
    assert env["HOTSTANDBY_ALARM_NODE"] == "beta" and env["HOTSTANDBY_ALARM_CLUSTER"] == "lab"


def test_a_failing_command_is_a_delivery_error_with_its_last_words() -> None:
    argv = (sys.executable, "-c", "import sys; print('no pager', file=sys.stderr); sys.exit(3)")
    with pytest.raises(DeliveryError, match="exited with status 3: no pager"):
        deliver(CommandChannel(CommandParams(argv)))


def test_a_command_past_its_timeout_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = (
        sys.executable,
        "-c",
        "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
        str(pid_file),
    )

    async def body() -> Dispatcher:
        d = Dispatcher(
            [(spec("command", argv=["/bin/true"], timeout="300ms", retries=0),
              CommandChannel(CommandParams(argv)))],
            lambda *a, **k: None,
        )  # fmt: skip
        d.start()
        d.raise_alarm(alarm())
        await until(lambda: d.status()["command"]["given_up"] == 1, "the timeout")
        await d.close()
        return d

    d = asyncio.run(body())
    assert d.status()["command"]["last_error"] == "no answer within 0.3s"
    pid = int(pid_file.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the command killed")
