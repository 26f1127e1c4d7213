"""A node's local monotonic clock: a constant rate drift and an offset from real time."""

from __future__ import annotations


class LocalClock:
    """local = offset + rate * real; the engine only ever sees local time."""

    __slots__ = ("offset", "rate")

    def __init__(self, rate: float, offset: float) -> None:
        self.rate = rate
        self.offset = offset

    def local(self, real: float) -> float:
        """The local reading at real time `real`."""
        return self.offset + self.rate * real

    def real_at(self, local: float) -> float:
        """The real time at which this clock reads `local`."""
        return (local - self.offset) / self.rate

    def restart(self, real: float, reading: float) -> None:
        """Reset after a reboot so that the clock reads `reading` at real time `real`."""
        self.offset = reading - self.rate * real
