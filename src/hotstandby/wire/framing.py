"""Framing of messages on a byte stream with noise (a serial line).

Frame layout:

    sync 0xA5 0x5A | length u16 big-endian | header check u8 | payload | CRC-32 u32 BE

The header check (low byte of CRC-32 over sync + length) rejects a corrupted length
at once; without it a noisy length would make the receiver wait for up to
`max_payload` bytes, stalling the link for half a second at 9600 baud. The CRC-32
(zlib) covers length, header check and payload.

Resynchronisation: when a candidate frame fails any check, only its first sync byte
is discarded and the search goes on from the next byte. So a frame that arrived
intact is never skipped because noise before it looked like the start of a frame:
at worst it is found after enough bytes have arrived to refute the false start.
Every byte fed ends up in exactly one of: a returned frame, `stats.discarded_bytes`,
or `pending`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SYNC = b"\xa5\x5a"  # neither all-zero nor all-one: an idle or breaking line is not a sync
HEADER_SIZE = len(SYNC) + 2 + 1
TRAILER_SIZE = 4
OVERHEAD = HEADER_SIZE + TRAILER_SIZE
DEFAULT_MAX_PAYLOAD = 1024


def _header_check(sync_and_length: bytes | bytearray) -> int:
    return zlib.crc32(sync_and_length) & 0xFF


def encode_frame(payload: bytes, max_payload: int = DEFAULT_MAX_PAYLOAD) -> bytes:
    """Wrap `payload` (1..max_payload bytes) in a frame for a byte stream."""
    if not 1 <= len(payload) <= max_payload:
        raise ValueError(f"payload must be 1..{max_payload} bytes, got {len(payload)}")
    head = SYNC + struct.pack(">H", len(payload))
    head += bytes([_header_check(head)])
    body = head[len(SYNC) :] + payload
    return head + payload + struct.pack(">I", zlib.crc32(body))


@dataclass
class DeframerStats:
    """What a Deframer found and threw away, for the link's counters."""

    frames: int = 0  # frames returned
    discarded_bytes: int = 0  # bytes thrown away: noise, garbage, broken frames
    bad_header: int = 0  # a sync whose header check failed, or a zero length
    oversized: int = 0  # a sync with a valid header but a length over max_payload
    bad_crc: int = 0  # a whole candidate frame whose CRC did not match


class Deframer:
    """Streaming receiver: feed it bytes as they come, get whole verified payloads."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if not 1 <= max_payload <= 0xFFFF:
            raise ValueError("max_payload must be 1..65535")
        self.max_payload = max_payload
        self.stats = DeframerStats()
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back as the possible start of a frame."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget buffered bytes (for instance when the port is reopened)."""
        self.stats.discarded_bytes += len(self._buf)
        self._buf.clear()

    def _drop(self, n: int) -> None:
        self.stats.discarded_bytes += n
        del self._buf[:n]

    def feed(self, data: bytes) -> list[bytes]:
        """Take more bytes from the line; return the payloads of frames now complete."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a trailing first sync byte: its partner may be in the next read.
                self._drop(len(buf) - (1 if buf.endswith(SYNC[:1]) else 0))
                return out
            self._drop(start)
            if len(buf) < HEADER_SIZE:
                return out
            (length,) = struct.unpack_from(">H", buf, len(SYNC))
            if buf[HEADER_SIZE - 1] != _header_check(buf[: HEADER_SIZE - 1]) or length == 0:
                self.stats.bad_header += 1
                self._drop(1)
                continue
            if length > self.max_payload:
                self.stats.oversized += 1
                self._drop(1)
                continue
            end = HEADER_SIZE + length
            if len(buf) < end + TRAILER_SIZE:
                return out
            (crc,) = struct.unpack_from(">I", buf, end)
            if crc != zlib.crc32(buf[len(SYNC) : end]):
                self.stats.bad_crc += 1
                self._drop(1)
                continue
            out.append(bytes(buf[HEADER_SIZE:end]))
            self.stats.frames += 1
            del buf[: end + TRAILER_SIZE]
