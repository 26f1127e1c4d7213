"""Typed reading of one parsed TOML table: each getter checks its value or raises SchemaError.

Kept apart from the schema in loader.py so the schema reads as a list of fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

from hotstandby.config.durations import EXPECTED as DURATION_EXPECTED
from hotstandby.config.durations import DurationError, parse_duration
from hotstandby.config.errors import KeyPath, SchemaError, describe

E = TypeVar("E", bound=Enum)

# Names end up in messages, state files, metrics labels and OCF environment variables:
# keep them to a safe, hostname-like alphabet.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NAME_EXPECTED = "a name of letters, digits, '_', '.', '-' (at most 63, not starting with a sign)"


def freeze(value: Any) -> Any:
    """A read-only deep copy of a TOML value: tables become mappings, arrays tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def is_ip_address(text: str) -> bool:
    """True for an IPv4 or IPv6 address (an IPv6 zone such as `%eth1` allowed)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Table:
    """One TOML table and its key path; getters validate and name the key on failure."""

    def __init__(self, data: Mapping[str, Any], key: KeyPath) -> None:
        self.data = data
        self.key = key

    def at(self, name: str | int) -> KeyPath:
        """The key path of `name` inside this table."""
        return (*self.key, name)

    def only(self, allowed: Iterable[str]) -> None:
        """Reject the first key not in `allowed` (a typo must not silently become a default)."""
        allowed = tuple(allowed)
        for name in self.data:
            if name not in allowed:
                choices = ", ".join(allowed)
                raise SchemaError(
                    self.at(name), f"one of the keys {choices}", f"unknown key {name!r}"
                )

    def has(self, name: str) -> bool:
        """Whether the table sets `name`."""
        return name in self.data

    def _required(self, name: str, expected: str) -> Any:
        if name not in self.data:
            raise SchemaError(self.at(name), expected, "nothing (the key is missing)")
        return self.data[name]

    def string(self, name: str, expected: str) -> str:
        """A required string."""
        value = self._required(name, expected)
        if not isinstance(value, str) or not value:
            raise SchemaError(self.at(name), expected, describe(value))
        return value

    def name(self, name: str = "name") -> str:
        """A required name of a node, link or resource."""
        value = self.string(name, NAME_EXPECTED)
        if not _NAME.fullmatch(value):
            raise SchemaError(self.at(name), NAME_EXPECTED, describe(value))
        return value

    def path(self, name: str, what: str) -> str:
        """A required absolute file or device path."""
        expected = f"an absolute path ({what})"
        value = self.string(name, expected)
        if not value.startswith("/"):
            raise SchemaError(self.at(name), expected, describe(value))
        return value

    def address(self, name: str, what: str) -> str:
        """A required IPv4 or IPv6 address, written as an address (no host name, no prefix)."""
        expected = f"an IPv4 or IPv6 address ({what})"
        value = self.string(name, expected)
        if not is_ip_address(value):
            raise SchemaError(self.at(name), expected, describe(value))
        return value

    def choice(self, name: str, enum: type[E]) -> E:
        """A required string that is one of an enum's values."""
        values = [str(member.value) for member in enum]
        expected = "one of " + ", ".join(f'"{v}"' for v in values)
        value = self._required(name, expected)
        if not isinstance(value, str) or value not in values:
            raise SchemaError(self.at(name), expected, describe(value))
        return enum(value)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An optional integer within [low, high]."""
        value = self.data.get(name, default)
        # bool is an int in Python but `true` is no number in the file.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SchemaError(self.at(name), f"an integer from {low} to {high}", describe(value))
        return value

    def number(self, name: str, default: float) -> float:
        """An optional plain number (integer or float)."""
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SchemaError(self.at(name), "a number", describe(value))
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        """An optional `true` or `false`."""
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise SchemaError(self.at(name), "true or false", describe(value))
        return value

    def duration(self, name: str, default: float, *, zero_ok: bool = False) -> float:
        """An optional duration string; positive unless `zero_ok`."""
        if name not in self.data:
            return default
        try:
            seconds = parse_duration(self.data[name])
        except DurationError as err:
            raise SchemaError(self.at(name), DURATION_EXPECTED, err.found) from None
        if seconds == 0 and not zero_ok:
            raise SchemaError(
                self.at(name), "a duration longer than zero", describe(self.data[name])
            )
        return seconds

    def table(self, name: str) -> Table | None:
        """An optional sub-table."""
        if name not in self.data:
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            raise SchemaError(self.at(name), f"a table [{name}]", describe(value))
        return Table(value, self.at(name))

    def tables(self, name: str) -> list[Table]:
        """An optional array of tables ([[name]]), each with its index in the key path."""
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise SchemaError(self.at(name), f"an array of tables [[{name}]]", describe(value))
        return [Table(item, (*self.at(name), i)) for i, item in enumerate(value)]
