"""The syslog channel: one datagram per alarm to the local syslog socket or a UDP server.

Keys: `socket` (an absolute path to a Unix datagram socket; default /dev/log, where
journald or rsyslog listen) or `address` ("host:port", UDP), `facility` (default "daemon";
kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, local0-7),
`tag` (default "hotstandby"). The format is RFC 5424 (`<PRI>1 TIME HOST TAG PID ALARM
- MSG`, with the alarm's fields in the message), which rsyslog, syslog-ng and journald
(since systemd 247) parse; the severity maps to crit, warning and info.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError, in_thread
from hotstandby.agent.resources.params import ParamReader
from hotstandby.core.messages import Severity

KEYS = frozenset({"socket", "address", "facility", "tag"})
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
LEVELS = {Severity.CRITICAL: 2, Severity.WARNING: 4, Severity.INFO: 6}
MAX_DATAGRAM = 2048


@dataclass(frozen=True)
class SyslogParams:
    """Where to send, and as which facility and tag."""

    socket: str = "/dev/log"
    host: str = ""  # with port: UDP instead of the socket
    port: int = 514
    facility: int = FACILITIES["daemon"]
    tag: str = "hotstandby"


def parse(r: ParamReader) -> SyslogParams:
    """Read the syslog channel's keys."""
    facility = r.string("facility", "daemon")
    if facility not in FACILITIES:
        raise r.error("facility", f"a syslog facility ({', '.join(FACILITIES)})", facility)
    tag = r.string("tag", "hotstandby")
    if len(tag) > 48 or not tag.isprintable() or " " in tag:
        raise r.error("tag", "a word of at most 48 printable characters", tag)
    if "socket" in r.raw and "address" in r.raw:
        raise r.error("address", "either socket or address, not both", r.raw["address"])
    if "address" in r.raw:
        address = r.string("address")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise r.error("address", 'a UDP "host:port" ("192.0.2.5:514")', address)
        return SyslogParams(
            host=host.strip("[]"), port=int(port), facility=FACILITIES[facility], tag=tag
        )
    path = r.absolute_path("socket", required=False, default="/dev/log")
    return SyslogParams(socket=path, facility=FACILITIES[facility], tag=tag)


def format_5424(alarm: Alarm, facility: int, tag: str, host: str, pid: int) -> bytes:
    """The alarm as one RFC 5424 syslog message."""
    pri = facility * 8 + LEVELS[alarm.severity]
    stamp = datetime.datetime.fromtimestamp(alarm.at, datetime.UTC)
    time = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    text = (
        f"{alarm.summary()} [rule {alarm.rule}"
        + (f": {alarm.detail}" if alarm.detail else "")
        + f"; cluster {alarm.cluster}, epoch {alarm.epoch}]"
    )
    line = f"<{pri}>1 {time} {host or '-'} {tag} {pid} ALARM - {text}"
    return line.encode("utf-8", errors="replace")[:MAX_DATAGRAM]


class SyslogChannel:
    """Sends each alarm as one datagram."""

    def __init__(self, params: SyslogParams, timeout: float) -> None:
        self.params = params
        self.timeout = timeout
        self.host = socket.gethostname()

    async def deliver(self, alarm: Alarm) -> None:
        """Send the datagram; DeliveryError when the socket refuses it."""
        p = self.params
        data = format_5424(alarm, p.facility, p.tag, self.host, os.getpid())
        await in_thread(self._send, data)

    def _send(self, data: bytes) -> None:
        p = self.params
        try:
            if p.host:
                family = socket.AF_INET6 if ":" in p.host else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(self.timeout)
                    s.sendto(data, (p.host, p.port))
            else:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                    # A full receive queue blocks a Unix datagram send: bounded here.
                    s.settimeout(self.timeout)
                    s.sendto(data, p.socket)
        except OSError as err:
            where = f"{p.host}:{p.port}" if p.host else p.socket
            raise DeliveryError(f"{where}: {err.strerror or err}") from None


def build(params: SyslogParams, cluster: str, node: str, timeout: float) -> Channel:
    """The channel for these parameters."""
    return SyslogChannel(params, timeout)
