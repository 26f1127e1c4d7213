"""The cluster's shared secret: read it safely, and make a new one for `hotstandby keygen`.

File format: the secret is the file's bytes with trailing whitespace removed, at
least 32 bytes. `write_new_secret` writes 32 random bytes as 64 hex characters and a
newline, so the file can be copied and compared as text; any other content of 32
bytes or more (a long passphrase, raw random bytes) works the same, as long as
every node has the same file.

The file must be a regular file, owned by root or by the user running the agent, with
no permission bits for group or others: anyone who can read it can forge heartbeats,
and anyone who can write it can set a key of their choosing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

MIN_SECRET_BYTES = 32
MAX_SECRET_BYTES = 4096  # a secret file is a few dozen bytes; more is a wrong path
NEW_SECRET_BYTES = 32  # 256 bits of randomness


class SecretError(Exception):
    """The secret file cannot be used; `problem` is a short code, the message says why."""

    def __init__(self, path: str | os.PathLike[str], problem: str, detail: str) -> None:
        super().__init__(f"secret file {os.fspath(path)}: {detail}")
        self.path = os.fspath(path)
        self.problem = problem


def load_secret(path: str | os.PathLike[str]) -> bytes:
    """The shared secret in `path`; SecretError naming the path and the problem."""
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang the agent.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise SecretError(
            path, "missing", "does not exist (create one with `hotstandby keygen`)"
        ) from None
    except OSError as exc:
        raise SecretError(path, "unreadable", f"cannot be opened: {exc.strerror}") from exc
    try:
        # fstat of the open file, not stat of the path: nothing can swap the file
        # between the checks and the read.
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretError(path, "not_regular", "is not a regular file")
        if st.st_uid not in (0, os.geteuid()):
            raise SecretError(
                path, "bad_owner", f"is owned by uid {st.st_uid}, not root or this user"
            )
        if st.st_mode & 0o077:
            mode = stat.S_IMODE(st.st_mode)
            raise SecretError(
                path,
                "bad_permissions",
                f"is accessible by group or others (mode {mode:04o}); run chmod 600 on it",
            )
        if st.st_size > MAX_SECRET_BYTES:
            raise SecretError(path, "too_long", f"is {st.st_size} bytes, over {MAX_SECRET_BYTES}")
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    secret = data.rstrip(b" \t\r\n")
    if len(secret) < MIN_SECRET_BYTES:
        raise SecretError(
            path, "too_short", f"holds {len(secret)} bytes, at least {MIN_SECRET_BYTES} needed"
        )
    return secret


def write_new_secret(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Write a new random secret to `path` atomically with mode 0600."""
    target = Path(path)
    if not overwrite and os.path.lexists(target):
        raise SecretError(path, "exists", "already exists (replacing it splits the cluster)")
    content = secrets.token_bytes(NEW_SECRET_BYTES).hex().encode("ascii") + b"\n"
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        # Created 0600 from the start (O_EXCL, explicit mode): the secret is never
        # visible to others, not even for an instant or under a lax umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask can only clear bits, but be explicit
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            # link() fails if the target appeared meanwhile: never clobber a secret.
            os.link(tmp, target)
            os.unlink(tmp)
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power loss
        finally:
            os.close(dir_fd)
    except FileExistsError:
        _remove_quietly(tmp)
        raise SecretError(path, "exists", "already exists") from None
    except OSError as exc:
        _remove_quietly(tmp)
        raise SecretError(path, "cannot_write", f"cannot be written: {exc.strerror}") from exc


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
