"""What the agent asks of the operating system: systemd notification, real-time, locked memory.

Each is best effort: where it is not permitted, the agent says so once and goes on.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket

log = logging.getLogger("hotstandby.agent")

MCL_CURRENT = 1
MCL_FUTURE = 2
RT_PRIORITY = 50  # above ordinary work, below the kernel's own threads (99)


def notify(message: str) -> bool:
    """Send one sd_notify message (READY=1, STATUS=..., WATCHDOG=1); False if not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # Never wait: this runs on the event loop, and a full queue at the other
        # end (a busy systemd) would otherwise stop heartbeats with it.
        sock.setblocking(False)
        try:
            sock.sendto(message.encode(), address)
        except BlockingIOError:
            log.warning("systemd's notification queue is full; %r not sent", message)
            return False
        except OSError as err:
            log.warning("cannot notify systemd at %s: %s", address, err)
            return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec for this process, or None when no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    # Zero or less is no watchdog (as sd_watchdog_enabled reads it), not "pet always".
    return value / 2_000_000 if value > 0 else None


def go_realtime() -> str | None:
    """Ask for SCHED_RR; the problem as text when it is not permitted."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
    except (OSError, AttributeError) as err:
        return f"real-time scheduling refused ({err}); heartbeats may lag on a loaded machine"
    return None


def lock_memory() -> str | None:
    """Lock the agent's memory so a swapping machine cannot stall it; the problem as text."""
    path = ctypes.util.find_library("c")
    if path is None:
        return "cannot find the C library to lock memory"
    libc = ctypes.CDLL(path, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        err = ctypes.get_errno()
        return f"memory not locked ({os.strerror(err)}); swapping could stall heartbeats"
    return None


class HardwareWatchdog:
    """/dev/watchdog: pet it from the loop; a frozen or dead agent gets the machine reset."""

    def __init__(self, device: str) -> None:
        self.fd = os.open(device, os.O_WRONLY)

    def pet(self) -> None:
        """Tell the watchdog the loop is alive."""
        os.write(self.fd, b"\0")

    def close(self) -> None:
        """A planned stop: the magic close disarms it (where the driver allows)."""
        os.write(self.fd, b"V")
        os.close(self.fd)
