"""Reading a resource's [resource.params]: every error names the resource and the key.

Each resource kind validates its parameters once, for each node, when the agent starts and
when `hotstandby check` runs, so a bad parameter is an error on the operator's desk, never
at takeover time. `ParamError.key` is the top-level parameter key, so `check` can point at
the line that holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hotstandby.config.durations import DurationError, parse_duration
from hotstandby.config.errors import describe


class ParamError(ValueError):
    """A resource parameter that is missing, unknown or of the wrong form."""

    def __init__(
        self,
        resource: str,
        key: str | None,
        message: str,
        *,
        goes_on: bool = False,
        noun: str = "resource",
    ):
        # goes_on: the message continues the sentence ("key 'x' is required"), no colon.
        # noun: what owns the keys (a resource, an alarm channel).
        where = f"{noun} {resource!r}: key {key!r}" if key else f"{noun} {resource!r}"
        super().__init__(f"{where}{' ' if goes_on else ': '}{message}")
        self.resource = resource
        self.key = key  # the top-level params key, None when the whole table is at fault


def describe_raw(value: object) -> str:
    """A raw value in TOML words; frozen params hold arrays as tuples and tables as mappings."""
    if isinstance(value, tuple | list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return describe(value)


class ParamReader:
    """Typed access to one resource's raw params, raising ParamError with the key named."""

    def __init__(
        self,
        resource: str,
        kind: str,
        raw: Mapping[str, Any],
        keys: frozenset[str],
        *,
        noun: str = "resource",
    ):
        self.resource = resource
        self.raw = raw
        self.noun = noun
        # Keys whose value was read from a per-node table: errors name "key.node".
        self._at: dict[str, str] = {}
        unknown = sorted(set(raw) - keys)
        if unknown:
            raise ParamError(
                resource,
                unknown[0],
                f"unknown (a{'n' if noun[0] in 'aeiou' else ''} {noun} of kind {kind} "
                f"takes {', '.join(sorted(keys))})",
                noun=noun,
            )

    def error(self, key: str, expected: str, found: object) -> ParamError:
        """The error for `key`, whose value `found` is not what was `expected`."""
        key = self._at.get(key, key)
        top = key.split(".", 1)[0].split("[", 1)[0]
        return ParamError(
            self.resource,
            top,
            f"expected {expected}, found {describe_raw(found)}"
            + ("" if top == key else f" (at {key})"),
            noun=self.noun,
        )

    def missing(self, key: str, expected: str) -> ParamError:
        """The error for a required key that is absent."""
        return ParamError(
            self.resource, key, f"is required ({expected})", goes_on=True, noun=self.noun
        )

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        """A non-empty string; `default` when absent (or an error when `required`)."""
        value = self.raw.get(key)
        if value is None:
            if required or default is None:
                raise self.missing(key, "a non-empty string")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "a non-empty string", value)
        return value

    def optional_string(self, key: str) -> str | None:
        """A non-empty string, or None when absent."""
        return self.string(key) if key in self.raw else None

    def absolute_path(self, key: str, *, required: bool = True, default: str | None = None) -> str:
        """An absolute file system path."""
        value = self.raw.get(key, default)
        if value is None:
            if required:
                raise self.missing(key, 'an absolute path ("/srv/data")')
            return ""
        if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
            raise self.error(key, 'an absolute path ("/srv/data")', value)
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        """An integer from `low` to `high`."""
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"an integer from {low} to {high}", value)
        return value

    def seconds(self, key: str, default: float, high: float) -> float:
        """A duration ("200ms") or a number of seconds, above 0 and at most `high`."""
        value = self.raw.get(key)
        if value is None:
            return default
        expected = f'a duration above 0 and at most {high:g}s ("200ms") or a number of seconds'
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except DurationError:
                raise self.error(key, expected, value) from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            raise self.error(key, expected, value)
        if not 0 < seconds <= high:
            raise self.error(key, expected, value)
        return seconds

    def boolean(self, key: str, default: bool) -> bool:
        """true or false."""
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def string_list(self, key: str, *, required: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings (empty when absent and not required)."""
        value = self.raw.get(key)
        expected = "a list of non-empty strings"
        if value is None:
            if required:
                raise self.missing(key, expected)
            return ()
        if not isinstance(value, list | tuple) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise self.error(key, expected, value)
        return tuple(value)

    def string_table(self, key: str) -> dict[str, str]:
        """A table of string keys to scalar values, as text (environment, OCF parameters)."""
        value = self.raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, "a table of names to values", value)
        out: dict[str, str] = {}
        for name, item in value.items():
            if isinstance(item, bool):
                out[name] = "true" if item else "false"
            elif isinstance(item, str | int | float):
                out[name] = str(item)
            else:
                raise self.error(f"{key}.{name}", "a string, a number or a boolean", item)
        return out

    def per_node(self, key: str, node: str) -> object:
        """The value of `key`, or of `key.<node>` when `key` is a table of node name to value."""
        value = self.raw.get(key)
        if isinstance(value, Mapping):
            if node not in value:
                raise ParamError(self.resource, key, f"no entry for node {node!r}", noun=self.noun)
            return value[node]
        return value

    def for_node(self, node: str, keys: Iterable[str]) -> ParamReader:
        """This reader with each of `keys` that is a table of node to value read as `node`'s."""
        raw = dict(self.raw)
        at: dict[str, str] = {}
        for key in keys:
            if isinstance(raw.get(key), Mapping):
                raw[key] = self.per_node(key, node)
                at[key] = f"{key}.{node}"
        reader = ParamReader(self.resource, "", raw, frozenset(raw), noun=self.noun)
        reader._at = at
        return reader
