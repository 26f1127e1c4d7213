"""What a bad configuration file looks like to its author: file, line, key path, expected, found."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

# A key path into the parsed TOML: table keys, and 0-based indexes into arrays of tables.
KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def format_key(key: KeyPath) -> str:
    """A key path as messages show it: `link[1].endpoints.alpha`; `(document)` for the root."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # Keys that are not bare TOML keys are quoted, as the file would write them.
            text = part if _BARE_KEY.match(part) else json.dumps(part)
            out += f".{text}" if out else text
    return out or "(document)"


def describe(value: object) -> str:
    """A value found in the file, as a message shows it (in TOML spelling)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.date | datetime.time):
        return f"the date/time {value.isoformat()}"
    return repr(value)  # pragma: no cover - tomllib produces no other types


@dataclass(frozen=True)
class Violation:
    """Something wrong at a key path, before the file and line are attached."""

    key: KeyPath
    expected: str
    found: str


class SchemaError(Exception):
    """Raised while reading the parsed TOML; the loader attaches the file and line."""

    def __init__(self, key: KeyPath, expected: str, found: str) -> None:
        super().__init__(f"{format_key(key)}: expected {expected}, found {found}")
        self.violation = Violation(key, expected, found)


@dataclass(frozen=True)
class Problem:
    """One error in a file, located."""

    file: str
    # None only when no line applies (the file could not be read at all).
    line: int | None
    key: KeyPath
    expected: str
    found: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {format_key(self.key)}: expected {self.expected}, found {self.found}"


class ConfigError(Exception):
    """A configuration file that must not be run: one or more located problems."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        super().__init__("\n".join(str(p) for p in problems))
        self.problems: tuple[Problem, ...] = tuple(problems)

    # The first problem's fields, for callers that show one error.
    @property
    def file(self) -> str:
        """The file the first problem is in."""
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        """The line of the first problem."""
        return self.problems[0].line

    @property
    def key(self) -> KeyPath:
        """The key path of the first problem."""
        return self.problems[0].key

    @property
    def expected(self) -> str:
        """What the first problem's key should hold."""
        return self.problems[0].expected

    @property
    def found(self) -> str:
        """What the first problem's key holds."""
        return self.problems[0].found
