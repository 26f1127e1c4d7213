"""The webhook channel: an HTTP POST of the alarm as JSON.

Keys: `url` (required, http:// or https://), `headers` (a table of extra request headers,
e.g. an Authorization token). The standard library's urllib runs in a worker thread, with
the channel's timeout on the connection and on every read; a 2xx answer is delivered,
anything else (another status, a refused connection, a timeout) a failure to retry.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError, in_thread
from hotstandby.agent.resources.params import ParamReader

KEYS = frozenset({"url", "headers"})


@dataclass(frozen=True)
class WebhookParams:
    """Where to post and with which extra headers."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()


def parse(r: ParamReader) -> WebhookParams:
    """Read the webhook channel's keys."""
    url = r.string("url", required=True)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.error("url", 'an http:// or https:// URL ("https://hooks.example.org/ha")', url)
    return WebhookParams(url, tuple(sorted(r.string_table("headers").items())))


class WebhookChannel:
    """Posts each alarm to one URL."""

    def __init__(self, params: WebhookParams, timeout: float) -> None:
        self.params = params
        self.timeout = timeout

    async def deliver(self, alarm: Alarm) -> None:
        """POST the alarm; DeliveryError unless the answer is 2xx."""
        body = json.dumps(alarm.as_json()).encode()
        await in_thread(self._post, body)

    def _post(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "User-Agent": "hotstandby"}
        headers.update(dict(self.params.headers))
        request = urllib.request.Request(self.params.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as err:
            raise DeliveryError(f"{self.params.url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            why = getattr(err, "reason", err)
            raise DeliveryError(f"{self.params.url}: {why}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"{self.params.url}: HTTP {status}")


def build(params: WebhookParams, cluster: str, node: str, timeout: float) -> Channel:
    """The channel for these parameters."""
    return WebhookChannel(params, timeout)
