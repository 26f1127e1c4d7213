"""The command channel: run a program with the alarm in its environment and JSON on stdin.

Keys: `argv` (required: the program, an absolute path, and its arguments; no shell),
`env` (a table of extra environment variables). The program gets a minimal environment
(PATH, LANG=C.UTF-8) plus HOTSTANDBY_ALARM_CLUSTER, _NODE, _KIND, _SEVERITY, _MESSAGE,
_RULE, _DETAIL, _EPOCH, _TIME and _TIMESTAMP, and the alarm as one JSON object on
standard input. Exit status 0 is delivered; anything else, or running past the
channel's timeout (the program is then killed), is a failure to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass

from hotstandby.agent.alarms.alarm import Alarm, Channel, DeliveryError
from hotstandby.agent.resources.params import ParamReader

KEYS = frozenset({"argv", "env"})
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


@dataclass(frozen=True)
class CommandParams:
    """The program to run and its extra environment."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


def parse(r: ParamReader) -> CommandParams:
    """Read the command channel's keys."""
    argv = r.string_list("argv", required=True)
    if not argv:
        raise r.missing("argv", "the program and its arguments")
    if not argv[0].startswith("/"):
        raise r.error("argv[0]", 'an absolute path to the program ("/usr/local/bin/page")', argv[0])
    return CommandParams(argv, tuple(sorted(r.string_table("env").items())))


class CommandChannel:
    """Runs the program once per alarm."""

    def __init__(self, params: CommandParams) -> None:
        self.params = params

    async def deliver(self, alarm: Alarm) -> None:
        """Run the program; DeliveryError on a non-zero exit."""
        env = {**BASE_ENV, **dict(self.params.env), **alarm.environment()}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.params.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as err:
            raise DeliveryError(f"cannot run {self.params.argv[0]}: {err.strerror}") from err
        try:
            _, err_out = await proc.communicate(json.dumps(alarm.as_json()).encode() + b"\n")
        finally:
            # Cancelled by the dispatcher's timeout: neither the program nor anything it
            # started (its own session and process group) may outlive it.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.returncode != 0:
            tail = err_out.decode(errors="replace").strip().splitlines()[-1:] if err_out else []
            raise DeliveryError(
                f"{self.params.argv[0]} exited with status {proc.returncode}"
                + (f": {tail[0][:200]}" if tail else "")
            )


def build(params: CommandParams, cluster: str, node: str, timeout: float) -> Channel:
    """The channel for these parameters."""
    return CommandChannel(params)
