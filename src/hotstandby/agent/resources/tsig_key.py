"""TSIG key files as BIND's tools write them, read without BIND.

`tsig-keygen NAME` and `ddns-confgen -q` write one statement:

    key "NAME" {
        algorithm hmac-sha256;
        secret "BASE64";
    };

and a plain `ddns-confgen` wraps that in `#` comments and an `update-policy { ... };` example.
So the reader takes BIND's own syntax: `#`, `//` and `/* */` comments, quoted or bare words,
`{ ... };` blocks; it keeps the `key` statements and passes over any other statement. A file
with several keys needs the key's name to choose one. Every error names the file and, where
it has one, the line.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

#: The HMAC algorithms a TSIG key may use (RFC 8945), by their names in BIND's files.
ALGORITHMS = ("hmac-md5", "hmac-sha1", "hmac-sha224", "hmac-sha256", "hmac-sha384", "hmac-sha512")

#: A key file is a few hundred bytes; anything much larger is not one.
MAX_FILE_SIZE = 64 * 1024

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
    | (?P<open_comment>/\*)
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<open_string>")
    | (?P<punct>[{};])
    | (?P<word>(?:[^\s{};"#/]|/(?![/*]))+)
    """,
    re.VERBOSE | re.DOTALL,
)


class KeyFileError(ValueError):
    """A key file that cannot be read or does not hold the key asked for."""


@dataclass(frozen=True)
class TsigKey:
    """One TSIG key: its name, HMAC algorithm (as in ALGORITHMS) and secret."""

    name: str
    algorithm: str
    secret: bytes = b""

    def __repr__(self) -> str:
        # Never print the secret: details and logs show keys by name.
        return f"TsigKey(name={self.name!r}, algorithm={self.algorithm!r})"


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "word" or one of "{", "}", ";"
    text: str
    line: int


def _tokens(path: str, text: str) -> list[_Token]:
    out: list[_Token] = []
    line, pos = 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise KeyFileError(f"{path}:{line}: unexpected character {text[pos]!r}")
        if m.lastgroup == "open_comment":
            raise KeyFileError(f"{path}:{line}: a /* comment that never ends")
        if m.lastgroup == "open_string":
            raise KeyFileError(f"{path}:{line}: a quoted string that never ends")
        kind = m.lastgroup
        value = m.group()
        if kind == "string":
            out.append(_Token("string", re.sub(r"\\(.)", r"\1", value[1:-1]), line))
        elif kind == "punct":
            out.append(_Token(value, value, line))
        elif kind == "word":
            out.append(_Token("word", value, line))
        line += value.count("\n")
        pos = m.end()
    return out


class _Parser:
    def __init__(self, path: str, tokens: list[_Token]) -> None:
        self.path = path
        self.tokens = tokens
        self.pos = 0

    def fail(self, message: str, token: _Token | None = None) -> KeyFileError:
        at = token or (self.tokens[self.pos] if self.pos < len(self.tokens) else None)
        where = f"{self.path}:{at.line}" if at is not None else f"{self.path}: at the end"
        return KeyFileError(f"{where}: {message}")

    def next(self, expected: str) -> _Token:
        if self.pos >= len(self.tokens):
            raise self.fail(f"the file ends where {expected} was expected")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def expect(self, kind: str, expected: str) -> _Token:
        token = self.next(expected)
        if token.kind != kind:
            raise self.fail(f"expected {expected}, found {token.text!r}", token)
        return token

    def statements(self) -> list[TsigKey]:
        keys: list[TsigKey] = []
        while self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if token.kind == "word" and token.text.lower() == "key":
                self.pos += 1
                keys.append(self.key(token))
            else:
                self.skip_statement()
        return keys

    def skip_statement(self) -> None:
        """Pass over one statement that is not a key: words and blocks up to its ';'.

        A last statement without its ';' is passed over too: `ddns-confgen` ends its
        output with a bare `nsupdate -k <keyfile>` line.
        """
        start = self.tokens[self.pos]
        depth = 0
        while self.pos < len(self.tokens):
            token = self.next("the end of a statement (';')")
            if token.kind == "{":
                depth += 1
            elif token.kind == "}":
                depth -= 1
                if depth < 0:
                    raise self.fail("a '}' closes no block", token)
            elif token.kind == ";" and depth == 0:
                return
        if depth > 0:
            raise self.fail(f"the block begun at line {start.line} is never closed")

    def key(self, head: _Token) -> TsigKey:
        name_token = self.next("the key's name")
        if name_token.kind not in ("string", "word") or not name_token.text:
            raise self.fail(f"expected the key's name, found {name_token.text!r}", name_token)
        name = name_token.text
        self.expect("{", "'{' after the key's name")
        fields: dict[str, _Token] = {}
        while True:
            token = self.next(f"'}}' closing key {name!r}")
            if token.kind == "}":
                break
            if token.kind != "word":
                raise self.fail(f"expected algorithm or secret, found {token.text!r}", token)
            field = token.text.lower()
            if field not in ("algorithm", "secret"):
                raise self.fail(
                    f"key {name!r}: unknown clause {token.text!r} (a key has algorithm and secret)",
                    token,
                )
            if field in fields:
                raise self.fail(f"key {name!r}: {field} is given twice", token)
            value = self.next(f"the key's {field}")
            if value.kind not in ("string", "word"):
                raise self.fail(f"key {name!r}: expected its {field}, found {value.text!r}", value)
            fields[field] = value
            self.expect(";", f"';' after the {field}")
        self.expect(";", f"';' after key {name!r}'s closing '}}'")
        for field in ("algorithm", "secret"):
            if field not in fields:
                raise self.fail(f"key {name!r} has no {field}", head)
        return TsigKey(
            name,
            self.algorithm(name, fields["algorithm"]),
            self.secret(name, fields["secret"]),
        )

    def algorithm(self, name: str, token: _Token) -> str:
        algorithm = token.text.lower()
        if algorithm not in ALGORITHMS:
            truncated = re.fullmatch(r"(hmac-[a-z0-9]+)-\d+", algorithm)
            hint = (
                f" (truncated MACs such as {token.text!r} are not supported; use "
                f"{truncated.group(1)})"
                if truncated and truncated.group(1) in ALGORITHMS
                else f" (expected one of {', '.join(ALGORITHMS)})"
            )
            raise self.fail(f"key {name!r}: unknown algorithm {token.text!r}{hint}", token)
        return algorithm

    def secret(self, name: str, token: _Token) -> bytes:
        text = re.sub(r"\s+", "", token.text)
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"key {name!r}: the secret is not base64", token) from None
        if not secret:
            raise self.fail(f"key {name!r}: the secret is empty", token)
        return secret


def parse_key_text(path: str, text: str, key_name: str | None = None) -> TsigKey:
    """The key called key_name (or the only key) in text, read from path; KeyFileError if not."""
    keys = _Parser(path, _tokens(path, text)).statements()
    if not keys:
        raise KeyFileError(
            f'{path}: no key statement (key "NAME" {{ algorithm ...; secret ...; }};)'
        )
    names = [k.name for k in keys]
    if len(set(n.rstrip(".").lower() for n in names)) != len(names):
        raise KeyFileError(f"{path}: a key name repeats ({', '.join(names)})")
    if key_name is None:
        if len(keys) > 1:
            raise KeyFileError(
                f"{path}: holds {len(keys)} keys ({', '.join(names)}): say which with key_name"
            )
        return keys[0]
    for key in keys:
        # DNS names compare without case and without the final dot.
        if key.name.rstrip(".").lower() == key_name.rstrip(".").lower():
            return key
    raise KeyFileError(f"{path}: no key {key_name!r} (it holds {', '.join(names)})")


def read_key_file(path: str, key_name: str | None = None) -> TsigKey:
    """Read and parse the key file at path; KeyFileError names the file and what is wrong."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_FILE_SIZE + 1)
    except OSError as err:
        raise KeyFileError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(data) > MAX_FILE_SIZE:
        raise KeyFileError(f"{path}: larger than {MAX_FILE_SIZE} bytes: not a key file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not text (not UTF-8)") from None
    return parse_key_text(path, text, key_name)
