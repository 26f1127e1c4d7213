"""Durations as the file writes them ("200ms", "1.5s", "2m", "1h"), as float seconds.

Only strings with a unit are accepted: a bare number is ambiguous (is `5` seconds or
milliseconds?), and a timer off by a factor of 1000 is exactly the mistake that makes a
cluster flap or never fail over. So `5` is rejected with a message that suggests "5s".
"""

from __future__ import annotations

import re

from hotstandby.config.errors import describe

EXPECTED = 'a duration with a unit ("200ms", "1.5s", "2m", "1h")'

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# No exponent, no sign: a negative or scientific duration is always a typo here.
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)")


class DurationError(ValueError):
    """A value that is not a duration; `found` says what it is, for the message."""

    def __init__(self, found: str) -> None:
        super().__init__(f"expected {EXPECTED}, found {found}")
        self.found = found


def parse_duration(value: object) -> float:
    """Seconds in a duration string such as "200ms"; DurationError for anything else."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise DurationError(f"{describe(value)} without a unit (write {_suggest(value)})")
        raise DurationError(describe(value))
    match = _DURATION.fullmatch(value.strip())
    if match is None:
        raise DurationError(describe(value))
    number, unit = match.groups()
    return float(number) * _UNITS[unit]


def _suggest(number: float) -> str:
    """The string a bare number most likely meant: seconds, the unit of every timer."""
    return f'"{number:g}s"'


def format_duration(seconds: float) -> str:
    """A duration as people read it: "200ms", "1.5s", "12s", "2m30s"."""
    if seconds < 1.0:
        return f"{seconds * 1000:.4g}ms"
    if seconds < 60.0:
        return f"{seconds:.4g}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{rest:.3g}s" if rest else f"{int(minutes)}m"
