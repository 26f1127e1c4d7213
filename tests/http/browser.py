"""Headless Chromium from Debian's package, driven over the DevTools protocol on a pipe.

`--remote-debugging-pipe` speaks the protocol on file descriptors 3 (commands in) and 4
(answers out), NUL-terminated JSON: no port to find, and it works the same when the
browser runs inside a network namespace the test process is not in.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

CHROMIUM = "chromium"

# Puts the two pipe ends at fds 3 and 4, where Chromium expects them, then becomes Chromium.
_EXEC_AT_3_AND_4 = (
    "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
    "os.dup2(r, 3); os.dup2(w, 4); os.execvp(sys.argv[3], sys.argv[3:])"
)


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if shutil.which(CHROMIUM) is None:
        return "chromium is not installed (Debian package chromium; scripts/setup installs it)"
    return None


class BrowserError(AssertionError):
    """The browser failed, or a page did not do what was awaited."""


class Browser:
    """One headless Chromium with one page; a context manager that always ends it."""

    def __init__(self, prefix: Sequence[str] = (), width: int = 1400, height: int = 1200) -> None:
        self.prefix = list(prefix)  # e.g. ["ip", "netns", "exec", NS]
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="hwb-chromium-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = ""
        self._next_id = 0
        self._buffer = b""
        self._to: int = -1
        self._from: int = -1

    def __enter__(self) -> Browser:
        to_read, self._to = os.pipe()
        self._from, from_write = os.pipe()
        argv = [
            *self.prefix, sys.executable, "-c", _EXEC_AT_3_AND_4,
            str(to_read), str(from_write),
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
            "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
            f"--window-size={self.width},{self.height}", "about:blank",
        ]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(to_read, from_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its helpers share our child's group: ended together
            )
        finally:
            os.close(to_read)
            os.close(from_write)
        try:
            targets = self.call("Target.getTargets", timeout=30)["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
            attached = self.call(
                "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
            )
            self.session = attached["sessionId"]
            self.call("Page.enable")
            self.call("Runtime.enable")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the browser (its whole process group, which it started) and remove its profile."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None
        for fd in (self._to, self._from):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to = self._from = -1
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------ the protocol

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Send one command (to the page once attached) and return its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline, method)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def _receive(self, deadline: float, what: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"chromium did not answer {what} in time")
            ready, _, _ = select.select([self._from], [], [], left)
            if ready:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited while waiting for {what}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    # ------------------------------------------------------------ the page

    def open(self, url: str) -> None:
        """Load `url` in the page."""
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"{url}: {answer['errorText']}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, what: str, expression: str, timeout: float) -> Any:
        """Poll `expression` until it is truthy; BrowserError naming `what` and the last value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise BrowserError(f"{what} did not happen within {timeout:g}s (last: {value!r})")

    def screenshot(self) -> bytes:
        """A PNG of the whole page as it is drawn now."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        return base64.b64decode(data["data"])
