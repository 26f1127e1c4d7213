"""The line of a key path in TOML text.

tomllib returns values without positions, so errors found after parsing would name a key
but no line. This scanner walks text that tomllib has already accepted and records the
line where each table header and key is written. Arrays of tables get their 0-based index,
so `link[1].endpoints.beta` is the `beta` key under the second `[[link]]`. Keys inside
inline tables and arrays are not recorded: such an error falls back to the line of the key
that holds them, which is the same line or the one where the value starts.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence

from hotstandby.config.errors import KeyPath

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def line_of(text: str, key: KeyPath) -> int:
    """The 1-based line defining `key`, else its nearest enclosing table; 1 for the document."""
    lines = key_lines(text)
    for n in range(len(key), 0, -1):
        line = lines.get(key[:n])
        if line is not None:
            return line
    return 1


def key_lines(text: str) -> dict[KeyPath, int]:
    """Every table and key path written in `text` (valid TOML), with its first line."""
    return _Scanner(text).scan()


class _Scanner:
    """A forgiving TOML walker: the text is known valid, so it only tracks structure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.found: dict[KeyPath, int] = {}
        # Resolved path of each array of tables -> how many elements it has so far.
        self.arrays: dict[KeyPath, int] = {}
        self.table: KeyPath = ()

    def scan(self) -> dict[KeyPath, int]:
        """Walk the document, recording headers and keys."""
        while True:
            self._skip_blank(newlines=True)
            if self._at_end():
                return self.found
            line = self.line
            if self.text.startswith("[[", self.pos):
                self._advance(2)
                self._array_header(self._read_key(), line)
                self._skip_past("]]")
            elif self._peek() == "[":
                self._advance(1)
                self._table_header(self._read_key(), line)
                self._skip_past("]")
            else:
                keys = self._read_key()
                self._record(self.table, keys, line)
                self._skip_past("=")
                self._skip_blank(newlines=False)
                self._skip_value()

    # -- structure ----------------------------------------------------------------

    def _resolve(self, keys: list[str]) -> KeyPath:
        """A header's dotted key with the current index of every array of tables on the way."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            count = self.arrays.get(path)
            if count is not None:
                path = (*path, count - 1)
        return path

    def _array_header(self, keys: list[str], line: int) -> None:
        array = (*self._resolve(keys[:-1]), keys[-1])
        count = self.arrays.get(array, 0) + 1
        self.arrays[array] = count
        self.table = (*array, count - 1)
        self._record((), self.table, line)

    def _table_header(self, keys: list[str], line: int) -> None:
        self.table = self._resolve(keys)
        self._record((), self.table, line)

    def _record(self, base: KeyPath, keys: Sequence[str | int], line: int) -> None:
        path = base
        for key in keys:
            path = (*path, key)
            self.found.setdefault(path, line)

    # -- characters ---------------------------------------------------------------

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance(self, n: int) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + n)
        self.pos += n

    def _skip_blank(self, *, newlines: bool) -> None:
        """Skip spaces and comments, and line ends when `newlines`."""
        while not self._at_end():
            char = self._peek()
            if char in " \t\r" or (newlines and char == "\n"):
                self._advance(1)
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self._advance((len(self.text) if end < 0 else end) - self.pos)
            else:
                return

    def _skip_past(self, token: str) -> None:
        self._skip_blank(newlines=False)
        self._advance(len(token))

    def _read_key(self) -> list[str]:
        """A dotted key: bare or quoted parts separated by dots."""
        parts: list[str] = []
        while True:
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in "\"'":
                start = self.pos
                self._skip_string()
                # tomllib decodes the quoted key, escapes included.
                parts.append(str(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"]))
            else:
                start = self.pos
                while self._peek() in _BARE_KEY_CHARS:
                    self._advance(1)
                parts.append(self.text[start : self.pos])
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return parts
            self._advance(1)

    def _skip_string(self) -> None:
        quote = self._peek()
        triple = quote * 3
        if self.text.startswith(triple, self.pos):
            self._advance(3)
            while not self.text.startswith(triple, self.pos):
                self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
            self._advance(3)
            # Up to two quotes may end the content right before the closing delimiter.
            for _ in range(2):
                if self._peek() == quote:
                    self._advance(1)
            return
        self._advance(1)
        while self._peek() != quote:
            self._advance(2 if quote == '"' and self._peek() == "\\" else 1)
        self._advance(1)

    def _skip_value(self) -> None:
        char = self._peek()
        if char in "\"'":
            self._skip_string()
        elif char == "[":
            self._skip_container("]", inline_table=False)
        elif char == "{":
            self._skip_container("}", inline_table=True)
        else:
            while not self._at_end() and self._peek() not in ",]}#\n":
                self._advance(1)

    def _skip_container(self, close: str, *, inline_table: bool) -> None:
        self._advance(1)
        while True:
            # Inline tables are one line in TOML 1.0; arrays may span lines.
            self._skip_blank(newlines=True)
            char = self._peek()
            if char == close:
                self._advance(1)
                return
            if char == ",":
                self._advance(1)
                continue
            if inline_table:
                self._read_key()
                self._skip_past("=")
                self._skip_blank(newlines=False)
            self._skip_value()
