"""A real DNS server in the lab: BIND's named, primary for one zone that takes signed updates.

The lab's floating hostname runs against it: named serves `zone` from a zone file in its
own directory under the lab's work dir, listens on one address of one lab namespace, and
lets the holders of one TSIG key (written here as `tsig-keygen` would) update the zone.
The lab starts it by pid and ends it by pid, with everything else it started.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hotstandby.lab._cmd import LabError
from hotstandby.lab.procs import LabProcess
from hotstandby.lab.topology import Lab

#: The program and the Debian package that ships it.
NAMED = "named"
NAMED_PACKAGE = "bind9"

#: How long named may take to load its zone and say it is running.
READY_TIMEOUT = 15.0
POLL_INTERVAL = 0.01


def named_missing() -> str | None:
    """Why no lab DNS server can run here (named not installed), or None."""
    if shutil.which(NAMED) is None and not Path("/usr/sbin/named").exists():
        return f"the DNS tests need {NAMED} (Debian package {NAMED_PACKAGE})"
    return None


def key_file_text(name: str, secret: bytes, algorithm: str = "hmac-sha256") -> str:
    """A TSIG key statement exactly as `tsig-keygen` writes it."""
    encoded = base64.b64encode(secret).decode()
    return f'key "{name}" {{\n\talgorithm {algorithm};\n\tsecret "{encoded}";\n}};\n'


@dataclass(frozen=True)
class DnsKey:
    """A TSIG key of the lab's DNS server, and the file that holds it (mode 0600)."""

    name: str
    secret: bytes
    path: Path


class DnsServer:
    """named in a lab namespace, primary for `zone`, updatable with the key in `key.path`."""

    def __init__(
        self,
        lab: Lab,
        owner: str,
        address: str,
        zone: str = "example.org.",
        *,
        port: int = 53,
        key_name: str = "hotstandby-lab",
    ) -> None:
        self.lab = lab
        self.owner = owner
        self.address = address
        self.port = port
        self.zone = zone if zone.endswith(".") else zone + "."
        self.dir = lab.workdir / f"named-{owner}"
        self.key = DnsKey(key_name, secrets.token_bytes(32), self.dir / "ddns.key")
        self.proc: LabProcess | None = None

    def start(self) -> None:
        """Write the configuration and zone, start named, wait until it serves the zone."""
        if named_missing() is not None:
            raise LabError(str(named_missing()))
        self.dir.mkdir(exist_ok=True)
        self.key.path.write_text(key_file_text(self.key.name, self.key.secret))
        self.key.path.chmod(0o600)
        zone = self.zone.rstrip(".")
        (self.dir / "zone").write_text(
            "$TTL 300\n"
            f"@ IN SOA ns.{self.zone} hostmaster.{self.zone} 1 3600 600 86400 60\n"
            f"@ IN NS ns.{self.zone}\n"
            f"ns IN A {self.address}\n"
        )
        d = self.dir
        (d / "named.conf").write_text(
            f'include "{self.key.path}";\n'
            "options {\n"
            f'  directory "{d}";\n'
            "  pid-file none;\n"
            f'  session-keyfile "{d}/session.key";\n'
            f'  managed-keys-directory "{d}";\n'
            f"  listen-on port {self.port} {{ {self.address}; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion no;\n"
            "  dnssec-validation no;\n"
            "  notify no;\n"
            "};\n"
            "controls { };\n"
            f'zone "{zone}" {{\n'
            "  type primary;\n"
            f'  file "{d}/zone";\n'
            f'  allow-update {{ key "{self.key.name}"; }};\n'
            "};\n"
        )
        named = shutil.which(NAMED) or "/usr/sbin/named"
        # -g: foreground, log to stderr (the lab's log file); -n 1: one worker thread.
        argv = [named, "-g", "-4", "-n", "1", "-c", str(d / "named.conf")]
        self.proc = self.lab.spawn(self.owner, argv)
        self._await_running()

    def _await_running(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            output = self.proc.output()
            if "running\n" in output:
                return
            if not self.proc.alive():
                raise LabError(f"named exited at start: {output[-3000:]}")
            if time.monotonic() > deadline:
                raise LabError(f"named did not start within {READY_TIMEOUT:g}s: {output[-3000:]}")
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """End named (by its pid) and reap it."""
        if self.proc is not None and self.proc.alive():
            self.lab.kill(self.proc)

    def log(self) -> str:
        """What named has logged."""
        return self.proc.output() if self.proc is not None else ""
