"""Heartbeats over a serial line (a null-modem cable): framed, non-blocking both ways."""

from __future__ import annotations

import asyncio
import errno
import logging
import os

import serial

from hotstandby.agent.ports import Deliver, LinkStats
from hotstandby.wire.framing import DEFAULT_MAX_PAYLOAD, Deframer, DeframerStats, encode_frame

log = logging.getLogger("hotstandby.links.serial")

BITS_PER_BYTE = 10  # 8N1: start bit, eight data bits, stop bit
READ_CHUNK = 4096
# After a read error (a pty whose other side is gone reports EIO on every read, and the fd
# stays readable), stop watching for this long instead of spinning on the error.
REARM_DELAY = 1.0

# Deframer counters that each stand for one rejected frame candidate, and the reason
# under which the link's stats count them.
_FRAME_DROPS = {
    "bad_crc": "frame_crc",
    "bad_header": "frame_header",
    "oversized": "frame_oversized",
}


class SerialLink:
    """A serial port carrying framed heartbeats; stale heartbeats are dropped, not queued."""

    def __init__(
        self,
        name: str,
        device: str,
        baud: int = 9600,
        *,
        interval: float = 0.1,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.name = name
        self.stats = LinkStats()
        self.device = device
        self.baud = baud
        self.interval = interval
        self.max_payload = max_payload
        self.deframer = Deframer(max_payload)
        self._seen = DeframerStats()
        self._port: serial.Serial | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deliver: Deliver | None = None
        self._rearm: asyncio.TimerHandle | None = None

    @property
    def line_stats(self) -> DeframerStats:
        """The deframer's counters, noise bytes included."""
        return self.deframer.stats

    async def start(self, deliver: Deliver) -> None:
        """Open the port (8N1, no flow control) and deliver every intact frame."""
        # pyserial opens with O_NONBLOCK, so a port without carrier cannot hang the open.
        port = serial.Serial(
            port=self.device,
            baudrate=self.baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=0,
            write_timeout=0,
            exclusive=True,
        )
        # Bytes left in the input queue from before we started belong to nobody now.
        port.reset_input_buffer()
        self._port, self._deliver = port, deliver
        self._loop = asyncio.get_running_loop()
        self._watch()

    def _watch(self) -> None:
        self._rearm = None
        if self._port is not None and self._loop is not None:
            self._loop.add_reader(self._port.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        port, loop = self._port, self._loop
        if port is None or loop is None:
            return
        try:
            data = os.read(port.fileno(), READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            self._read_failed(errno.errorcode.get(err.errno or 0, "OSError"))
            return
        if not data:
            self._read_failed("eof")
            return
        assert self._deliver is not None
        for payload in self.deframer.feed(data):
            self._deliver(self.name, payload)
        self._count_frame_drops()

    def _read_failed(self, reason: str) -> None:
        assert self._port is not None and self._loop is not None
        self.stats.drop(f"read_{reason}")
        self._loop.remove_reader(self._port.fileno())
        self._rearm = self._loop.call_later(REARM_DELAY, self._watch)

    def _count_frame_drops(self) -> None:
        now = self.deframer.stats
        for field, reason in _FRAME_DROPS.items():
            grew = getattr(now, field) - getattr(self._seen, field)
            if grew:
                self.stats.drop(reason, grew)
                setattr(self._seen, field, getattr(now, field))

    def send(self, message: bytes) -> None:
        """Write one framed heartbeat if the line can take it now; otherwise drop and count."""
        port = self._port
        if port is None:
            self.stats.fail_send("not_open")
            return
        try:
            frame = encode_frame(message, self.max_payload)
        except ValueError:
            self.stats.fail_send("oversized")
            return
        try:
            queued = int(port.out_waiting)
        except OSError:
            queued = 0  # TIOCOUTQ is unsupported on some ports; EAGAIN still protects us
        if queued * BITS_PER_BYTE / self.baud >= self.interval:
            # Earlier bytes would hold this heartbeat back longer than the interval:
            # it would arrive after the next one is due. Better none than a stale one.
            self.stats.fail_send("line_busy")
            return
        try:
            written = os.write(port.fileno(), frame)
        except BlockingIOError:
            self.stats.fail_send("line_busy")
            return
        except OSError as err:
            self.stats.fail_send(errno.errorcode.get(err.errno or 0, "OSError"))
            return
        if written < len(frame):
            # The rest is dropped rather than queued; the receiver's CRC rejects the stub
            # and its deframer resynchronises on the next frame.
            self.stats.fail_send("partial_write")
            return
        self.stats.sent += 1

    async def close(self) -> None:
        """Stop reading and close the port."""
        if self._rearm is not None:
            self._rearm.cancel()
            self._rearm = None
        port, self._port = self._port, None
        if port is not None:
            if self._loop is not None:
                self._loop.remove_reader(port.fileno())
            port.close()
        self._deliver = None
