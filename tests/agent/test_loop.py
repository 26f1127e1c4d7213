"""The agent loop with two real engines joined by fake links, in one event loop."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from hotstandby.agent.loop import DROP_REASONS
from hotstandby.agent.ports import ActionResult
from hotstandby.agent.state_store import StoredState
from hotstandby.core.messages import Action, AdminAction, Outcome, Role
from hotstandby.wire import Codec

from .fakes import HANG
from .harness import OTHER_SECRET, SECRET, Pair, drive, make_cluster


def test_one_node_becomes_active_and_starts_its_group_in_order(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        alpha, beta = p.alpha, p.beta
        assert all(r.running for r in alpha.resources.values())
        assert not any(r.running for r in beta.resources.values())
        starts = [line for line in p.journal if line.endswith(" start")]
        assert starts == ["alpha.vip start", "alpha.web start"]
        assert [a for a in beta.resources["vip"].calls] == [Action.PROBE]
        state = alpha.store.load().state
        assert state.active and state.epoch == alpha.agent.engine.epoch >= 1
        assert state.boots == 1
        roles = [r.message for r in alpha.records("role")]
        assert roles[-1].endswith("-> active")
        for link in alpha.links:
            assert link.started and link.stats.sent > 0 and link.stats.received > 0

    drive(tmp_path, body)


def test_losing_every_link_of_the_active_makes_the_standby_take_over(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        p.alpha.cut()
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        assert all(r.running for r in p.beta.resources.values())
        assert "takeover.heartbeat_only" in str(p.beta.agent.engine.last_takeover)
        # Nobody said alpha let go: the starts must look for another holder.
        assert p.beta.resources["vip"].starts_released() == [False]
        # Heartbeat-only: nothing tells alpha to let go, as `check` warns.
        assert p.alpha.role is Role.ACTIVE

    drive(tmp_path, body)


def test_switchover_moves_the_group_in_reverse_then_in_order(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        mark, epoch = len(p.journal), p.alpha.agent.engine.epoch
        reply = await p.alpha.agent.admin(AdminAction.SWITCHOVER)
        assert reply.ok and "beta" in reply.message
        await p.until(
            lambda: p.beta.role is Role.ACTIVE and p.alpha.role is Role.STANDBY,
            "beta active, alpha standby",
        )
        moves = [line for line in p.journal[mark:] if not line.endswith("monitor")]
        assert moves == ["alpha.web stop", "alpha.vip stop", "beta.vip start", "beta.web start"]
        # alpha confirmed it holds nothing: beta's starts are told so.
        assert [r.starts_released() for r in p.beta.resources.values()] == [[True], [True]]
        assert p.beta.agent.engine.epoch > epoch
        assert not p.alpha.store.load().state.active

    drive(tmp_path, body)


def test_shutdown_hands_over_sooner_than_the_dead_time(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        started: list[float] = []
        p.beta.resources["vip"].before_run.append(
            lambda action: started.append(time.monotonic()) if action is Action.START else None
        )
        asked = time.monotonic()
        reply = await p.alpha.agent.admin(AdminAction.SHUTDOWN)
        assert reply.ok
        await p.until(lambda: p.beta.role is Role.ACTIVE, "beta takes over")
        assert p.alpha.task is not None
        await asyncio.wait_for(p.alpha.task, 2.0)  # a planned stop ends the run
        assert started and started[0] - asked < p.cluster.timers.dead_time
        assert not any(r.running for r in p.alpha.resources.values())
        assert all(link.closed for link in p.alpha.links)
        assert p.alpha.records("exit")
        assert not p.alpha.store.load().state.active

    drive(tmp_path, body)


def test_a_standby_that_shuts_down_leaves_the_active_alone(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        reply = await p.beta.agent.admin(AdminAction.SHUTDOWN)
        assert reply.ok and reply.message == "stopping"
        assert p.beta.task is not None
        await asyncio.wait_for(p.beta.task, 2.0)
        assert p.alpha.role is Role.ACTIVE

    drive(tmp_path, body)


def test_a_start_that_hangs_past_its_timeout_is_a_failure(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        p.alpha.resources["vip"].then(Action.START, HANG)
        p.start()

        def timed_out() -> bool:
            return any("timed out" in r.message for r in p.alpha.records("resource"))

        await p.until(timed_out, "the start to time out")
        record = next(r for r in p.alpha.records("resource") if "timed out" in r.message)
        assert record.message.startswith("vip start: failed in ")
        assert record.message.endswith("timed out after 0.05s")
        assert record.data["resource"] == "vip"
        assert record.data["took"] >= 0.05
        assert p.alpha.resources["vip"].cancelled == 1
        # The group still ends up somewhere: the loop carried on.
        await p.until(
            lambda: Role.ACTIVE in (p.alpha.role, p.beta.role), "someone active after the failure"
        )

    drive(tmp_path, body, cluster=make_cluster(start_timeout="50ms"), start=False)


def test_an_adapter_exception_is_a_failure_with_its_text(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        p.alpha.resources["web"].then(Action.START, RuntimeError("unit file missing"))
        p.start()

        def failed() -> bool:
            return any("RuntimeError" in r.message for r in p.alpha.records("resource"))

        await p.until(failed, "the failed start")
        record = next(r for r in p.alpha.records("resource") if "RuntimeError" in r.message)
        assert record.message.startswith("web start: failed in ")
        assert record.message.endswith("RuntimeError: unit file missing")
        web = p.alpha.agent.engine.group.by_name["web"]
        assert web.failures
        # The loop survives: it restarts the group in place and goes on beating.
        await p.until(
            lambda: Role.ACTIVE in (p.alpha.role, p.beta.role), "someone active after the failure"
        )
        sent = p.alpha.links[0].stats.sent
        await p.until(lambda: p.alpha.links[0].stats.sent > sent + 2, "more heartbeats")

    drive(tmp_path, body, start=False)


def test_the_state_is_on_disk_before_the_first_start(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        seen: list[StoredState] = []

        def check_file(action: Action) -> None:
            if action is Action.START:
                seen.append(p.alpha.store.load().state)

        p.alpha.resources["vip"].before_run.append(check_file)
        p.start()
        await p.settled()
        assert seen, "vip was never started"
        assert seen[0].active
        assert seen[0].epoch == p.alpha.agent.engine.epoch

    drive(tmp_path, body, start=False)


def test_a_restart_boots_from_the_stored_state(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        p.alpha.store.save(StoredState(epoch=7, active=False, boots=3))
        (tmp_path / "beta").mkdir()
        (tmp_path / "beta" / "state.json").write_text("{not json")
        p.start()
        await p.settled()
        assert p.alpha.agent.engine.epoch >= 8  # grows from what was stored
        assert p.alpha.store.load().state.boots == 4
        assert p.alpha.agent.engine.boot >> 32 == 4
        problem = p.beta.records("state")
        assert len(problem) == 1 and "corrupt" in problem[0].message
        assert (tmp_path / "beta" / "state.json.corrupt.0").exists()
        assert p.beta.store.load().state.boots == 1

    drive(tmp_path, body, start=False)


def test_forged_and_replayed_messages_are_dropped_counted_and_recorded_once(
    tmp_path: Path,
) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        agent = p.alpha.agent
        net = p.alpha.links[0]
        stats = net.stats
        genuine = p.beta.links[0].sent[-1]
        beat = agent.codec.decode(genuine)
        forged = {
            "bad_magic": os.urandom(40).replace(b"H", b"h"),
            "bad_mac": Codec("unit", OTHER_SECRET).encode(beat),
            "wrong_cluster": Codec("other", SECRET).encode(beat),
            "replayed": genuine,
            "unknown_sender": agent.codec.encode(
                type(beat)(**{**beat.__dict__, "sender": "mallory"})
            ),
        }
        for reason, data in forged.items():
            for _ in range(3):
                net.receive(data)
            assert stats.dropped[reason] == 3, reason
            rejected = [r for r in p.alpha.records("link.rejected") if r.data["reason"] == reason]
            assert len(rejected) == 1, reason
            assert rejected[0].rule == f"wire.{reason}"
            assert rejected[0].message.startswith("net: dropped 1 heartbeat(s): ")
        for record in p.alpha.records("link.rejected"):
            reason = record.data["reason"]
            assert f": {DROP_REASONS[reason]} (" in record.message, reason
        assert "different secret" in next(
            r.message for r in p.alpha.records("link.rejected") if r.data["reason"] == "bad_mac"
        )
        received = stats.received
        await p.until(lambda: stats.received > received, "genuine heartbeats still accepted")
        assert p.alpha.role is Role.ACTIVE

    drive(tmp_path, body)


def test_a_wrong_secret_keeps_the_nodes_apart(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.until(
            lambda: p.alpha.links[0].stats.dropped.get("bad_mac", 0) > 3, "beta's beats rejected"
        )
        assert p.alpha.role is Role.STARTING  # never heard a peer: waits, heartbeat-only
        assert len(p.alpha.records("link.rejected")) == len(p.alpha.links)

    drive(tmp_path, body, beta_secret=OTHER_SECRET)


def test_a_stop_that_fails_makes_the_agent_fence_itself(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        await p.settled()
        p.alpha.resources["vip"].then(Action.STOP, ActionResult(Outcome.FAILED, "busy"))
        reply = await p.alpha.agent.admin(AdminAction.SWITCHOVER)
        assert reply.ok
        await p.until(lambda: bool(p.alpha.self_fenced), "alpha fences itself")
        assert p.alpha.self_fenced == ["resource.stop_failed: vip: busy"]
        assert p.alpha.records("self_fence")
        assert p.alpha.role is Role.FENCED

    drive(tmp_path, body)


def test_stopping_the_agent_cancels_what_its_adapters_still_do(tmp_path: Path) -> None:
    async def body(p: Pair) -> None:
        vip = p.alpha.resources["vip"]
        vip.then(Action.PROBE, HANG)
        p.start(p.alpha)
        await p.until(lambda: Action.PROBE in vip.calls, "the probe runs")
        reply = await p.alpha.agent.admin(AdminAction.SHUTDOWN)
        assert reply.ok and reply.message == "stopping"
        assert p.alpha.task is not None
        await asyncio.wait_for(p.alpha.task, 2.0)
        assert vip.cancelled == 1  # already unwound when run() returned
        assert not p.alpha.agent.tasks

    drive(tmp_path, body, start=False)
