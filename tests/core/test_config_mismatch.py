"""A peer running another configuration: one alarm per difference, and status can tell."""

from __future__ import annotations

from collections.abc import Sequence

from hotstandby.core.engine import Engine
from hotstandby.core.messages import (
    AlarmKind,
    Boot,
    Heartbeat,
    HeartbeatReceived,
    RaiseAlarm,
    Role,
)

from .pair import make_cluster


def beat(seq: int, digest: str) -> Heartbeat:
    return Heartbeat("alpha", 7, seq, 0, Role.STARTING, False, digest=digest)


def mismatch_alarms(commands: Sequence[object]) -> list[RaiseAlarm]:
    return [
        c for c in commands if isinstance(c, RaiseAlarm) and c.kind is AlarmKind.CONFIG_MISMATCH
    ]


def test_a_different_digest_is_one_alarm_with_both_digests_until_it_matches_again() -> None:
    cluster = make_cluster()
    engine = Engine(cluster, "beta")
    engine.step(Boot(boot=1), 0.0)
    link = cluster.links[0].name
    ours = cluster.digest[:16]
    first = mismatch_alarms(engine.step(HeartbeatReceived(link, beat(1, "f" * 16)), 0.1))
    assert len(first) == 1
    assert first[0].message == "alpha runs a different configuration"
    assert first[0].reason.rule == "config.digest"
    assert first[0].reason.detail == f"{'f' * 16} != {ours}"
    assert engine.peers["alpha"].digest_warned
    assert not mismatch_alarms(engine.step(HeartbeatReceived(link, beat(2, "f" * 16)), 0.2))
    assert not mismatch_alarms(engine.step(HeartbeatReceived(link, beat(3, ours)), 0.3))
    assert not engine.peers["alpha"].digest_warned
    again = mismatch_alarms(engine.step(HeartbeatReceived(link, beat(4, "e" * 16)), 0.4))
    assert len(again) == 1
