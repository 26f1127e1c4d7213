"""Coverage-guided fuzzing of the heartbeat decoder and the deframer with atheris.

Run for as long as you like: `python tests/wire/atheris_decode.py -max_total_time=600`.
test_wire_atheris.py runs it briefly when atheris is installed.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import sys

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

with atheris.instrument_imports():
    from hotstandby.wire.codec import MAX_MESSAGE, Codec, WireError, cluster_tag
    from hotstandby.wire.framing import Deframer

SECRET = bytes(range(32))
CLUSTER = "prod-db"
CODEC = Codec(CLUSTER, SECRET)


def sealed(body: bytes) -> bytes:
    """`body` as a sender holding the secret would send it, to reach the body parser."""
    head = b"HS\x01" + cluster_tag(CLUSTER) + struct.pack(">H", 9 + len(body) + 16)
    return head + body + hmac.new(SECRET, head + body, hashlib.sha256).digest()[:16]


def check(message: bytes) -> None:
    """Decode must drop with a WireError or return a heartbeat encoding to the input."""
    try:
        beat = CODEC.decode(message)
    except WireError:
        return
    if CODEC.encode(beat) != message:
        raise AssertionError(f"not canonical: {message.hex()}")


def one_input(data: bytes) -> None:
    """One fuzz input through the raw decoder, the body parser and the deframer."""
    check(data)
    if len(data) <= MAX_MESSAGE - 25:
        check(sealed(data))
    Deframer(max_payload=256).feed(data)


def main() -> None:
    """Fuzz until libFuzzer's limits (-runs, -max_total_time) stop it."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
