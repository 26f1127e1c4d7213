"""The TSIG key file reader: what BIND's tools write, variants of it, and clear errors."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from hotstandby.agent.resources.tsig_key import (
    ALGORITHMS,
    MAX_FILE_SIZE,
    KeyFileError,
    TsigKey,
    parse_key_text,
    read_key_file,
)
from hotstandby.lab.dns import key_file_text

SECRET = bytes(range(32))
B64 = base64.b64encode(SECRET).decode()


def bind_tool(*argv: str) -> str:
    """What one of BIND's key tools prints; the test is skipped when it is not installed."""
    program = shutil.which(argv[0]) or f"/usr/sbin/{argv[0]}"
    if not Path(program).exists():
        pytest.skip(f"{argv[0]} is not installed (Debian package bind9)")
    return subprocess.run(
        [program, *argv[1:]], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def error(text: str, key_name: str | None = None) -> str:
    """The KeyFileError message for text, read as if from /k."""
    with pytest.raises(KeyFileError) as caught:
        parse_key_text("/k", text, key_name)
    return str(caught.value)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_what_tsig_keygen_writes(algorithm: str) -> None:
    text = bind_tool("tsig-keygen", "-a", algorithm, "ha-key")
    key = parse_key_text("/k", text)
    assert (key.name, key.algorithm) == ("ha-key", algorithm)
    # The secret is the base64 tsig-keygen printed, decoded.
    printed = text.split('secret "', 1)[1].split('"', 1)[0]
    assert key.secret == base64.b64decode(printed)


def test_what_ddns_confgen_writes_with_its_instructions() -> None:
    # Comments, an update-policy block and a bare `nsupdate -k <keyfile>` line around the key.
    text = bind_tool("ddns-confgen", "-z", "example.org")
    assert "update-policy" in text and "nsupdate -k" in text
    key = parse_key_text("/k", text)
    assert (key.name, key.algorithm) == ("ddns-key.example.org", "hmac-sha256")
    assert len(key.secret) == 32


def test_the_labs_own_key_files_read_back() -> None:
    assert parse_key_text("/k", key_file_text("lab", SECRET, "hmac-sha512")) == TsigKey(
        "lab", "hmac-sha512", SECRET
    )


def test_forms_bind_accepts() -> None:
    text = f"""
    /* a block comment
       over lines */ // a line comment
    # another
    KEY bare-name {{ Algorithm HMAC-SHA256 ; SECRET "{B64[:20]}
        {B64[20:]}" ; }} ;
    """
    assert parse_key_text("/k", text) == TsigKey("bare-name", "hmac-sha256", SECRET)
    unquoted = f"key k {{ algorithm hmac-sha1; secret {B64}; }};"
    assert parse_key_text("/k", unquoted) == TsigKey("k", "hmac-sha1", SECRET)


def test_several_keys_need_a_name() -> None:
    text = key_file_text("one", SECRET) + key_file_text("two.example.", b"other")
    assert error(text) == "/k: holds 2 keys (one, two.example.): say which with key_name"
    assert parse_key_text("/k", text, "ONE").name == "one"
    # Key names are DNS names: the final dot and the case do not matter.
    assert parse_key_text("/k", text, "two.example").secret == b"other"
    assert error(text, "three") == "/k: no key 'three' (it holds one, two.example.)"
    assert error(text + key_file_text("One.", b"x")).startswith("/k: a key name repeats")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", '/k: no key statement (key "NAME" { algorithm ...; secret ...; };)'),
        ("# only a comment\n", "/k: no key statement"),
        ('key "k" {\n algorithm hmac-sha256;\n};', "/k:1: key 'k' has no secret"),
        (f'key "k" {{ secret "{B64}"; }};', "/k:1: key 'k' has no algorithm"),
        ('key "k" {\n algorithm hmac-sha256;\n secret "not base64!";\n};', "/k:3: key 'k': the "),
        ('key "k" { algorithm hmac-sha256; secret ""; };', "/k:1: key 'k': the secret is empty"),
        (
            f'key "k" {{ algorithm hmac-sha256-128; secret "{B64}"; }};',
            "/k:1: key 'k': unknown algorithm 'hmac-sha256-128' (truncated MACs",
        ),
        (
            f'key "k" {{ algorithm hmac-sha3; secret "{B64}"; }};',
            "/k:1: key 'k': unknown algorithm 'hmac-sha3' (expected one of hmac-md5,",
        ),
        (
            f'key "k" {{ algorithm hmac-sha256; algorithm hmac-md5; secret "{B64}"; }};',
            "/k:1: key 'k': algorithm is given twice",
        ),
        (
            f'key "k" {{ algorithm hmac-sha256; secret "{B64}"; owner x; }};',
            "/k:1: key 'k': unknown clause 'owner'",
        ),
        (f'key "k" {{ algorithm hmac-sha256; secret "{B64}"; }}', "/k: at the end: the file "),
        (f'key "k" {{ algorithm hmac-sha256 secret "{B64}"; }};', "expected ';' after the alg"),
        ("key { algorithm hmac-sha256; };", "/k:1: expected the key's name, found '{'"),
        ('key "k" algorithm', "/k:1: expected '{' after the key's name, found 'algorithm'"),
        ("key", "/k: at the end: the file ends where the key's name was expected"),
        ('key "k" {\n algorithm "hmac-sha256\n};', "/k:2: a quoted string that never ends"),
        ("/* open\n\n", "/k:1: a /* comment that never ends"),
        ("options {\n directory x;\n", "/k: at the end: the block begun at line 1 is never"),
        ("\n}\n", "/k:2: a '}' closes no block"),
        ('key "k" { { } };', "/k:1: expected algorithm or secret, found '{'"),
        ('key "k" { algorithm ; };', "/k:1: key 'k': expected its algorithm, found ';'"),
    ],
)
def test_bad_content_names_the_file_and_line(text: str, message: str) -> None:
    assert message in error(text)


def test_reading_a_file(tmp_path: Path) -> None:
    path = tmp_path / "ddns.key"
    path.write_text(key_file_text("k", SECRET))
    assert read_key_file(str(path)) == TsigKey("k", "hmac-sha256", SECRET)


def test_reading_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(KeyFileError, match=rf"^{missing}: cannot read: No such file"):
        read_key_file(str(missing))
    with pytest.raises(KeyFileError, match=rf"^{tmp_path}: cannot read"):
        read_key_file(str(tmp_path))
    big = tmp_path / "big"
    big.write_text("#" * (MAX_FILE_SIZE + 1))
    with pytest.raises(KeyFileError, match=rf"^{big}: larger than {MAX_FILE_SIZE} bytes"):
        read_key_file(str(big))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe key")
    with pytest.raises(KeyFileError, match=rf"^{binary}: not text"):
        read_key_file(str(binary))


def test_the_secret_never_shows() -> None:
    key = parse_key_text("/k", key_file_text("k", SECRET))
    assert B64 not in repr(key) and B64 not in str(key)
    assert repr(key) == "TsigKey(name='k', algorithm='hmac-sha256')"
