"""Real receivers for the alarm channels, started by the tests: an HTTP server, an SMTP
server (aiosmtpd), a Unix datagram socket. Also run as a program inside a lab namespace:
`python tests/alarms/receivers.py DIR ADDRESS` serves HTTP on ADDRESS:8080 and SMTP on
ADDRESS:8025 and writes what arrives into DIR (http.json, smtp.json)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class HttpReceiver:
    """A local HTTP server recording every POST; answers from `statuses`, then 200."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, statuses: list[int] | None = None):
        self.posts: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with owner.lock:
                    status = owner.statuses.pop(0) if owner.statuses else 200
                    owner.posts.append(
                        {
                            "status": status,
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": json.loads(body),
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to post."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/alarm"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Mailbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(envelope.content)
        body = msg.get_payload(decode=True)
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(msg["Subject"]),
                "body": (body.decode() if isinstance(body, bytes) else str(body)).replace(
                    "\r\n", "\n"
                ),
                "tls": session.ssl is not None,
                "login": session.authenticated,
            }
        )
        return "250 OK"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class SmtpReceiver:
    """A real SMTP server (aiosmtpd); optionally requiring STARTTLS and a login."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        login: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.mailbox = _Mailbox()
        self.host = host
        self.port = port or free_port(host)
        options: dict[str, Any] = {}
        if login is not None:

            def authenticate(
                server: Any, session: Any, envelope: Any, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and (data.login.decode(), data.password.decode()) == login
                )
                return AuthResult(success=ok, handled=False)

            options.update(authenticator=authenticate, auth_required=True)
            options["auth_require_tls"] = tls is not None
        if tls is not None:
            options.update(tls_context=tls, require_starttls=True)
        self.controller = Controller(
            self.mailbox, hostname=host, port=self.port, ready_timeout=5.0, **options
        )

    @property
    def messages(self) -> list[dict[str, Any]]:
        """What arrived."""
        return self.mailbox.messages

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path] | None:
    """A self-signed certificate and key made with openssl (None when openssl is missing)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        return None
    return cert, key


@contextlib.contextmanager
def syslog_socket(path: Path) -> Iterator[socket.socket]:
    """A bound Unix datagram socket, as /dev/log is."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.bind(str(path))
        s.settimeout(5.0)
        yield s
    finally:
        s.close()
        path.unlink(missing_ok=True)


def main() -> None:
    """Serve HTTP and SMTP on an address; write each arrival to DIR (for lab tests)."""
    out, host = Path(sys.argv[1]), sys.argv[2]
    with HttpReceiver(host, 8080) as http, SmtpReceiver(host, 8025) as smtp:
        (out / "ready").write_text("ready\n")
        done = threading.Event()
        seen = (0, 0)
        while not done.wait(0.02):
            now = (len(http.posts), len(smtp.messages))
            if now != seen:
                seen = now
                (out / "http.json").write_text(json.dumps(http.posts))
                (out / "smtp.json").write_text(json.dumps(smtp.messages))


if __name__ == "__main__":
    main()
