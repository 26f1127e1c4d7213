"""The heartbeat wire format: encoding, authentication, replay protection, framing, keys.

A pure library (no sockets, no clock) shared by the udp, serial and disk links.
"""

from hotstandby.wire.codec import (
    ACTION_CODES,
    MAX_MESSAGE,
    ROLE_CODES,
    BadMacError,
    BadMagicError,
    BadVersionError,
    Codec,
    MalformedError,
    OversizedError,
    TruncatedError,
    WireError,
    WrongClusterError,
    cluster_tag,
    decode,
    encode,
    wire_digest,
)
from hotstandby.wire.framing import Deframer, DeframerStats, encode_frame
from hotstandby.wire.keys import SecretError, load_secret, write_new_secret
from hotstandby.wire.replay import ReplayGuard, ReplayReason

__all__ = [
    "ACTION_CODES",
    "MAX_MESSAGE",
    "ROLE_CODES",
    "BadMacError",
    "BadMagicError",
    "BadVersionError",
    "Codec",
    "Deframer",
    "DeframerStats",
    "MalformedError",
    "OversizedError",
    "ReplayGuard",
    "ReplayReason",
    "SecretError",
    "TruncatedError",
    "WireError",
    "WrongClusterError",
    "cluster_tag",
    "decode",
    "encode",
    "encode_frame",
    "load_secret",
    "wire_digest",
    "write_new_secret",
]
