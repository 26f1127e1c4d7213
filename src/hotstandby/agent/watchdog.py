"""The hardware watchdog: armed at start, petted by the agent loop, disarmed only by a planned stop.

With `[arbitration] watchdog_timeout` set, the agent opens the watchdog device (default
`/dev/watchdog`) before it serves, asks the driver for that timeout (watchdogs count whole
seconds: it is rounded down, so the machine resets no later than the budget assumes), and
pets it after every step of the loop and from a timer in the loop every timeout/3. Both run on
the event loop, never in a thread: a stalled or frozen agent stops petting and the machine
resets. Only a planned stop that completed closes it with the magic "V"; a self-fence exits
without it (the kernel closes the descriptor, the watchdog stays armed and fires), and so
does a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import time
from collections.abc import Callable

from hotstandby.agent.system import HardwareWatchdog

log = logging.getLogger("hotstandby.watchdog")

#: _IOWR('W', 6, int) and _IOR('W', 7, int) from <linux/watchdog.h>.
WDIOC_SETTIMEOUT = 0xC0045706
WDIOC_GETTIMEOUT = 0x80045707


class WatchdogError(Exception):
    """The configured watchdog cannot be armed."""


class Watchdog:
    """One armed watchdog device and the pets the agent gives it."""

    def __init__(
        self,
        device: str,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        opener: Callable[[str], HardwareWatchdog] = HardwareWatchdog,
    ) -> None:
        self.device = device
        self.timeout = timeout
        self.clock = clock
        self.pets = 0
        self._last = float("-inf")
        # A pet after every step is needless (steps come many times a second): a tenth of
        # the timeout between pets keeps the syscalls few and the margin wide.
        self._spacing = timeout / 10
        self._timer: asyncio.Task[None] | None = None
        try:
            self._dog: HardwareWatchdog | None = opener(device)
        except OSError as err:
            raise WatchdogError(f"cannot open the watchdog {device}: {err}") from err
        self.driver_timeout = self._set_timeout(max(1, int(timeout)))

    def _set_timeout(self, seconds: int) -> int | None:
        assert self._dog is not None
        try:
            fcntl.ioctl(self._dog.fd, WDIOC_SETTIMEOUT, struct.pack("i", seconds))
            got = fcntl.ioctl(self._dog.fd, WDIOC_GETTIMEOUT, struct.pack("i", 0))
        except OSError as err:
            log.warning(
                "watchdog %s: cannot set its timeout to %ds (%s); the device's own applies",
                self.device,
                seconds,
                err,
            )
            return None
        (value,) = struct.unpack("i", got)
        if value > self.timeout:
            log.warning(
                "watchdog %s: the driver keeps %ds, longer than watchdog_timeout %gs",
                self.device,
                value,
                self.timeout,
            )
        return int(value)

    def pet(self) -> None:
        """Pet it, unless it was petted less than a tenth of the timeout ago."""
        now = self.clock()
        if self._dog is None or now - self._last < self._spacing:
            return
        self._last = now
        self._dog.pet()
        self.pets += 1

    def start(self, on_step: list[Callable[[], None]]) -> None:
        """Pet it after every step of the loop and every timeout/3 from a timer in the loop."""
        on_step.append(self.pet)
        self.pet()
        self._timer = asyncio.create_task(self._tick(), name="watchdog")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.timeout / 3)
            self.pet()

    async def stop(self, planned: bool) -> None:
        """Stop the timer; a planned stop also disarms the device (the magic close)."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        dog, self._dog = self._dog, None
        if dog is not None and planned:
            dog.close()
            log.info("watchdog %s disarmed (planned stop)", self.device)


def arm_watchdog(
    timeout: float, device: str | None, on_step: list[Callable[[], None]]
) -> Watchdog | None:
    """Open and start petting the configured watchdog (None when none is configured)."""
    if timeout <= 0 or device is None:
        return None
    dog = Watchdog(device, timeout)
    dog.start(on_step)
    log.info("watchdog %s armed: %gs, petted every %gs at least", device, timeout, timeout / 3)
    return dog
