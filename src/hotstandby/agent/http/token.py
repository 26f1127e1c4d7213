"""The action token: read from a root-only file, compared in constant time.

Same rules as the cluster secret's file: a regular file, owned by root or the agent's
user, no permission bits for group or others (anyone who reads it may switch the
cluster over). The token is the file's text without trailing whitespace, at least 16
characters; `hotstandby keygen PATH` writes a suitable one.
"""

from __future__ import annotations

import hmac
import os
import stat

MIN_TOKEN = 16
MAX_TOKEN = 4096


class TokenError(Exception):
    """The token file cannot be used; the message names it and says why."""


def load_token(path: str) -> bytes:
    """The action token in `path`; TokenError naming the path and the problem."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as err:
        raise TokenError(f"token file {path}: cannot be opened: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise TokenError(f"token file {path}: is not a regular file")
        if st.st_uid not in (0, os.geteuid()):
            raise TokenError(f"token file {path}: is owned by uid {st.st_uid}, not root")
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise TokenError(
                f"token file {path}: is accessible by group or others (mode {mode:04o}); "
                "run chmod 600 on it"
            )
        data = os.read(fd, MAX_TOKEN + 1)
    finally:
        os.close(fd)
    token = data.rstrip(b" \t\r\n")
    if len(data) > MAX_TOKEN or len(token) < MIN_TOKEN or not token.isascii():
        raise TokenError(
            f"token file {path}: expected {MIN_TOKEN} to {MAX_TOKEN} ASCII characters, "
            f"found {len(token)} bytes"
        )
    return token


def token_matches(given: str, token: bytes) -> bool:
    """Whether `given` is the token, in time independent of where they differ."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), token)
