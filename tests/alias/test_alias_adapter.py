"""The alias adapter's exchanges against small servers on loopback: silence, refusal, answers
a real named does not give on demand, and cancellation by the agent's timeout.

The real server's behaviour is tested in test_alias_lab.py; these stand-ins answer exactly what
a test needs, over 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.tsig
import pytest

from hotstandby.agent.resources.alias import AliasParams, AliasResource, OnStop
from hotstandby.core.messages import Action, Outcome
from hotstandby.lab.dns import key_file_text

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = dns.tsig.Key("k", SECRET, dns.tsig.HMAC_SHA256)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file holding key k."""
    path = tmp_path / "ddns.key"
    path.write_text(key_file_text("k", SECRET))
    return path


def adapter(key_file: Path, port: int, timeout: float = 0.3) -> AliasResource:
    """An adapter pointing db.example.org. at 192.0.2.11, against 127.0.0.1:port."""
    params = AliasParams(
        hostname=dns.name.from_text("db.example.org."),
        zone=dns.name.from_text("example.org."),
        server=ip_address("127.0.0.1"),
        port=port,
        key_file=str(key_file),
        key_name=None,
        ttl=30,
        addresses=(ip_address("192.0.2.11"),),
        on_stop=OnStop.REMOVE,
        timeout=timeout,
    )
    return AliasResource("db-name", params)


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """A UDP socket on loopback that receives and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def drain(sock: socket.socket) -> int:
    """How many datagrams wait on sock (read and dropped)."""
    count = 0
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return count
        count += 1


def test_a_silent_server_fails_at_the_timeout_after_resending(
    key_file: Path, silent: socket.socket
) -> None:
    began = time.monotonic()
    result = asyncio.run(adapter(key_file, silent.getsockname()[1], 0.8).run(Action.START))
    took = time.monotonic() - began
    assert result.outcome is Outcome.FAILED
    assert result.detail == f"start: no answer from 127.0.0.1:{silent.getsockname()[1]} within 0.8s"
    assert 0.8 <= took < 1.5
    # Sent at 0, 0.25 and 0.75 s (load may squeeze out the last): a lost update is resent.
    assert drain(silent) >= 2


def test_a_port_nobody_listens_on_fails_at_the_timeout(key_file: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: a server restarting, say
    began = time.monotonic()
    result = asyncio.run(adapter(key_file, port).run(Action.MONITOR))
    assert result.outcome is Outcome.FAILED
    assert result.detail == f"monitor: no answer from 127.0.0.1:{port} within 0.3s"
    # Tried until the end: a server that came back within the timeout would have answered.
    assert time.monotonic() - began >= 0.3


def test_stop_never_fails_even_when_the_removal_does(key_file: Path, silent: socket.socket) -> None:
    port = silent.getsockname()[1]
    stopped = asyncio.run(adapter(key_file, port).run(Action.STOP))
    assert stopped.outcome is Outcome.OK
    assert stopped.detail == (
        "db.example.org. not removed, left as it is (the next start replaces it): no answer "
        f"from 127.0.0.1:{port} within 0.3s"
    )
    assert drain(silent) >= 1  # it did try
    key_file.unlink()
    without_key = asyncio.run(adapter(key_file, port).run(Action.STOP))
    assert without_key.outcome is Outcome.OK
    assert f"not removed, left as it is (the next start replaces it): {key_file}: cannot read" in (
        without_key.detail
    )
    assert drain(silent) == 0


def test_a_stop_that_keeps_the_record_needs_neither_key_nor_server(tmp_path: Path) -> None:
    keeping = adapter(tmp_path / "absent.key", 9)
    keeping = AliasResource("db-name", replace(keeping.params, on_stop=OnStop.KEEP))
    stopped = asyncio.run(keeping.run(Action.STOP))
    assert (stopped.outcome, stopped.detail) == (
        Outcome.OK,
        "db.example.org. left as it is (on_stop = keep): the next start replaces it",
    )


def test_cancelling_an_action_leaves_nothing_running(key_file: Path, silent: socket.socket) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(adapter(key_file, silent.getsockname()[1], 5).run(Action.START))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(scenario())


Answer = Callable[[dns.message.Message], dns.message.Message | bytes | None]


class FakeServer(asyncio.DatagramProtocol):
    """Answers each signed message on loopback with what `answer` makes of it."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[dns.message.Message] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        message = dns.message.from_wire(data, keyring={KEY.name: KEY})
        self.seen.append(message)
        reply = self.answer(message)
        assert self.transport is not None
        if reply is not None:
            self.transport.sendto(reply if isinstance(reply, bytes) else reply.to_wire(), addr)


def run_against(
    key_file: Path, answer: Answer, action: Action
) -> tuple[str, str, list[dns.message.Message]]:
    """Run action against a FakeServer; (outcome, detail, messages it received)."""

    async def scenario() -> tuple[str, str, list[dns.message.Message]]:
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            lambda: FakeServer(answer), local_addr=("127.0.0.1", 0)
        )
        try:
            port = transport.get_extra_info("sockname")[1]
            result = await adapter(key_file, port).run(action)
        finally:
            transport.close()
        return result.outcome.value, result.detail, server.seen

    return asyncio.run(scenario())


def reply(rcode: dns.rcode.Rcode) -> Answer:
    """An answer that is a signed reply with rcode."""

    def answer(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        return response

    return answer


def test_a_refused_update_says_what_to_look_at(key_file: Path) -> None:
    outcome, detail, seen = run_against(key_file, reply(dns.rcode.REFUSED), Action.START)
    assert outcome == "failed"
    assert detail.endswith(
        "refused the update of db.example.org.: REFUSED (the zone's allow-update or "
        "update-policy does not let key 'k' change db.example.org.)"
    )
    assert len(seen) == 1 and seen[0].had_tsig


def test_a_failing_server_fails_the_monitor(key_file: Path) -> None:
    outcome, detail, _ = run_against(key_file, reply(dns.rcode.SERVFAIL), Action.MONITOR)
    assert outcome == "failed"
    assert detail.endswith("cannot say what db.example.org. is: SERVFAIL")


def test_an_unsigned_answer_is_not_believed(key_file: Path) -> None:
    def unsigned(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.Message(id=query.id)
        response.flags = dns.flags.QR | dns.flags.AA
        response.question = query.question
        return response

    outcome, detail, _ = run_against(key_file, unsigned, Action.MONITOR)
    assert outcome == "failed"
    assert detail.endswith(
        "unusable answer: FormError: response requires a TSIG but does not have one"
    )


def test_garbage_is_not_an_answer(key_file: Path) -> None:
    outcome, detail, _ = run_against(key_file, lambda q: b"\x00\x01garbage", Action.MONITOR)
    assert outcome == "failed"
    assert "unusable answer: ShortHeader" in detail


def test_a_clock_too_far_off_is_named(key_file: Path) -> None:
    def badtime(query: dns.message.Message) -> dns.message.Message:
        return dns.message.make_response(query, tsig_error=dns.rcode.BADTIME)

    outcome, detail, _ = run_against(key_file, badtime, Action.START)
    assert outcome == "failed"
    assert detail.endswith(
        "the server rejected the signature's time (BADTIME): this machine's clock and the "
        "server's differ by more than the allowed fudge (300s)"
    )


def test_an_answer_signed_with_another_secret_is_not_believed(key_file: Path) -> None:
    forger = dns.tsig.Key("k", b"another secret, same key name!!", dns.tsig.HMAC_SHA256)

    def forged(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.use_tsig(forger, original_id=query.id)
        return response

    outcome, detail, _ = run_against(key_file, forged, Action.MONITOR)
    assert outcome == "failed"
    assert "the answer's signature does not verify (BadSignature): not our server?" in detail
