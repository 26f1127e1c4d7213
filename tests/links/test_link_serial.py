"""The serial link over a socat pty pair: both ways, line noise, a stalled line, close."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
import serial

from hotstandby.agent.links import SerialLink
from hotstandby.lab.serial import SerialLine
from hotstandby.wire.framing import SYNC, encode_frame
from tests.links.linkhelp import Inbox

pytestmark = pytest.mark.lab


def _links(line: SerialLine) -> tuple[SerialLink, SerialLink]:
    return (
        SerialLink("serial", str(line.path("a")), 9600),
        SerialLink("serial", str(line.path("b")), 9600),
    )


def test_heartbeats_cross_the_line_both_ways(serial_line: SerialLine) -> None:
    async def scenario() -> None:
        link_a, link_b = _links(serial_line)
        inbox_a, inbox_b = Inbox(), Inbox()
        await link_a.start(inbox_a)
        await link_b.start(inbox_b)
        try:
            link_a.send(b"beat from a")
            assert await inbox_b.next() == ("serial", b"beat from a")
            link_b.send(b"beat from b")
            assert await inbox_a.next() == ("serial", b"beat from b")
            assert (link_a.stats.sent, link_b.stats.sent) == (1, 1)
            assert link_a.stats.dropped == link_b.stats.dropped == {}
        finally:
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def _noise(rng: random.Random, n: int) -> bytes:
    """Garbage of several kinds, each a thing a noisy line really produces."""
    kind = n % 4
    if kind == 0:  # random bytes
        return rng.randbytes(rng.randint(1, 40))
    if kind == 1:  # a frame cut short (a burst of noise ate its tail)
        return encode_frame(rng.randbytes(60))[: rng.randint(1, 70)]
    if kind == 2:  # a frame with one bit flipped in its payload
        frame = bytearray(encode_frame(rng.randbytes(60)))
        frame[10] ^= 0x10
        return bytes(frame)
    return SYNC + rng.randbytes(3)  # a false start of frame


def test_every_intact_frame_survives_noise_between_frames(serial_line: SerialLine) -> None:
    rng = random.Random(694)
    messages = [f"beat {i:03d} ".encode() + rng.randbytes(50) for i in range(40)]

    async def scenario() -> None:
        link_a, link_b = _links(serial_line)
        inbox_b = Inbox()
        await link_a.start(Inbox())
        await link_b.start(inbox_b)
        # The noise is written into a's end of the cable, as if the line itself made it.
        noisy = os.open(serial_line.path("a"), os.O_WRONLY | os.O_NOCTTY)
        try:
            for i, message in enumerate(messages):
                os.write(noisy, _noise(rng, i))
                link_a.send(message)
            received = [(await inbox_b.next())[1] for _ in messages]
            assert received == messages
            assert link_a.stats.sent == len(messages)
            drops = link_b.stats.dropped
            # Ten cut frames and ten flipped ones, each rejected as a unit; the false
            # starts mostly fail their header check.
            assert drops.get("frame_crc", 0) >= 10
            assert drops.get("frame_header", 0) >= 1
            assert link_b.line_stats.discarded_bytes > 0
        finally:
            os.close(noisy)
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_a_stalled_line_drops_heartbeats_instead_of_queueing(serial_line: SerialLine) -> None:
    async def scenario() -> None:
        link_a, link_b = _links(serial_line)
        await link_a.start(Inbox())
        await link_b.start(Inbox())
        try:
            # socat stopped: nobody drains a's buffer, as with a cable to a hung machine.
            serial_line.cut()
            attempts = 0
            while link_a.stats.send_errors < 5 and attempts < 10_000:
                link_a.send(b"x" * 100)
                attempts += 1
            stats = link_a.stats
            assert stats.send_errors == 5, "the kernel buffer never filled"
            assert stats.sent + stats.send_errors == attempts
            assert set(stats.send_failed) <= {"line_busy", "partial_write"}
        finally:
            serial_line.heal()
            await link_a.close()
            await link_b.close()

    asyncio.run(scenario())


def test_oversized_message_is_counted(serial_line: SerialLine) -> None:
    async def scenario() -> None:
        link_a, _ = _links(serial_line)
        await link_a.start(Inbox())
        try:
            link_a.send(bytes(2000))
            assert link_a.stats.send_failed == {"oversized": 1}
        finally:
            await link_a.close()

    asyncio.run(scenario())


def test_close_releases_the_port(serial_line: SerialLine) -> None:
    async def scenario() -> None:
        link_a, _ = _links(serial_line)
        await link_a.start(Inbox())
        await link_a.close()
        # The link holds an exclusive lock while open; taking it again proves it is gone.
        with serial.Serial(str(serial_line.path("a")), exclusive=True, timeout=0):
            pass
        link_a.send(b"after close")
        assert link_a.stats.send_failed == {"not_open": 1}

    asyncio.run(scenario())
