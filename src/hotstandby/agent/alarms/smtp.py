"""The email channel: one message per alarm over SMTP (smtplib in a worker thread).

Keys: `to` (required: an address or a list), `server` (default "localhost"), `port`
(default 25, or 587 with STARTTLS), `from` (default hotstandby@<this host>), `starttls`
(true: upgrade the connection before anything else, and refuse to go on without it;
default false), `ca_file` (an absolute path: trust this CA for STARTTLS instead of the
system's), `username` and `password_file` (log in; the password is read from the file,
an absolute path, at every delivery, so it never sits in the cluster file). The message's
subject is the node, severity, kind and message; its body the same in words, then JSON.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError, in_thread
from hotstandby.agent.resources.params import ParamReader

KEYS = frozenset(
    {"to", "server", "port", "from", "starttls", "ca_file", "username", "password_file"}
)


@dataclass(frozen=True)
class EmailParams:
    """Where and how to send alarm mail."""

    to: tuple[str, ...]
    server: str = "localhost"
    port: int = 25
    sender: str = ""  # empty: hotstandby@<this host>
    starttls: bool = False
    ca_file: str = ""
    username: str = ""
    password_file: str = ""


def _address(r: ParamReader, key: str, value: object) -> str:
    if not isinstance(value, str) or "@" not in value or any(c in value for c in " \r\n<>"):
        raise r.error(key, 'an email address ("oncall@example.org")', value)
    return value


def parse(r: ParamReader) -> EmailParams:
    """Read the email channel's keys."""
    raw_to = r.raw.get("to")
    if raw_to is None:
        raise r.missing("to", "an email address or a list of them")
    items = list(raw_to) if isinstance(raw_to, list | tuple) else [raw_to]
    if not items:
        raise r.error("to", "an email address or a list of them", raw_to)
    to = tuple(_address(r, "to", item) for item in items)
    starttls = r.boolean("starttls", False)
    username = r.raw.get("username")
    password_file = r.absolute_path("password_file", required=username is not None)
    if password_file and username is None:
        raise r.missing("username", "the login name that goes with password_file")
    return EmailParams(
        to=to,
        server=r.string("server", "localhost"),
        port=r.integer("port", 587 if starttls else 25, 1, 65535),
        sender=_address(r, "from", r.raw["from"]) if "from" in r.raw else "",
        starttls=starttls,
        ca_file=r.absolute_path("ca_file", required=False),
        username=r.string("username") if username is not None else "",
        password_file=password_file,
    )


class EmailChannel:
    """Sends each alarm as one message."""

    def __init__(self, params: EmailParams, cluster: str, timeout: float) -> None:
        self.params = params
        self.cluster = cluster
        self.timeout = timeout
        self.sender = params.sender or f"hotstandby@{socket.getfqdn()}"

    def message(self, alarm: Alarm) -> EmailMessage:
        """The message for an alarm."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.params.to)
        msg["Subject"] = f"[hotstandby {self.cluster}] {alarm.summary()}"[:200]
        msg["Date"] = formatdate(alarm.at)
        msg["Message-ID"] = make_msgid("hotstandby")
        words = [
            alarm.summary(),
            f"rule: {alarm.rule}" + (f" ({alarm.detail})" if alarm.detail else ""),
            f"epoch: {alarm.epoch}",
            f"time: {alarm.as_json()['time']}",
            "",
            json.dumps(alarm.as_json(), indent=2),
        ]
        msg.set_content("\n".join(words) + "\n")
        return msg

    async def deliver(self, alarm: Alarm) -> None:
        """Send the message; DeliveryError when the server does not take it."""
        await in_thread(self._send, self.message(alarm))

    def _send(self, msg: EmailMessage) -> None:
        p = self.params
        try:
            with smtplib.SMTP(p.server, p.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if p.starttls:
                    context = ssl.create_default_context(cafile=p.ca_file or None)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if p.username:
                    with open(p.password_file, encoding="utf-8") as f:
                        password = f.read().strip()
                    smtp.login(p.username, password)
                smtp.send_message(msg)
        except smtplib.SMTPException as err:
            raise DeliveryError(f"{p.server}:{p.port}: {type(err).__name__}: {err}") from None
        except (OSError, ssl.SSLError) as err:
            raise DeliveryError(f"{p.server}:{p.port}: {err}") from None


def build(params: EmailParams, cluster: str, node: str, timeout: float) -> Channel:
    """The channel for these parameters."""
    return EmailChannel(params, cluster, timeout)
